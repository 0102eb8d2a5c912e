package fencing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
)

// HeartbeatPlugin is the XAPI plugin (plugins/xenha-heartbeat) that reads
// CloudStack's storage heartbeat files from a peer host.
const HeartbeatPlugin = "xenha-heartbeat"

// evidence is what the witnesses said about the host.
type evidence struct {
	answered   string // the host's own XAPI answered (alive)
	unanswered int    // probes without an answer
	liveFalse  bool   // the master's host_metrics.live is false
	hbKnown    bool   // a peer could read the storage heartbeat
	hbAge      time.Duration
	hbLast     int64 // unix seconds of the newest beat
	hbPeer     string
	hbFresh    time.Duration
	bmcOff     bool
	bmcOn      bool
}

// alive returns why a trusted witness shows the host alive, or "".
func (e evidence) alive() string {
	switch {
	case e.answered != "":
		return "its XAPI answered (" + e.answered + ")"
	case e.hbKnown && e.hbAge < e.hbFresh:
		return fmt.Sprintf("its storage heartbeat is %s old (younger than %s), read through %s", e.hbAge, e.hbFresh, e.hbPeer)
	}
	return ""
}

// deadWitnesses lists the independent witnesses that say it is dead.
func (e evidence) deadWitnesses() []string {
	var out []string
	if e.unanswered > 0 && e.answered == "" {
		out = append(out, fmt.Sprintf("%d XAPI probes unanswered", e.unanswered))
	}
	if e.liveFalse {
		out = append(out, "the master marks it not live")
	}
	if e.hbKnown && e.hbAge >= e.hbFresh {
		out = append(out, fmt.Sprintf("storage heartbeat %s old", e.hbAge))
	}
	if e.bmcOff {
		out = append(out, "its BMC reports power off")
	}
	return out
}

// witness asks every witness it can reach.
func (r *run) witness(ctx context.Context) evidence {
	ev := evidence{liveFalse: !r.host.Live, hbFresh: r.o.HeartbeatFresh}
	// 1. The bridge's own XAPI probes: one failure is never enough. They
	// start ProbeSpacing apart and overlap: a silent host (a dead one on a
	// real network) costs one probe timeout, not one per probe.
	var probes []xapi.Probe
	r.peer(func() { probes = r.req.Pool.ProbeSpaced(ctx, r.host.Address, r.o.ProbeAttempts, r.o.ProbeSpacing) })
	for _, p := range probes {
		if p.State != xapi.ProbeUnreachable && p.State != xapi.ProbeUnknown {
			ev.answered = p.State.String()
			break
		}
		ev.unanswered++
	}
	if ev.answered != "" {
		r.step("witness:xapi", "the host's XAPI answered: "+ev.answered, false)
	} else {
		r.step("witness:xapi", fmt.Sprintf("the host's XAPI did not answer %d probes", ev.unanswered), true)
	}
	// 2. The master's view.
	r.step("witness:master", fmt.Sprintf("host_metrics.live = %v", r.host.Live), !r.host.Live)
	// 3. The storage heartbeat, read through a peer.
	r.heartbeat(ctx, &ev)
	// 4. Out-of-band power state.
	if r.device != nil {
		var state PowerState
		var err error
		r.peer(func() { state, err = r.device.PowerState(ctx) })
		switch {
		case err != nil:
			r.step("witness:bmc", fmt.Sprintf("%s BMC did not answer: %v", r.device.Driver(), err), false)
		case state == PowerOff:
			ev.bmcOff = true
			r.step("witness:bmc", r.device.Driver()+" BMC reports power off", true)
		default:
			ev.bmcOn = state == PowerOn
			r.step("witness:bmc", r.device.Driver()+" BMC reports power "+state.String(), false)
		}
	} else {
		r.step("witness:bmc", "no BMC configured for this host", false)
	}
	return ev
}

type beats struct {
	Now      int64  `json:"now"`
	HostUUID string `json:"host_uuid"`
	Beats    []struct {
		SR        string `json:"sr_uuid"`
		Timestamp int64  `json:"timestamp"`
	} `json:"beats"`
}

