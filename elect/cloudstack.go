package elect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// elect is the CloudStack-controlled path.
func (el *election) elect(ctx context.Context) error {
	h, ok, err := el.unfinished()
	if err != nil {
		return err
	}
	if ok {
		el.step("resume", h.UUID, fmt.Sprintf("an earlier election promoted %s and did not finish: resuming with it, never a second promotion", h.Name), true)
		return el.promote(ctx, h)
	}
	c := summarise(el.req.Pool.ProbeAll(ctx))
	el.step("probe", "", "the members answer: "+describe(c.probes), true)
	switch {
	case len(c.masters) > 1:
		return el.heal(ctx, c)
	case len(c.masters) == 1:
		h, ok := el.hostByAddress(c.masters[0].URL)
		if !ok {
			return el.refuse("a host outside the pool's database answers as master: " + c.masters[0].URL)
		}
		el.res.Master, el.res.ElectedBy = masterOf(h), ByNone
		el.step("decision", h.UUID, fmt.Sprintf("%s answers as master: nothing to elect", h.Name), true)
		return nil
	}
	// Every master of record must be confirmed gone and made harmless:
	// the pool database's (as the view has it) and the last one the bridge
	// itself elected, which a lagging view may not show yet.
	suspects, err := el.mastersOfRecord()
	if err != nil {
		return err
	}
	if len(suspects) == 0 {
		return el.refuse("the pool's database names no master the bridge knows")
	}
	for i, old := range suspects {
		if i > 0 && el.answersAsSlave(c, old) {
			el.step("record", old.UUID, old.Name+" answers as a slave now: it is no longer a master", true)
			continue
		}
		if err := el.confirmGone(ctx, old, c); err != nil {
			return err
		}
		if err := el.makeHarmless(ctx, old); err != nil {
			return err
		}
	}
	cand, err := el.candidate(c, suspects)
	if err != nil {
		return err
	}
	if el.req.DryRun {
		el.res.Master, el.res.ElectedBy = masterOf(cand), ByCloudStack
		el.step("plan", cand.UUID, fmt.Sprintf("would run pool.emergency_transition_to_master on %s, pool.recover_slaves, pool.emergency_reset_master on any host still pointing elsewhere, then verify", cand.Name), true)
		return nil
	}
	return el.promote(ctx, cand)
}

// hold re-checks the lease right before a destructive call and bounds the
// call by it: a bridge paused, or cut from the store, since the election
// began must not go on, nor send the call late.
func (el *election) hold(ctx context.Context, what string) (context.Context, context.CancelFunc, error) {
	if el.req.DryRun {
		return ctx, func() {}, nil
	}
	bctx, cancel, err := lease.Bound(ctx, el.e.opts.Lease, el.view.UUID)
	if err != nil {
		el.step("lease", "", "not "+what+": "+err.Error(), false)
	}
	return bctx, cancel, err
}

// leased is hold for a step that is not itself a call.
func (el *election) leased(ctx context.Context, what string) error {
	_, cancel, err := el.hold(ctx, what)
	cancel()
	return err
}

func (el *election) refuse(why string) error {
	el.step("decision", "", "refused: "+why, false)
	return &RefusedError{Reason: why, Result: el.res}
}

// unfinished finds a promotion journaled without a result. A journal that
// cannot be read is an error: a promotion it holds must not be missed.
func (el *election) unfinished() (xenha.HostView, bool, error) {
	if el.e.opts.Journal == nil {
		return xenha.HostView{}, false, nil
	}
	j := el.e.opts.Journal
	promote, promoted, err := j.Last(el.view.Name, "elect", "promote", false)
	var result journal.Entry
	var finished bool
	if err == nil {
		// Only a successful result ends it: a failed election may have
		// promoted, so it is resumed.
		result, finished, err = j.Last(el.view.Name, "elect", "result", true)
	}
	if err != nil {
		el.step("journal", "", "cannot read the journal for an unfinished promotion: "+err.Error(), false)
		return xenha.HostView{}, false, fmt.Errorf("%w: %v", ErrJournalUnreadable, err)
	}
	if !promoted || finished && result.Seq > promote.Seq || promote.Host == "" {
		return xenha.HostView{}, false, nil
	}
	h, ok := el.view.Host(promote.Host)
	return h, ok, nil
}

