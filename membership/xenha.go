package membership

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// HAChange is what EnableXenHA and DisableXenHA did (or would do).
type HAChange struct {
	Timeout     time.Duration
	HeartbeatSR string
	DryRun      bool
	Steps       []string
	Controller  xenha.Controller
	Epoch       uint64
}

// ChooseTimeout picks XenHA's T above the storage failover time, with a
// margin (a quarter of it, at least 30 s), rounded up to 10 s and never
// below xapi's default of 60 s, so the aggressive-fencing warning cannot
// fire.
func ChooseTimeout(storage time.Duration) time.Duration {
	t := storage + max(30*time.Second, storage/4)
	t = (t + 9*time.Second).Truncate(10 * time.Second)
	return max(t, 60*time.Second)
}

// EnableHA enables XenHA when the pool qualifies.
func (s *Service) EnableHA(ctx context.Context, h *xenha.Handle, acceptTwoHost bool, srUUID string, timeout time.Duration, dryRun bool) (*HAChange, error) {
	view := h.View()
	if err := s.leased(ctx, h, dryRun); err != nil {
		return nil, err
	}
	out := &HAChange{DryRun: dryRun}
	step := func(f string, a ...any) { out.Steps = append(out.Steps, fmt.Sprintf(f, a...)) }
	if view.HAEnabled {
		out.Timeout, out.Controller, out.Epoch = view.HATimeout, view.Controller, view.Epoch
		if len(view.HeartbeatSRs) > 0 {
			out.HeartbeatSR = view.HeartbeatSRs[0]
		}
		step("XenHA is already on (T=%s): nothing to do", view.HATimeout)
		return out, nil
	}
	switch view.Policy {
	case xenha.PolicyRequireCloudStack, xenha.PolicyObserve:
		return nil, refuse("the pool's policy is %s: enabling XenHA would give it two captains (or one it may not have); change the policy first", view.Policy)
	}
	switch n := len(view.Hosts); {
	case n < 2:
		return nil, refuse("the pool has %d host: XenHA needs at least 3 (2 only with accept_two_host_risk)", n)
	case n == 2 && !acceptTwoHost:
		return nil, refuse("a two-host pool fences semi-deterministically: on any network partition XenHA fences %s (%s), the host with the higher UUID, whichever side is healthy. Pass accept_two_host_risk to enable it anyway, or add a third host",
			view.Hosts[1].Name, view.Hosts[1].UUID)
	case n == 2:
		step("two-host pool accepted by the operator: on a partition XenHA fences %s (%s), the host with the higher UUID", view.Hosts[1].Name, view.Hosts[1].UUID)
	default:
		step("%d hosts: enough for XenHA", n)
	}
	if err := s.allLive(ctx, h, view); err != nil {
		return nil, err
	}
	step("every host is live and answers the bridge")
	sr, err := s.heartbeatSR(ctx, h, srUUID)
	if err != nil {
		return nil, err
	}
	out.HeartbeatSR = sr.UUID
	step("heartbeat SR %q (%s, %s) is shared and plugged on every host", sr.NameLabel, sr.UUID, sr.Type)
	switch {
	case timeout == 0:
		out.Timeout = ChooseTimeout(view.StorageTimeout)
		step("T=%s: the storage failover time %s plus a margin, so that a path failover cannot fence a healthy host", out.Timeout, view.StorageTimeout)
	case timeout <= view.StorageTimeout:
		return nil, refuse("T=%s is not above the pool's storage failover time %s: a storage path failover would make healthy hosts fence themselves", timeout, view.StorageTimeout)
	case timeout < 10*time.Second || timeout%time.Second != 0:
		return nil, &xenha.InvalidArgumentError{Field: "timeout", Reason: "whole seconds, at least 10s"}
	default:
		out.Timeout = timeout
		step("T=%s as asked (above the storage failover time %s)", timeout, view.StorageTimeout)
	}
	if dryRun {
		step("would run pool.enable_ha with heartbeat SR %s and timeout %s; XenHA would then control the pool", sr.UUID, out.Timeout)
		out.Controller, out.Epoch = view.Controller, view.Epoch
		return out, nil
	}
	if err := s.begin(ctx, h, "enable-ha", "", strings.Join(out.Steps, "; ")+"; running pool.enable_ha"); err != nil {
		return nil, err
	}
	err = h.Do(ctx, func(c *xapi.Client) error {
		return c.PoolEnableHA(ctx, []xapi.SRRef{xapi.SRRef(sr.ref)}, map[string]string{"timeout": seconds(out.Timeout)})
	})
	if err != nil {
		err = explain(err, "pool.enable_ha", masterOf(view), view)
		s.end(h, "enable-ha", "", "pool.enable_ha failed: "+err.Error(), false, &out.Steps)
		return nil, err
	}
	step("pool.enable_ha accepted")
	s.end(h, "enable-ha", "", "pool.enable_ha accepted: XenHA now controls the pool", true, &out.Steps)
	return s.settled(ctx, h, out, true)
}

// settled waits until the bridge's view shows XenHA's new state, so the
// answer carries the controller and epoch HAMode will show.
func (s *Service) settled(ctx context.Context, h *xenha.Handle, out *HAChange, on bool) (*HAChange, error) {
	err := s.until(ctx, func() bool { v := h.View(); return v.HAEnabled == on })
	v := h.View()
	out.Controller, out.Epoch = v.Controller, v.Epoch
	if err != nil {
		return nil, fmt.Errorf("%w: the bridge's view does not show the change yet: %v", ErrUnreachable, err)
	}
	return out, nil
}

type srChoice struct {
	ref                   string
	UUID, NameLabel, Type string
}

