package elect

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
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
	// The view's master is almost always the one to judge: its evidence is
	// gathered while the members are probed, so a silent master costs one
	// probe timeout, not two.
	if h, ok := el.view.Host(el.view.Master.UUID); ok {
		el.early = map[string]<-chan evidence{h.UUID: el.gather(ctx, h)}
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
	// Only a master checks credentials: one that refuses them is a live
	// master the bridge cannot log in to.
	for _, p := range c.probes {
		if p.State == xapi.ProbeAuthFailed {
			return el.refuse(fmt.Sprintf("%s refuses the bridge's credentials, which only a master checks: it may be a live master; fix the pool's credentials", p.URL))
		}
	}
	// Every host that anything in the evidence names as master must be
	// confirmed gone and made harmless: the pool database's (as the view
	// has it), the last one the bridge itself elected, and every address a
	// slave names in its HOST_IS_SLAVE answer. That answer comes from the
	// slave's pool.conf, not from contact with a master, so it proves
	// nothing about the master's life; but a host it names may be master.
	suspects, err := el.suspects(c)
	if err != nil {
		return err
	}
	if len(suspects) == 0 {
		return el.refuse("the pool's database names no master the bridge knows")
	}
	var gone []xenha.HostView
	for _, old := range suspects {
		if el.answersAsSlave(c, old) {
			el.step("record", old.UUID, old.Name+" answers as a slave now: it is not a master", true)
			continue
		}
		gone = append(gone, old)
	}
	for _, old := range gone {
		if err := el.confirmGone(ctx, old, c); err != nil {
			return err
		}
	}
	if err := el.stillOurs(ctx, c, suspects); err != nil {
		return err
	}
	for _, old := range gone {
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

// confirmGone decides whether a host that may be master is gone. The
// bridge's own probes, all unanswered, are necessary but never enough: on
// a real network a dead host and one cut off from the bridge are equally
// silent, and its slaves name it either way. Its BMC decides: power Off is
// gone. Power On means it may be alive (its management network down, or
// only the bridge's path to it cut): the pool's UnreachableMaster policy
// says whether the bridge refuses (the default) or powers it off first.
// Slaves in emergency mode are recorded where they exist, but nothing
// waits for them: a real slave enters that mode only when its xapi
// restarts (see xapisim).
func (el *election) confirmGone(ctx context.Context, old xenha.HostView, c claims) error {
	ch, ok := el.early[old.UUID]
	if !ok {
		ch = el.gather(ctx, old)
	}
	var ev evidence
	select {
	case ev = <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	dev, probes, power, bmcErr := ev.dev, ev.probes, ev.power, ev.bmcErr
	for _, p := range probes {
		if p.State == xapi.ProbeUnreachable {
			continue
		}
		el.step("witness:xapi", old.UUID, old.Name+"'s XAPI answered: "+p.State.String(), false)
		if !el.req.Override {
			return el.refuse(fmt.Sprintf("%s answers (%s): it is not gone", old.Name, p.State))
		}
		break
	}
	el.step("witness:xapi", old.UUID, fmt.Sprintf("%s's XAPI did not answer %d probes", old.Name, len(probes)), true)
	if f := c.following[old.Address]; len(f) > 0 {
		el.step("witness:slaves", old.UUID, fmt.Sprintf("%d slave(s) name %s as master: their pool role, no evidence either way", len(f), old.Name), true)
	}
	if len(c.emergency) > 0 {
		el.step("witness:slaves", old.UUID, fmt.Sprintf("%d slave(s) in emergency mode have lost their master: %s", len(c.emergency), strings.Join(c.emergency, ", ")), true)
	}
	switch {
	case dev == nil:
		el.step("witness:bmc", old.UUID, "no BMC is configured for "+old.Name, false)
		if !el.req.Override {
			return el.refuse(fmt.Sprintf("%s does not answer, but no BMC is configured for it, so nothing can confirm it is off "+
				"and the bridge never promotes beside a master that may be alive: configure its BMC (CloudStack's out-of-band management for the host, "+
				"or the bridge's pools[].fencing.bmcs, host %s), "+
				"or, once you know it is off, call ElectMaster with operator_override and a reason", old.Name, old.UUID))
		}
	case bmcErr != nil:
		el.step("witness:bmc", old.UUID, dev.Driver()+" BMC did not answer: "+bmcErr.Error(), false)
		if !el.req.Override {
			return el.refuse(fmt.Sprintf("%s does not answer and its %s BMC cannot be read (%v), so nothing can confirm it is off: "+
				"repair the BMC or its network, or, once you know the host is off, call ElectMaster with operator_override and a reason",
				old.Name, dev.Driver(), bmcErr))
		}
	case power == fencing.PowerOff:
		el.step("witness:bmc", old.UUID, dev.Driver()+" BMC reports power off", true)
	default:
		el.step("witness:bmc", old.UUID, dev.Driver()+" BMC reports power "+power.String()+": it may be alive", false)
		switch {
		case el.req.Override:
			el.step("override", old.UUID, "operator override: going on although "+old.Name+" has power; it is powered off first", true)
		case el.e.opts.UnreachableMaster(el.view.Name) == FenceUnreachable:
			el.step("policy", old.UUID, "unreachable_master: fence: "+old.Name+" is powered off through its BMC and read back Off before anyone is promoted", true)
		default:
			return el.refuse(fmt.Sprintf("%s does not answer the bridge but its BMC reports power %s: it may be alive (its management network down, "+
				"or only the bridge's path to it cut), and the bridge never promotes beside a master that may be alive "+
				"(pool policy unreachable_master: refuse). To go on: restore the bridge's path to it; or power it off (its BMC then reads Off); "+
				"or set unreachable_master: fence for the pool; or call ElectMaster with operator_override and a reason",
				old.Name, power))
		}
	}
	if err := el.step("decision", old.UUID, old.Name+" is gone, or is to be made harmless", true); err != nil {
		return el.refuse("the journal cannot record the decision: " + err.Error())
	}
	return nil
}

// evidence is what the bridge itself can learn about a host that may be
// master: its answers to repeated probes and its BMC's power reading.
type evidence struct {
	dev    fencing.Device // nil: no BMC configured
	probes []xapi.Probe
	power  fencing.PowerState
	bmcErr error
}

// gather collects h's evidence in the background: the probes and the BMC
// at once, so a silent host costs one probe timeout, not one per probe.
func (el *election) gather(ctx context.Context, h xenha.HostView) <-chan evidence {
	ch := make(chan evidence, 1)
	go func() {
		ev := evidence{dev: el.e.opts.Devices(el.view.Name, h)}
		var wg sync.WaitGroup
		if ev.dev != nil {
			wg.Add(1)
			go func() { defer wg.Done(); ev.power, ev.bmcErr = ev.dev.PowerState(ctx) }()
		}
		ev.probes = el.req.Pool.ProbeSpaced(ctx, h.Address, el.e.opts.ProbeAttempts, el.e.opts.ProbeSpacing)
		wg.Wait()
		ch <- ev
	}()
	return ch
}

// stillOurs looks again, right before the first destructive step, at the
// members that answered: a master that appeared meanwhile (XenHA's choice,
// or an admin's designation) or a slave naming a master the election has
// not judged means the evidence changed, and the election stops. A master
// that answers is also asked whether XenHA is on.
func (el *election) stillOurs(ctx context.Context, c claims, judged []xenha.HostView) error {
	var again []xapi.Probe
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range c.probes {
		if p.State == xapi.ProbeUnreachable || p.State == xapi.ProbeUnknown {
			continue // the hosts judged gone, or ones that did not answer before
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr := el.req.Pool.Probe(ctx, urlHostname(p.URL))
			mu.Lock()
			again = append(again, pr)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, p := range again {
		switch p.State {
		case xapi.ProbeMaster, xapi.ProbeAuthFailed:
			why := ""
			if cl, err := el.req.Pool.Member(urlHostname(p.URL)); err == nil {
				if pools, err := cl.PoolGetAllRecords(ctx); err == nil {
					for _, rec := range pools {
						if rec.HAEnabled {
							why = " and XenHA is on: XenHA decides"
						}
					}
				}
			}
			el.step("recheck", "", p.URL+" answers as master now"+why, false)
			return el.refuse(fmt.Sprintf("%s answers as master now%s: the pool has a master again; ask again if it is lost", p.URL, why))
		case xapi.ProbeSlave:
			if !slices.ContainsFunc(judged, func(h xenha.HostView) bool { return h.Address == p.MasterAddress }) {
				el.step("recheck", "", fmt.Sprintf("%s now names %s as master, which this election has not judged", p.URL, p.MasterAddress), false)
				return el.refuse(fmt.Sprintf("%s now names %s as master: the pool changed during the election; ask again", p.URL, p.MasterAddress))
			}
		}
	}
	el.step("recheck", "", fmt.Sprintf("no member answers as master and none names another: %d member(s) asked again", len(again)), true)
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
	if err == nil {
		if el.off == nil {
			el.off = map[string]bool{}
		}
		el.off[old.UUID] = true
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

// suspects lists every host that may be master: the view's, the last
// master a finished election of the bridge named (an error when the
// journal cannot be read to say), and every host a slave names. A slave
// naming an address outside the pool stops the election.
func (el *election) suspects(c claims) ([]xenha.HostView, error) {
	var out []xenha.HostView
	add := func(h xenha.HostView, why string) {
		if !slices.ContainsFunc(out, func(o xenha.HostView) bool { return o.UUID == h.UUID }) {
			out = append(out, h)
			el.step("suspect", h.UUID, h.Name+" may be master: "+why, true)
		}
	}
	if h, ok := el.view.Host(el.view.Master.UUID); ok {
		add(h, "the pool database names it, as the bridge last read it")
	}
	if el.e.opts.Journal != nil {
		result, ok, err := el.e.opts.Journal.Last(el.view.Name, "elect", "result", true)
		if err != nil {
			el.step("journal", "", "cannot read the journal for the last master elected: "+err.Error(), false)
			return nil, fmt.Errorf("%w: %v", ErrJournalUnreadable, err)
		}
		if h, found := el.view.Host(result.Host); ok && found {
			add(h, "the bridge elected it last")
		}
	}
	addrs := make([]string, 0, len(c.following))
	for a := range c.following {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		h, ok := el.hostByAddress(a)
		if !ok {
			return nil, el.refuse(fmt.Sprintf("%d slave(s) name %s as master, which is not a member the bridge knows", len(c.following[a]), a))
		}
		add(h, fmt.Sprintf("%d slave(s) name it in HOST_IS_SLAVE", len(c.following[a])))
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
func (el *election) promote(caller context.Context, cand xenha.HostView) error {
	if err := caller.Err(); err != nil {
		return err
	}
	// From here the pool changes hands: a caller giving up must not cut the
	// promotion, the recovery of the slaves or the verification short (the
	// slaves would stay with the dead master while the journal said
	// verified). They run to a bound of their own; the lease still bounds
	// every call.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(caller), 3*el.e.opts.VerifyTimeout)
	defer cancel()
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
	p.MadeMaster(cand.Address)
	hctx, done, err := el.hold(ctx, "recovering the slaves")
	if err != nil {
		return err
	}
	// On the new master itself: it just answered as master, and the pool's
	// own search may still be waiting out the old master's timeout.
	var reset []xapi.HostRef
	err = func() error {
		c, err := p.Member(cand.Address)
		if err != nil {
			return err
		}
		reset, err = c.PoolRecoverSlaves(hctx)
		return err
	}()
	done()
	if err != nil {
		el.step("recover", cand.UUID, "pool.recover_slaves failed: "+err.Error(), false)
	} else {
		el.step("recover", cand.UUID, fmt.Sprintf("pool.recover_slaves reset %d host(s)", len(reset)), true)
	}
	// Anyone still pointing elsewhere gets emergency_reset_master (twice
	// at most); then every reachable host must name the new master, within
	// VerifyTimeout. Not at once: a host reset restarts its xapi first, and
	// one in emergency mode that already names the new master (it started
	// while that host was a slave) only waits for its next Pool.hello, 5 s
	// later; a reset is a no-op for it (become_another_masters_slave,
	// xapi_pool_transition.ml).
	resets := map[string]int{}
	deadline := time.Now().Add(el.e.opts.VerifyTimeout)
	for {
		stray := el.strays(ctx, cand)
		if err := ctx.Err(); err != nil {
			el.step("verify", cand.UUID, "the verification was cut short: "+err.Error(), false)
			return fmt.Errorf("verifying that every host follows %s: %w", cand.Name, err)
		}
		if len(stray) == 0 {
			el.step("verify", cand.UUID, "every reachable host names "+cand.Name+" as master", true)
			break
		}
		if time.Now().After(deadline) {
			el.step("verify", cand.UUID, "hosts still point elsewhere: "+strings.Join(stray, ", "), false)
			return fmt.Errorf("hosts still point elsewhere after the election: %s", strings.Join(stray, ", "))
		}
		for _, addr := range stray {
			if resets[addr] >= 2 {
				continue
			}
			resets[addr]++
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
		select {
		case <-time.After(el.e.opts.PollInterval):
		case <-ctx.Done():
		}
	}
	// The watcher raises the epoch when it sees the new master.
	_ = el.until(ctx, func() bool { return p.View().Master.UUID == cand.UUID })
	el.res.Master, el.res.ElectedBy = masterOf(cand), ByCloudStack
	return nil
}

// strays lists reachable hosts that do not follow cand. Hosts the
// election powered off (read back) are not asked: a silent host would only
// cost a probe timeout.
func (el *election) strays(ctx context.Context, cand xenha.HostView) []string {
	var hosts []xenha.HostView
	for _, h := range el.view.Hosts {
		if h.UUID != cand.UUID && !el.off[h.UUID] {
			hosts = append(hosts, h)
		}
	}
	probes := make([]xapi.Probe, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() { defer wg.Done(); probes[i] = el.req.Pool.Probe(ctx, h.Address) }()
	}
	wg.Wait()
	var out []string
	for i, pr := range probes {
		switch pr.State {
		case xapi.ProbeSlave:
			if pr.MasterAddress != cand.Address {
				out = append(out, hosts[i].Address)
			}
		case xapi.ProbeMaster, xapi.ProbeEmergency:
			out = append(out, hosts[i].Address)
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
	// A claimant that cannot be asked may be the one where it is on.
	for _, m := range masters {
		c, err := el.req.Pool.Member(m.Address)
		var pools map[xapi.PoolRef]xapi.PoolRecord
		if err == nil {
			pools, err = c.PoolGetAllRecords(ctx)
		}
		if err != nil {
			return el.refuse(fmt.Sprintf("cannot read from %s whether XenHA is on (%v): the bridge does not reset anyone it has not asked", m.Name, err))
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

// urlHostname is a member URL's host part (the management address).
func urlHostname(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return raw
}

func errText(err error) string {
	if err == nil {
		return "done"
	}
	return err.Error()
}