// confirmGone asks independent witnesses whether the master is gone. One
// failed probe is never enough, and a master that its slaves still reach
// is alive, whatever the bridge sees.
func (el *election) confirmGone(ctx context.Context, old xenha.HostView, c claims) error {
	unanswered := 0
	for i := range el.e.opts.ProbeAttempts {
		if i > 0 {
			select {
			case <-time.After(el.e.opts.ProbeSpacing):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		p := el.req.Pool.Probe(ctx, old.Address)
		if p.State != xapi.ProbeUnreachable {
			el.step("witness:xapi", old.UUID, "the master's XAPI answered: "+p.State.String(), false)
			if !el.req.Override {
				return el.refuse(fmt.Sprintf("the master %s answers (%s): it is not gone", old.Name, p.State))
			}
		}
		unanswered++
	}
	el.step("witness:xapi", old.UUID, fmt.Sprintf("the master's XAPI did not answer %d probes", unanswered), true)
	if f := c.following[old.Address]; len(f) > 0 {
		el.step("witness:slaves", old.UUID, fmt.Sprintf("%d slave(s) still follow the master: %s", len(f), strings.Join(f, ", ")), false)
		if !el.req.Override {
			return el.refuse(fmt.Sprintf("slaves still reach the master %s: it is alive and only cut off from the bridge", old.Name))
		}
	}
	el.step("witness:slaves", old.UUID, fmt.Sprintf("%d slave(s) in emergency mode report the master lost", len(c.emergency)), len(c.emergency) > 0)
	bmcOff := false
	if dev := el.e.opts.Devices(el.view.Name, old); dev != nil {
		state, err := dev.PowerState(ctx)
		switch {
		case err != nil:
			el.step("witness:bmc", old.UUID, dev.Driver()+" BMC did not answer: "+err.Error(), false)
		default:
			bmcOff = state == fencing.PowerOff
			el.step("witness:bmc", old.UUID, dev.Driver()+" BMC reports power "+state.String(), bmcOff)
		}
	}
	if len(c.emergency) == 0 && !bmcOff && !el.req.Override {
		return el.refuse("only the bridge's own probes say the master is gone; a slave in emergency mode or the BMC must confirm it")
	}
	if err := el.step("decision", old.UUID, "the master is gone", true); err != nil {
		return el.refuse("the journal cannot record the decision: " + err.Error())
	}
	return nil
}

// makeHarmless powers the old master off (read back), or refuses.
func (el *election) makeHarmless(ctx context.Context, old xenha.HostView) error {
	dev := el.e.opts.Devices(el.view.Name, old)
	if dev == nil {
		if el.req.Override {
			el.step("override", old.UUID, "operator override: promoting without making the old master harmless (no BMC)", true)
			return nil
		}
		return el.refuse(fmt.Sprintf("the old master %s cannot be made harmless: no BMC is configured for it (configure one, or pass operator_override)", old.Name))
	}
	if el.req.DryRun {
		el.step("plan", old.UUID, "would power the old master off through its "+dev.Driver()+" BMC and read it back", true)
		return nil
	}
	alreadyOff, err := fencing.PowerOffVerified(ctx, dev, el.e.opts.VerifyTimeout, el.e.opts.PollInterval,
		func(ctx context.Context) (context.Context, context.CancelFunc, error) {
			return el.hold(ctx, "powering the old master off")
		})
	if lease.IsRefusal(err) {
		return err // no longer this bridge's to act on, override or not
	}
	switch {
	case err == nil && alreadyOff:
		el.step("harmless", old.UUID, "the old master's BMC reports it off", true)
	case err == nil:
		el.step("harmless", old.UUID, "the old master was powered off through its "+dev.Driver()+" BMC and read back off", true)
	case el.req.Override:
		el.step("override", old.UUID, "operator override: promoting although the power-off failed: "+err.Error(), true)
	default:
		el.step("harmless", old.UUID, "power-off failed: "+err.Error(), false)
		return el.refuse("the old master could not be made harmless: " + err.Error())
	}
	return nil
}

// answersAsSlave tells whether the probes found h following a master or
// in emergency mode (so not a master).
func (el *election) answersAsSlave(c claims, h xenha.HostView) bool {
	for _, p := range c.probes {
		if x, ok := el.hostByAddress(p.URL); ok && x.UUID == h.UUID {
			return p.State == xapi.ProbeSlave || p.State == xapi.ProbeEmergency
		}
	}
	return false
}

// mastersOfRecord lists the hosts that may still be master: the view's,
// and the last master a finished election of the bridge named (an error
// when the journal cannot be read to say).
func (el *election) mastersOfRecord() ([]xenha.HostView, error) {
	var out []xenha.HostView
	add := func(uuid string) {
		h, ok := el.view.Host(uuid)
		if ok && !slices.ContainsFunc(out, func(o xenha.HostView) bool { return o.UUID == uuid }) {
			out = append(out, h)
		}
	}
	add(el.view.Master.UUID)
	if el.e.opts.Journal != nil {
		result, ok, err := el.e.opts.Journal.Last(el.view.Name, "elect", "result", true)
		if err != nil {
			el.step("journal", "", "cannot read the journal for the last master elected: "+err.Error(), false)
			return nil, fmt.Errorf("%w: %v", ErrJournalUnreadable, err)
		}
		if last := result.Host; ok && last != "" {
			if last != el.view.Master.UUID {
				el.step("record", last, "the last master the bridge confirmed is not the view's: it must be gone too", true)
				add(last)
			}
		}
	}
	return out, nil
}

// candidate chooses deterministically: reachable, enabled, every shared SR
// plugged, not excluded, not a master of record; the preferred list
// first, then the lowest UUID.
func (el *election) candidate(c claims, suspects []xenha.HostView) (xenha.HostView, error) {
	answered := map[string]bool{}
	for _, p := range c.probes {
		if p.State == xapi.ProbeSlave || p.State == xapi.ProbeEmergency {
			if h, ok := el.hostByAddress(p.URL); ok {
				answered[h.UUID] = true
			}
		}
	}
	var ok []xenha.HostView
	for _, h := range el.view.Hosts {
		why := ""
		switch {
		case slices.ContainsFunc(suspects, func(o xenha.HostView) bool { return o.UUID == h.UUID }):
			continue
		case slices.Contains(el.req.Exclude, h.UUID):
			why = "excluded by the operator"
		case !answered[h.UUID]:
			why = "not reachable"
		case !h.Enabled:
			why = "disabled"
		case !h.SharedStorage:
			why = "a shared SR is not plugged"
		}
		if why != "" {
			el.step("candidate", h.UUID, h.Name+" does not qualify: "+why, false)
			continue
		}
		ok = append(ok, h)
	}
	if len(ok) == 0 {
		return xenha.HostView{}, el.refuse("no host qualifies as the new master")
	}
	rank := func(h xenha.HostView) int {
		for i, p := range el.e.opts.Preferred(el.view.Name) {
			if p == h.UUID || p == h.Name || p == h.Address {
				return i
			}
		}
		return 1 << 30
	}
	slices.SortFunc(ok, func(a, b xenha.HostView) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.UUID, b.UUID)
	})
	el.step("candidate", ok[0].UUID, fmt.Sprintf("%s chosen (preferred list first, then the lowest UUID)", ok[0].Name), true)
	return ok[0], nil
}

