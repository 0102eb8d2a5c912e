package membership

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// Change is what Join and Eject did (or would do).
type Change struct {
	Host   Member
	DryRun bool
	Steps  []string
}

// Join joins the standalone host at url to the pool and waits until the
// master lists it; the pool's member list grows with it.
func (s *Service) Join(ctx context.Context, h *xenha.Handle, rawURL string, creds xapi.Credentials, tls xapi.TLSOptions, dryRun bool) (*Change, error) {
	view := h.View()
	if err := s.leased(ctx, h, dryRun); err != nil {
		return nil, err
	}
	spec := h.Spec()
	out := &Change{DryRun: dryRun}
	step := func(f string, a ...any) { out.Steps = append(out.Steps, fmt.Sprintf(f, a...)) }
	if !view.Observed || view.Master.Address == "" {
		return nil, refuse("the pool's master is not known yet")
	}
	c, masterAddr, err := s.login(ctx, rawURL, creds, tls)
	if err != nil {
		return nil, err
	}
	if c == nil {
		if masterAddr == view.Master.Address {
			return nil, refuse("the host is already a member of this pool")
		}
		return nil, refuse("the host is a slave of another pool (master %s): it is not standalone", masterAddr)
	}
	defer c.Close(context.Background())
	hosts, err := c.HostGetAllRecords(ctx)
	if err != nil {
		return nil, err
	}
	pools, err := c.PoolGetAllRecords(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range pools {
		if p.UUID == view.UUID {
			return nil, refuse("the host is already the master of this pool")
		}
	}
	if len(hosts) != 1 {
		return nil, refuse("the host is the master of a pool of %d hosts: it is not standalone", len(hosts))
	}
	var me xapi.HostRecord
	for _, hr := range hosts {
		me = hr
	}
	out.Host = Member{UUID: me.UUID, Name: me.NameLabel, Address: me.Address, URL: rawURL}
	step("%s (%s) is standalone", me.NameLabel, me.UUID)
	// xapi's preconditions, checked first so that a dry run can say them.
	srs, err := c.SRGetAllRecords(ctx)
	if err != nil {
		return nil, err
	}
	for _, sr := range srs {
		if sr.Shared {
			return nil, refuse("the joining host holds shared SR %q (%s): forget it on the host first", sr.NameLabel, sr.UUID)
		}
	}
	vms, err := c.VMGetAllRecords(ctx)
	if err != nil {
		return nil, err
	}
	for _, vm := range vms {
		if !vm.IsControlDomain && vm.PowerState == xapi.PowerStateRunning {
			return nil, refuse("the joining host runs VM %q: shut it down or move it first", vm.NameLabel)
		}
	}
	if view.HAEnabled {
		return nil, refuse("XenHA is on in the pool: disable it first (DisableXenHA), then enable it again")
	}
	step("no shared SR, no running VM, XenHA off in the pool: it may join")
	if dryRun {
		step("would run pool.join on %s naming the master %s (%s), wait until the master lists it, and add %s to the pool's members", me.NameLabel, view.Master.Name, view.Master.Address, rawURL)
		return out, nil
	}
	if err := s.begin(ctx, h, "join", me.UUID, strings.Join(out.Steps, "; ")+"; running pool.join"); err != nil {
		return nil, err
	}
	if err := c.PoolJoin(ctx, view.Master.Address, spec.Credentials.Username, spec.Credentials.Password); err != nil {
		err = explain(err, "pool.join", xenha.HostView{UUID: me.UUID, Name: me.NameLabel, Address: me.Address}, nil)
		s.end(h, "join", me.UUID, "pool.join failed: "+err.Error(), false, &out.Steps)
		return nil, err
	}
	step("pool.join accepted by %s", me.NameLabel)
	s.end(h, "join", me.UUID, "pool.join accepted", true, &out.Steps)
	if err := s.until(ctx, func() bool { return s.listed(ctx, h, me.UUID) }); err != nil {
		return nil, fmt.Errorf("%w: the master does not list %s after the join: %v", ErrUnreachable, me.NameLabel, err)
	}
	step("the master lists %s", me.NameLabel)
	if !slices.Contains(spec.Members, rawURL) {
		if err := s.Pools.SetMembers(spec.Name, append(slices.Clone(spec.Members), rawURL)); err != nil {
			return nil, err
		}
		step("%s added to the pool's members", rawURL)
	}
	return out, nil
}

func (s *Service) listed(ctx context.Context, h *xenha.Handle, uuid string) bool {
	var found bool
	h.Do(ctx, func(c *xapi.Client) error {
		hosts, err := c.HostGetAllRecords(ctx)
		for _, hr := range hosts {
			found = found || hr.UUID == uuid
		}
		return err
	})
	return found
}

func (s *Service) until(ctx context.Context, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.wait())
	defer cancel()
	for !cond() {
		select {
		case <-time.After(s.poll()):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Eject ejects a member (never the master) and drops it from the pool's
// members.
func (s *Service) Eject(ctx context.Context, h *xenha.Handle, hostID string, dryRun bool) (*Change, error) {
	view := h.View()
	if err := s.leased(ctx, h, dryRun); err != nil {
		return nil, err
	}
	host, ok := view.Host(hostID)
	if !ok {
		return nil, &xenha.InvalidArgumentError{Field: "host", Reason: fmt.Sprintf("no host %q in pool %s", hostID, view.Name)}
	}
	out := &Change{DryRun: dryRun, Host: Member{UUID: host.UUID, Name: host.Name, Address: host.Address}}
	step := func(f string, a ...any) { out.Steps = append(out.Steps, fmt.Sprintf(f, a...)) }
	if u, ok := h.MemberURL(host.Address); ok {
		out.Host.URL = u
	}
	switch {
	case host.UUID == view.Master.UUID:
		return nil, refuse("%s is the pool master: it cannot be ejected (designate another master first)", host.Name)
	case view.HAEnabled:
		return nil, refuse("XenHA is on in the pool: disable it before ejecting a host")
	}
	if vms := view.ResidentOn(host.UUID); len(vms) > 0 {
		return nil, refuse("%s still runs %d VM(s) (%s, ...): migrate them first", host.Name, len(vms), vms[0].Name)
	}
	step("%s is a slave without VMs and XenHA is off: it may be ejected", host.Name)
	if dryRun {
		step("would run pool.eject on the master for %s; the host then reboots as a standalone host", host.Name)
		return out, nil
	}
	if err := s.begin(ctx, h, "eject", host.UUID, strings.Join(out.Steps, "; ")+"; running pool.eject"); err != nil {
		return nil, err
	}
	if err := h.Do(ctx, func(c *xapi.Client) error { return c.PoolEject(ctx, xapi.HostRef(host.Ref)) }); err != nil {
		err = explain(err, "pool.eject", host, view)
		s.end(h, "eject", host.UUID, "pool.eject failed: "+err.Error(), false, &out.Steps)
		return nil, err
	}
	step("pool.eject accepted")
	s.end(h, "eject", host.UUID, "pool.eject accepted", true, &out.Steps)
	if err := s.until(ctx, func() bool { return !s.listed(ctx, h, host.UUID) }); err != nil {
		return nil, fmt.Errorf("the master still lists %s: %w", host.Name, err)
	}
	spec := h.Spec()
	if out.Host.URL != "" && slices.Contains(spec.Members, out.Host.URL) {
		members := slices.DeleteFunc(slices.Clone(spec.Members), func(m string) bool { return m == out.Host.URL })
		if err := s.Pools.SetMembers(spec.Name, members); err != nil {
			return nil, err
		}
		step("%s dropped from the pool's members", out.Host.URL)
	}
	return out, nil
}
