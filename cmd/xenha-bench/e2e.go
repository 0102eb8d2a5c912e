package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/config"
	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/fencing/redfish"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

var (
	e2eRuns  = flag.Int("e2e", 0, "instead: time N end-to-end failovers (power loss → every live slave follows the new master) per pool size and path, production defaults")
	e2eTrace = flag.Bool("e2e-trace", false, "with -e2e: print each run's election trace to stderr")
)

// The production defaults the split below subtracts as configured waits.
// xenha and xapi export theirs; elect's are the zero-value defaults that
// elect.New fills in (ProbeAttempts 3, ProbeSpacing 500 ms).
const (
	e2eProbeAttempts = 3
	e2eProbeSpacing  = 500 * time.Millisecond
	e2ePoll          = 20 * time.Millisecond // the benchmark's own poll of the simulator
)

// e2eRun is one failover, timed: the simulator's moments and the
// election trace's.
type e2eRun struct {
	powerOff time.Time // sim.PowerOff called
	lost     time.Time // MASTER_LOST published (xenha.Event.Time)
	serving  time.Time // the first poll that saw a new master followed by every live slave
	// From the trace: the election's start ("request"), the decision that
	// the old master is gone, the candidate answering as master after
	// pool.emergency_transition_to_master, pool.recover_slaves answered
	// (or failed), and the result (ElectMaster's answer).
	start, decision, promoted, recovered, result time.Time
	phase                                        time.Duration // power loss → the master check that fails starts (estimated)
}

// benchE2E measures the failover from the master's power loss to every
// live slave following a new master, on the simulator's real-xapi
// semantics (a powered-off host is silent) with the bridge's production
// defaults, for a caller that elects on MASTER_LOST and for autopilot.
//
// The total splits into detection (power loss → MASTER_LOST), waiting
// (MASTER_LOST → the election's "request" step: the caller's reaction, or
// the autopilot delay), confirmation ("request" → "decision") and
// promotion ("decision" → every live slave follows). The configured waits
// subtracted from the total are: the master-check phase (power loss → the
// start of the check that fails, estimated from the watcher's start) plus
// one probe timeout, for that check; the autopilot delay; and, for the
// confirmation, the last of the master's overlapping probes (two probe
// spacings after the first) waiting out its probe timeout. What is left is
// split again: the time the election's pool.recover_slaves spent behind
// the pool's master search (the trace's "promote … answers as master" →
// "recover"), and the rest.
func benchE2E(runs int) {
	probeTimeout := xapi.DefaultProbeTimeout
	interval := xenha.DefaultMasterProbeInterval
	delay := config.DefaultAutopilotDelay
	confirmWait := time.Duration(e2eProbeAttempts-1)*e2eProbeSpacing + probeTimeout
	fmt.Printf("defaults: master check every %s, probe timeout %s, %d probes of the master %s apart, autopilot delay %s; simulator polled every %s\n\n",
		interval, probeTimeout, e2eProbeAttempts, e2eProbeSpacing, delay, e2ePoll)
	type row struct {
		n    int
		path string
		runs int
		// the split of total; search is the part of promotion spent
		// behind the pool's master search; answered is ElectMaster's answer
		total, det, wait, conf, prom, search, answered []time.Duration
		// accounting
		phase, waits, own, ownNoSearch []time.Duration
	}
	var rows []row
	for _, n := range []int{3, 16} {
		for _, auto := range []bool{false, true} {
			rw := row{n: n, runs: runs, path: "ElectMaster on MASTER_LOST"}
			if auto {
				rw.path = "autopilot"
			}
			for i := range runs {
				r := e2eOnce(n, auto, i, runs)
				t := r.serving.Sub(r.powerOff)
				cw := r.phase + probeTimeout + confirmWait
				if auto {
					cw += delay
				}
				search := r.recovered.Sub(r.promoted)
				rw.total = append(rw.total, t)
				rw.det = append(rw.det, r.lost.Sub(r.powerOff))
				rw.wait = append(rw.wait, r.start.Sub(r.lost))
				rw.conf = append(rw.conf, r.decision.Sub(r.start))
				rw.prom = append(rw.prom, r.serving.Sub(r.decision))
				rw.search = append(rw.search, search)
				rw.answered = append(rw.answered, r.result.Sub(r.powerOff))
				rw.phase = append(rw.phase, r.phase)
				rw.waits = append(rw.waits, cw)
				rw.own = append(rw.own, t-cw)
				rw.ownNoSearch = append(rw.ownNoSearch, t-cw-search)
			}
			rows = append(rows, rw)
		}
	}
	fmt.Printf("| hosts | path | runs | total p50 / max | detection p50 | waiting p50 | confirmation p50 | promotion p50 | ElectMaster answers p50 / max |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Printf("| %d | %s | %d | %v / %v | %v | %v | %v | %v | %v / %v |\n", r.n, r.path, r.runs,
			ms(p50(r.total)), ms(maxOf(r.total)), ms(p50(r.det)), ms(p50(r.wait)), ms(p50(r.conf)), ms(p50(r.prom)),
			ms(p50(r.answered)), ms(maxOf(r.answered)))
	}
	fmt.Printf("\n| hosts | path | master-check phase p50 | configured waits p50 | total − configured waits p50 / max | of which behind the master search p50 / max | the rest p50 / max |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Printf("| %d | %s | %v | %v | %v / %v | %v / %v | %v / %v |\n", r.n, r.path,
			ms(p50(r.phase)), ms(p50(r.waits)), ms(p50(r.own)), ms(maxOf(r.own)),
			ms(p50(r.search)), ms(maxOf(r.search)), ms(p50(r.ownNoSearch)), ms(maxOf(r.ownNoSearch)))
	}
}