// promote runs CloudStack 4.3's sequence on the candidate, verified.
func (el *election) promote(ctx context.Context, cand xenha.HostView) error {
	p := el.req.Pool
	p.ExpectMaster(cand.UUID)
	if probe := p.Probe(ctx, cand.Address); probe.State != xapi.ProbeMaster {
		if err := el.leased(ctx, "promoting "+cand.Name); err != nil {
			return err
		}
		// A restart resumes with the host journaled here, so a promotion the
		// journal cannot record could be followed by a second one.
		if err := el.step("promote", cand.UUID, "pool.emergency_transition_to_master on "+cand.Name, true); err != nil {
			return el.refuse("the journal cannot record the promotion of " + cand.Name + ": " + err.Error())
		}
		local, err := p.SlaveLocal(cand.Address)
		if err != nil {
			return err
		}
		hctx, done, err := el.hold(ctx, "promoting "+cand.Name)
		if err == nil {
			err = local.PoolEmergencyTransitionToMaster(hctx)
		}
		done()
		local.Close(context.Background())
		if lease.IsRefusal(err) {
			return err
		}
		if err != nil {
			el.step("promote", cand.UUID, "failed: "+err.Error(), false)
			return fmt.Errorf("promoting %s: %w", cand.Name, err)
		}
	}
	if err := el.until(ctx, func() bool { return p.Probe(ctx, cand.Address).State == xapi.ProbeMaster }); err != nil {
		el.step("promote", cand.UUID, cand.Name+" does not answer as master", false)
		return fmt.Errorf("%s did not answer as master: %w", cand.Name, err)
	}
	el.step("promote", cand.UUID, cand.Name+" answers as master", true)
	p.Refresh()
	hctx, done, err := el.hold(ctx, "recovering the slaves")
	if err != nil {
		return err
	}
	var reset []xapi.HostRef
	err = p.Do(hctx, func(c *xapi.Client) error {
		var err error
		reset, err = c.PoolRecoverSlaves(hctx)
		return err
	})
	done()
	if err != nil {
		el.step("recover", cand.UUID, "pool.recover_slaves failed: "+err.Error(), false)
	} else {
		el.step("recover", cand.UUID, fmt.Sprintf("pool.recover_slaves reset %d host(s)", len(reset)), true)
	}
	// Anyone still pointing elsewhere gets emergency_reset_master; then
	// every reachable host must name the new master.
	for round := 0; ; round++ {
		stray := el.strays(ctx, cand)
		if len(stray) == 0 {
			el.step("verify", cand.UUID, "every reachable host names "+cand.Name+" as master", true)
			break
		}
		if round >= 2 {
			el.step("verify", cand.UUID, "hosts still point elsewhere: "+strings.Join(stray, ", "), false)
			return fmt.Errorf("hosts still point elsewhere after the election: %s", strings.Join(stray, ", "))
		}
		for _, addr := range stray {
			local, err := p.SlaveLocal(addr)
			if err != nil {
				continue
			}
			hctx, done, err := el.hold(ctx, "resetting "+addr+"'s master")
			if err == nil {
				err = local.PoolEmergencyResetMaster(hctx, cand.Address)
			}
			done()
			local.Close(context.Background())
			if lease.IsRefusal(err) {
				return err
			}
			el.step("reset", "", fmt.Sprintf("pool.emergency_reset_master on %s: %v", addr, errText(err)), err == nil)
		}
	}
	// The watcher raises the epoch when it sees the new master.
	_ = el.until(ctx, func() bool { return p.View().Master.UUID == cand.UUID })
	el.res.Master, el.res.ElectedBy = masterOf(cand), ByCloudStack
	return nil
}