// heartbeatSR checks the asked SR, or picks a shared SR plugged on every
// host (block storage first, then by UUID, so the choice is stable).
func (s *Service) heartbeatSR(ctx context.Context, h *xenha.Handle, want string) (srChoice, error) {
	var srs map[xapi.SRRef]xapi.SRRecord
	var pbds map[xapi.PBDRef]xapi.PBDRecord
	var hosts map[xapi.HostRef]xapi.HostRecord
	err := h.Do(ctx, func(c *xapi.Client) error {
		var err error
		if srs, err = c.SRGetAllRecords(ctx); err != nil {
			return err
		}
		if pbds, err = c.PBDGetAllRecords(ctx); err != nil {
			return err
		}
		hosts, err = c.HostGetAllRecords(ctx)
		return err
	})
	if err != nil {
		return srChoice{}, err
	}
	everywhere := func(ref xapi.SRRef) bool {
		plugged := map[xapi.HostRef]bool{}
		for _, p := range pbds {
			if p.SR == ref && p.CurrentlyAttached {
				plugged[p.Host] = true
			}
		}
		for hr := range hosts {
			if !plugged[hr] {
				return false
			}
		}
		return true
	}
	var ok []srChoice
	for ref, sr := range srs {
		c := srChoice{ref: string(ref), UUID: sr.UUID, NameLabel: sr.NameLabel, Type: sr.Type}
		if want != "" && sr.UUID == want {
			switch {
			case !sr.Shared:
				return srChoice{}, refuse("SR %q (%s) is not shared: it cannot hold XenHA's statefile", sr.NameLabel, want)
			case !everywhere(ref):
				return srChoice{}, refuse("SR %q (%s) is not plugged on every host", sr.NameLabel, want)
			}
			return c, nil
		}
		if sr.Shared && everywhere(ref) {
			ok = append(ok, c)
		}
	}
	if want != "" {
		return srChoice{}, &xenha.InvalidArgumentError{Field: "heartbeat_sr", Reason: fmt.Sprintf("no SR %q in the pool", want)}
	}
	if len(ok) == 0 {
		return srChoice{}, refuse("no shared SR is plugged on every host to hold XenHA's statefile")
	}
	block := func(t string) bool { return t == "lvmoiscsi" || t == "lvmohba" || t == "gfs2" }
	sort.Slice(ok, func(i, j int) bool {
		if block(ok[i].Type) != block(ok[j].Type) {
			return block(ok[i].Type)
		}
		return ok[i].UUID < ok[j].UUID
	})
	return ok[0], nil
}

// DisableHA disables XenHA.
func (s *Service) DisableHA(ctx context.Context, h *xenha.Handle, dryRun bool) (*HAChange, error) {
	view := h.View()
	if err := s.leased(ctx, h, dryRun); err != nil {
		return nil, err
	}
	out := &HAChange{DryRun: dryRun}
	if !view.HAEnabled {
		out.Controller, out.Epoch = view.Controller, view.Epoch
		out.Steps = append(out.Steps, "XenHA is already off: nothing to do")
		return out, nil
	}
	if dryRun {
		out.Controller, out.Epoch = view.Controller, view.Epoch
		out.Steps = append(out.Steps, fmt.Sprintf("would run pool.disable_ha; the controller would then follow the policy %s", view.Policy))
		return out, nil
	}
	if err := s.begin(ctx, h, "disable-ha", "", "running pool.disable_ha"); err != nil {
		return nil, err
	}
	if err := h.Do(ctx, func(c *xapi.Client) error { return c.PoolDisableHA(ctx) }); err != nil {
		err = explain(err, "pool.disable_ha", masterOf(view), view)
		s.end(h, "disable-ha", "", "pool.disable_ha failed: "+err.Error(), false, &out.Steps)
		return nil, err
	}
	out.Steps = append(out.Steps, "pool.disable_ha accepted")
	s.end(h, "disable-ha", "", "pool.disable_ha accepted: the policy decides the controller again", true, &out.Steps)
	return s.settled(ctx, h, out, false)
}

// masterOf is the pool master as a host: pool calls run there.
func masterOf(v *xenha.PoolView) xenha.HostView {
	if h, ok := v.Host(v.Master.UUID); ok && v.Master.UUID != "" {
		return h
	}
	return xenha.HostView{UUID: v.Master.UUID, Name: v.Master.Name, Address: v.Master.Address}
}

// allLive judges "live" as pool.enable_ha will: xapi refuses with
// HOST_OFFLINE when a host is not live or the master cannot reach it, and
// xapi keeps host_metrics.live true for up to 600 s after a host stops.
// So besides xapi's live, every host is asked now, by the bridge (the
// view's last probe may be 30 s old): one the bridge cannot reach is not
// taken as live.
func (s *Service) allLive(ctx context.Context, h *xenha.Handle, view *xenha.PoolView) error {
	for _, host := range view.Hosts {
		if !host.Live {
			return refuse("host %s (%s) is not live (xapi's host_metrics.live is false): every host must be; bring it back or eject it first", host.Name, host.UUID)
		}
	}
	probes := make([]xapi.Probe, len(view.Hosts))
	var wg sync.WaitGroup
	for i, host := range view.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			probes[i] = h.Probe(ctx, host.Address)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, host := range view.Hosts {
		state := probes[i].State
		if state == xapi.ProbeUnknown && host.Probe != "" {
			// Not a configured member: the prober's last word on it.
			if host.Probe == xapi.ProbeUnreachable.String() {
				state = xapi.ProbeUnreachable
			}
		}
		if state == xapi.ProbeUnreachable {
			return refuse("host %s (%s, %s) does not answer the bridge although xapi still reports it live (xapi keeps a stopped host live for up to 600 s): "+
				"pool.enable_ha would fail with HOST_OFFLINE; bring the host back or eject it first", host.Name, host.UUID, host.Address)
		}
	}
	return nil
}