// readHeartbeat asks a live peer (the master first) to read the host's
// heartbeat files. It returns the peer's clock and the newest beat.
func (r *run) readHeartbeat(ctx context.Context) (now, last int64, peer string, err error) {
	var peers []string
	for _, h := range r.view.Hosts {
		if h.UUID != r.host.UUID && h.Live {
			if h.UUID == r.view.Master.UUID {
				peers = append([]string{h.Ref}, peers...)
			} else {
				peers = append(peers, h.Ref)
			}
		}
	}
	if len(peers) == 0 {
		return 0, 0, "", errors.New("no live peer to read it through")
	}
	var errs []string
	for _, ref := range peers {
		var out string
		var err error
		r.peer(func() {
			err = r.req.Pool.Do(ctx, func(c *xapi.Client) error {
				var err error
				out, err = c.HostCallPlugin(ctx, xapi.HostRef(ref), HeartbeatPlugin, "read", map[string]string{"host_uuid": r.host.UUID})
				return err
			})
		})
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		var b beats
		if err := json.Unmarshal([]byte(out), &b); err != nil || b.Now == 0 {
			errs = append(errs, fmt.Sprintf("unreadable answer from %s", ref))
			continue
		}
		for _, beat := range b.Beats {
			last = max(last, beat.Timestamp)
		}
		return b.Now, last, ref, nil
	}
	return 0, 0, "", errors.New(strings.Join(errs, "; "))
}

func (r *run) heartbeat(ctx context.Context, ev *evidence) {
	now, last, peer, err := r.readHeartbeat(ctx)
	if err != nil {
		r.step("witness:heartbeat", "storage heartbeat not readable: "+err.Error(), false)
		return
	}
	ev.hbKnown, ev.hbLast, ev.hbPeer = true, last, r.hostName(peer)
	if last == 0 {
		ev.hbAge = time.Duration(1<<62 - 1) // never beat
		r.step("witness:heartbeat", "no storage heartbeat found for the host (read through "+ev.hbPeer+")", true)
		return
	}
	ev.hbAge = time.Duration(now-last) * time.Second
	r.step("witness:heartbeat", fmt.Sprintf("last storage heartbeat %s ago (read through %s)", ev.hbAge, ev.hbPeer), ev.hbAge >= r.o.HeartbeatFresh)
}

func (r *run) hostName(ref string) string {
	for _, h := range r.view.Hosts {
		if h.Ref == ref {
			return h.Name
		}
	}
	return ref
}

// decide applies the guards. It returns "" to go on, or the refusal
// ("alive: ..." when a witness shows the host alive).
func (r *run) decide(ev evidence) string {
	force := r.req.Force
	refuse := func(why string) string {
		if force {
			r.step("override", "operator override: going on although "+why, true)
			return ""
		}
		r.step("decision", "refused: "+why, false)
		return why
	}
	if why := ev.alive(); why != "" {
		if out := refuse("a witness shows the host alive: " + why); out != "" {
			return "alive: " + out
		}
	}
	// A fencing storm means the fault is more likely on the bridge's side.
	dead := 0
	for _, h := range r.view.Hosts {
		if h.Probe == xapi.ProbeUnreachable.String() || !h.Live {
			dead++
		}
	}
	if n := len(r.view.Hosts); n >= 3 && float64(dead) > r.o.StormRatio*float64(n) {
		if out := refuse(fmt.Sprintf("fencing storm guard: %d of %d hosts look dead at once; the fault is likely on the bridge's side", dead, n)); out != "" {
			return out
		}
	}
	// In a two-host pool the peer alone cannot tell a dead host from a cut
	// link: a witness beyond it is required.
	if len(r.view.Hosts) == 2 && r.device == nil {
		if out := refuse("two-host pool: a witness beyond the peer is required; configure the host's BMC"); out != "" {
			return out
		}
	}
	dw := ev.deadWitnesses()
	if !ev.bmcOff && len(dw) < 2 {
		if out := refuse(fmt.Sprintf("not enough evidence that the host is dead (%s); at least two independent witnesses are needed", strings.Join(dw, ", "))); out != "" {
			return out
		}
	}
	r.step("decision", "the host is dead: "+strings.Join(dw, ", "), true)
	return ""
}