// strays lists reachable hosts that do not follow cand.
func (el *election) strays(ctx context.Context, cand xenha.HostView) []string {
	var out []string
	for _, pr := range el.req.Pool.ProbeAll(ctx) {
		h, ok := el.hostByAddress(pr.URL)
		if !ok || h.UUID == cand.UUID {
			continue
		}
		switch pr.State {
		case xapi.ProbeSlave:
			if pr.MasterAddress != cand.Address {
				out = append(out, h.Address)
			}
		case xapi.ProbeMaster, xapi.ProbeEmergency:
			out = append(out, h.Address)
		}
	}
	return out
}

// heal resolves a split brain: the master most slaves follow stays; the
// others are reset to it. CloudStack-controlled pools only.
func (el *election) heal(ctx context.Context, c claims) error {
	var masters []xenha.HostView
	for _, m := range c.masters {
		if h, ok := el.hostByAddress(m.URL); ok {
			masters = append(masters, h)
		}
	}
	if len(masters) < 2 {
		return el.refuse("several hosts answer as master but the bridge cannot name them: " + describe(c.probes))
	}
	slices.SortFunc(masters, func(a, b xenha.HostView) int {
		if fa, fb := len(c.following[a.Address]), len(c.following[b.Address]); fa != fb {
			return fb - fa
		}
		if a.UUID == el.view.Master.UUID {
			return -1
		}
		if b.UUID == el.view.Master.UUID {
			return 1
		}
		return strings.Compare(a.UUID, b.UUID)
	})
	keep := masters[0]
	// XenHA may have been enabled since the view was read: ask every
	// claimant; where it is on, XenHA decides and the bridge must not act.
	for _, m := range masters {
		c, err := el.req.Pool.Member(m.Address)
		if err != nil {
			continue
		}
		pools, err := c.PoolGetAllRecords(ctx)
		if err != nil {
			continue
		}
		for _, p := range pools {
			if p.HAEnabled {
				return el.refuse(fmt.Sprintf("XenHA is on in the pool as %s sees it: XenHA decides, the bridge does not reset anyone", m.Name))
			}
		}
	}
	el.step("split-brain", keep.UUID, fmt.Sprintf("%d hosts answer as master; %s stays (followed by %d)", len(masters), keep.Name, len(c.following[keep.Address])), true)
	for _, m := range masters[1:] {
		if el.req.DryRun {
			el.step("plan", m.UUID, "would run pool.emergency_reset_master on "+m.Name+" naming "+keep.Name, true)
			continue
		}
		local, err := el.req.Pool.SlaveLocal(m.Address)
		if err == nil {
			var hctx context.Context
			var done context.CancelFunc
			if hctx, done, err = el.hold(ctx, "resetting "+m.Name); err == nil {
				err = local.PoolEmergencyResetMaster(hctx, keep.Address)
			}
			done()
			local.Close(context.Background())
			if lease.IsRefusal(err) {
				return err
			}
		}
		el.step("heal", m.UUID, fmt.Sprintf("pool.emergency_reset_master on %s naming %s: %v", m.Name, keep.Name, errText(err)), err == nil)
		if err != nil {
			return fmt.Errorf("resetting %s: %w", m.Name, err)
		}
	}
	el.res.Master, el.res.ElectedBy = masterOf(keep), ByNone
	return nil
}

func (el *election) until(ctx context.Context, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, el.e.opts.VerifyTimeout)
	defer cancel()
	for !cond() {
		select {
		case <-time.After(el.e.opts.PollInterval):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return "done"
	}
	return err.Error()
}