// ms rounds to the millisecond, or to the microsecond below one.
func ms(d time.Duration) time.Duration {
	if d < time.Millisecond && d > -time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// e2eOnce runs one failover on a fresh pool of n hosts. run of runs
// places the power loss in the master-check cycle: evenly spread over
// the runs, so the phase is sampled evenly rather than by chance.
func e2eOnce(n int, auto bool, run, runs int) e2eRun {
	dir, err := os.MkdirTemp("", "xenha-e2e-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	jrnl, err := journal.Open(filepath.Join(dir, "journal.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer jrnl.Close()
	sim, err := xapisim.New(xapisim.Config{Hosts: n, Seed: int64(run + 1)})
	if err != nil {
		log.Fatal(err)
	}
	defer sim.Close()
	info := sim.Info()
	devices := map[string]fencing.Device{}
	for _, hi := range info.Hosts {
		d, err := redfish.New(redfish.Config{URL: hi.BMCURL, Username: info.BMCUsername, Password: info.BMCPassword, AllowPlainHTTP: true})
		if err != nil {
			log.Fatal(err)
		}
		devices[hi.UUID] = d
	}

	m := xenha.NewManager(xenha.Options{Epochs: jrnl})
	defer m.Close()
	attached := time.Now() // the watcher's master-check ticker starts just after
	if _, _, err := m.Attach(context.Background(), xenha.PoolSpec{
		Name: "p", Members: sim.MemberURLs(), TLS: xapi.TLSOptions{AllowPlainHTTP: true},
		Credentials: xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
	}); err != nil {
		log.Fatal(err)
	}
	h, err := m.Handle("p")
	must(err)
	observed := make(chan elect.Observation, 8)
	e := elect.New(elect.Options{
		Journal:   jrnl,
		Devices:   func(_ string, h xenha.HostView) fencing.Device { return devices[h.UUID] },
		Autopilot: func(string) (bool, time.Duration) { return auto, config.DefaultAutopilotDelay },
		Observe:   func(o elect.Observation) { observed <- o },
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Heal(ctx, m) // as the bridge does (split brains; autopilot when on)

	// The caller playing CloudStack: it learns of the loss from the
	// pool's events and, without autopilot, calls ElectMaster at once,
	// as the Java shim's XenServerMasterLocator asks (a request id of its
	// own, the epoch it read, a reason), only sooner: the shim asks when
	// CloudStack's own connection to the master fails.
	sub, err := m.Subscribe("p", 0, "")
	must(err)
	defer sub.Close()
	lost := make(chan time.Time, 1)
	go func() {
		for {
			select {
			case ev := <-sub.C:
				if ev.Type != xenha.EventMasterLost {
					continue
				}
				lost <- ev.Time
				if !auto { // its answer reaches the benchmark through Observe

					cctx, ccancel := context.WithTimeout(ctx, 2*time.Minute)
					e.Elect(cctx, elect.Request{Pool: h, RequestID: fmt.Sprintf("cloudstack-elect-%d", run), ExpectedEpoch: ev.Epoch,
						Reason: "CloudStack cannot reach the pool master (MASTER_LOST)"})
					ccancel()
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()

	st := sim.State()
	oldMaster := st.Pools[0].Master
	idx := -1
	for _, hs := range st.Hosts {
		if hs.UUID == oldMaster {
			idx = hs.Index
		}
	}
	if idx < 0 {
		log.Fatalf("%d hosts: the pool's master %q is not a host", n, oldMaster)
	}
	// Settle (the first probe round, two master checks), then cut the
	// power a chosen fraction of a master-check interval before a tick.
	interval := xenha.DefaultMasterProbeInterval
	before := interval * time.Duration(2*run+1) / time.Duration(2*runs)
	k := time.Duration(2)
	for time.Until(attached.Add(k*interval-before)) < interval/2 {
		k++
	}
	time.Sleep(time.Until(attached.Add(k*interval - before)))
	r := e2eRun{powerOff: time.Now()}
	must(sim.PowerOff(idx))
	r.phase = attached.Add(k * interval).Sub(r.powerOff)

	deadline := time.Now().Add(2 * time.Minute)
	for r.serving.IsZero() {
		if time.Now().After(deadline) {
			log.Fatalf("%d hosts, autopilot %v: no new master followed by every live slave after 2 minutes: %+v", n, auto, sim.State())
		}
		time.Sleep(e2ePoll)
		if serving(sim.State(), oldMaster) {
			r.serving = time.Now()
		}
	}
	select {
	case r.lost = <-lost:
	case <-time.After(time.Minute):
		log.Fatalf("%d hosts, autopilot %v: no MASTER_LOST", n, auto)
	}
	var o elect.Observation
	select {
	case o = <-observed:
	case <-time.After(2 * time.Minute):
		log.Fatalf("%d hosts, autopilot %v: the election did not end", n, auto)
	}
	if o.Err != nil || o.Result == nil || o.Result.ElectedBy != elect.ByCloudStack {
		log.Fatalf("%d hosts, autopilot %v: election: %v %+v", n, auto, o.Err, o.Result)
	}
	tr := o.Result.Trace
	r.start, r.result = tr[0].Time, tr[len(tr)-1].Time
	for _, s := range tr {
		switch {
		case s.Step == "decision" && s.OK && r.decision.IsZero():
			r.decision = s.Time
		case s.Step == "promote" && s.OK && strings.HasSuffix(s.Detail, "answers as master"):
			r.promoted = s.Time
		case s.Step == "recover" && r.recovered.IsZero():
			r.recovered = s.Time
		}
	}
	if r.decision.IsZero() || r.promoted.IsZero() || r.recovered.IsZero() {
		log.Fatalf("%d hosts, autopilot %v: unexpected trace: %+v", n, auto, tr)
	}
	if *e2eTrace {
		fmt.Fprintf(os.Stderr, "--- %d hosts, autopilot %v, run %d: power off %s; master check phase %v; MASTER_LOST +%v; serving +%v\n",
			n, auto, run, r.powerOff.Format("15:04:05.000"), r.phase, r.lost.Sub(r.powerOff), r.serving.Sub(r.powerOff))
		for _, s := range tr {
			d := s.Detail
			if len(d) > 160 {
				d = d[:160] + "…"
			}
			fmt.Fprintf(os.Stderr, "  +%-12v %-15s ok=%-5v %s\n", s.Time.Sub(r.powerOff).Round(time.Millisecond), s.Step, s.OK, strings.ReplaceAll(d, "\n", " "))
		}
	}
	return r
}

// serving: exactly one powered host believes it is master, it is not the
// old one, the pool's database names it, and every other powered host
// follows it (its pool.conf names it; not in emergency mode, not booting).
func serving(st xapisim.WorldState, oldMaster string) bool {
	var master *xapisim.HostState
	for i, hs := range st.Hosts {
		if hs.Powered && hs.BelievesMaster {
			if master != nil {
				return false
			}
			master = &st.Hosts[i]
		}
	}
	if master == nil || master.UUID == oldMaster || master.Booting || master.Hung || st.Pools[0].Master != master.UUID {
		return false
	}
	for _, hs := range st.Hosts {
		if !hs.Powered || hs.UUID == master.UUID {
			continue
		}
		if hs.MasterAddress != master.Address || hs.Emergency || hs.Booting {
			return false
		}
	}
	return true
}
