package fencing

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/journal/journaltest"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// simDevice is a BMC backed by the simulator's power switch, counting
// power-offs, for the orchestration tests. The real protocols are tested
// in fencing/ipmi and fencing/redfish against real peers.
type simDevice struct {
	sim     *xapisim.Sim
	host    int
	mu      sync.Mutex
	offs    int
	down    bool // unreachable, as a BMC gone with its host
	stuckOn bool // accepts power-off but never turns off
}

func (d *simDevice) Driver() string { return "sim" }

func (d *simDevice) PowerState(ctx context.Context) (PowerState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return PowerUnknown, fmt.Errorf("%w: test BMC down", ErrUnreachable)
	}
	if d.sim.State().Hosts[d.host].Powered {
		return PowerOn, nil
	}
	return PowerOff, nil
}

func (d *simDevice) PowerOff(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return fmt.Errorf("%w: test BMC down", ErrUnreachable)
	}
	d.offs++
	if d.stuckOn {
		return nil
	}
	return d.sim.PowerOff(d.host)
}

type env struct {
	t       *testing.T
	sim     *xapisim.Sim
	clock   *xapisim.FakeClock
	m       *xenha.Manager
	j       *journal.Bolt
	devices map[int]*simDevice
	f       *Fencer
}

func newEnv(t *testing.T, hosts int, policy xenha.Policy, opts Options) *env {
	t.Helper()
	fc := xapisim.NewFakeClock()
	sim, err := xapisim.New(xapisim.Config{Hosts: hosts, Clock: fc, Seed: 21, DisableHeartbeatSelfFence: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	j, err := journal.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	m := xenha.NewManager(xenha.Options{XAPI: xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond}, Epochs: j})
	t.Cleanup(m.Close)
	info := sim.Info()
	if _, _, err := m.Attach(context.Background(), xenha.PoolSpec{
		Name: "p", Members: sim.MemberURLs(), Policy: policy,
		Credentials:   xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
		TLS:           xapi.TLSOptions{AllowPlainHTTP: true},
		ProbeInterval: 100 * time.Millisecond,
	}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sim: sim, clock: fc, m: m, j: j, devices: map[int]*simDevice{}}
	opts.Journal = j
	if opts.ProbeSpacing == 0 {
		opts.ProbeSpacing = 50 * time.Millisecond
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	if opts.VerifyTimeout == 0 {
		opts.VerifyTimeout = 3 * time.Second
	}
	opts.Devices = func(pool string, host xenha.HostView) Device {
		for i, h := range info.Hosts {
			if h.UUID == host.UUID {
				if d, ok := e.devices[i]; ok {
					return d
				}
			}
		}
		return nil
	}
	e.f = New(opts)
	return e
}

func (e *env) bmc(i int) *simDevice {
	d := &simDevice{sim: e.sim, host: i}
	e.devices[i] = d
	return d
}

func (e *env) handle() *xenha.Handle {
	h, err := e.m.Handle("p")
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// settle waits until the view agrees with cond (the watcher runs on real time).
func (e *env) settle(what string, cond func(v *xenha.PoolView) bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(e.handle().View()) {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) fence(host int, mut func(r *Request)) (*Result, error) {
	e.t.Helper()
	req := Request{Pool: e.handle(), Host: e.sim.Info().Hosts[host].UUID, RequestID: fmt.Sprintf("r-%d-%d", host, time.Now().UnixNano())}
	if mut != nil {
		mut(&req)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return e.f.Fence(ctx, req)
}

func (e *env) mustFence(host int, mut func(r *Request)) *Result {
	e.t.Helper()
	res, err := e.fence(host, mut)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func trace(r *Result) string {
	var b strings.Builder
	for _, s := range r.Trace {
		fmt.Fprintf(&b, "  %s ok=%v: %s\n", s.Step, s.OK, s.Detail)
	}
	return b.String()
}

func (e *env) guestsOn(i int) (running int) {
	uuid := e.sim.Info().Hosts[i].UUID
	for _, vm := range e.sim.State().Pools[0].VMs {
		if vm.ResidentOn == uuid && vm.PowerState == "Running" {
			running++
		}
	}
	return running
}

// hang makes a host look dead without touching its power: its XAPI hangs
// and it stops writing its storage heartbeat (150 s pass on the pool's clock).
func (e *env) hang(i int) {
	e.sim.HangXAPI(i, true)
	e.sim.CutStorage(i, true)
	e.clock.Advance(150 * time.Second)
}

// crash powers a host off and lets its heartbeat go stale (150 s on the
// pool's clock: past CloudStack's 120 s check, before xapi's 600 s).
func (e *env) crash(i int) {
	e.t.Helper()
	if err := e.sim.PowerOff(i); err != nil {
		e.t.Fatal(err)
	}
	e.clock.Advance(150 * time.Second)
	addr := e.sim.Info().Hosts[i].Address
	e.settle("the prober to see the host gone", func(v *xenha.PoolView) bool {
		h, _ := v.Host(addr)
		return h.Probe == "unreachable"
	})
}

func TestFenceADeadHostThroughItsBMC(t *testing.T) {
	e := newEnv(t, 3, xenha.PolicyAuto, Options{})
	dev := e.bmc(2)
	sub, _ := e.m.Subscribe("p", 0, "")
	defer sub.Close()
	e.hang(2)
	res := e.mustFence(2, nil)
	if res.Outcome != Fenced || res.Method != "sim" || dev.offs != 1 {
		t.Fatalf("outcome %s method %s offs %d\n%s", res.Outcome, res.Method, dev.offs, trace(res))
	}
	if len(res.VMResets) != 2 || !res.VMResets[0].Reset || !res.VMResets[1].Reset {
		t.Fatalf("VM resets %+v\n%s", res.VMResets, trace(res))
	}
	if e.guestsOn(2) != 0 || e.sim.State().Hosts[2].Powered {
		t.Fatal("the host or its VMs still run")
	}
	for {
		select {
		case ev := <-sub.C:
			if ev.Type != xenha.EventHostFenced {
				continue
			}
			if ev.Host != res.HostUUID {
				t.Fatalf("HOST_FENCED %+v", ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no HOST_FENCED event")
		}
		break
	}
	entries, _ := e.j.Entries("p", 0, 0)
	steps := map[string]bool{}
	for _, en := range entries {
		steps[en.Step] = true
	}
	for _, want := range []string{"request", "witness:xapi", "witness:heartbeat", "decision", "level:bmc", "verify", "vm-reset", "result"} {
		if !steps[want] {
			t.Fatalf("journal lacks %q: %v", want, steps)
		}
	}
}

func TestALiveHostIsNeverFenced(t *testing.T) {
	cases := map[string]func(e *env){
		"healthy":                       func(e *env) {},
		"cut off from the bridge only":  func(e *env) { e.sim.CutBridge(2, true) },
		"misses one heartbeat":          func(e *env) { e.sim.CutStorage(2, true); e.clock.Advance(70 * time.Second) },
		"XAPI hung but storage beating": func(e *env) { e.sim.HangXAPI(2, true) },
	}
	for name, fault := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 3, xenha.PolicyAuto, Options{})
			dev := e.bmc(2)
			fault(e)
			res := e.mustFence(2, nil)
			if res.Outcome != RefusedAlive || dev.offs != 0 || !e.sim.State().Hosts[2].Powered || e.guestsOn(2) != 2 {
				t.Fatalf("outcome %s, power-offs %d\n%s", res.Outcome, dev.offs, trace(res))
			}
		})
	}
}

func TestForceOverridesAndIsJournaled(t *testing.T) {
	e := newEnv(t, 3, xenha.PolicyAuto, Options{})
	dev := e.bmc(1)
	res := e.mustFence(1, func(r *Request) { r.Force = true; r.Reason = "operator: host wedged" })
	if res.Outcome != Fenced || dev.offs != 1 {
		t.Fatalf("forced fence: %s\n%s", res.Outcome, trace(res))
	}
	entries, _ := e.j.Entries("p", 0, 0)
	found := false
	for _, en := range entries {
		if en.Step == "override" && strings.Contains(en.Detail, "alive") {
			found = true
		}
	}
	if !found {
		t.Fatal("the override is not in the journal")
	}
}

func TestGuards(t *testing.T) {
	t.Run("fencing storm", func(t *testing.T) {
		e := newEnv(t, 3, xenha.PolicyAuto, Options{})
		dev := e.bmc(2)
		e.sim.PowerOff(1)
		e.crash(2)
		addr := e.sim.Info().Hosts[1].Address
		e.settle("the prober to see host 1 gone too", func(v *xenha.PoolView) bool {
			h, _ := v.Host(addr)
			return h.Probe == "unreachable"
		})
		res := e.mustFence(2, nil)
		if res.Outcome != RefusedEvidence || dev.offs != 0 || !strings.Contains(trace(res), "storm") {
			t.Fatalf("%s\n%s", res.Outcome, trace(res))
		}
	})
	t.Run("two-host pool without a BMC", func(t *testing.T) {
		e := newEnv(t, 2, xenha.PolicyAuto, Options{})
		e.crash(1)
		res := e.mustFence(1, nil)
		if res.Outcome != RefusedEvidence || !strings.Contains(trace(res), "beyond the peer") || e.guestsOn(1) != 2 {
			t.Fatalf("%s\n%s", res.Outcome, trace(res))
		}
	})
	t.Run("two-host pool with a BMC", func(t *testing.T) {
		e := newEnv(t, 2, xenha.PolicyAuto, Options{})
		e.bmc(1)
		e.crash(1)
		res := e.mustFence(1, nil)
		if res.Outcome != Fenced || res.Method != "already-off" || e.guestsOn(1) != 0 {
			t.Fatalf("%s\n%s", res.Outcome, trace(res))
		}
	})
	t.Run("two-host partition: the peer lost the host, the bridge has not", func(t *testing.T) {
		e := newEnv(t, 2, xenha.PolicyAuto, Options{})
		dev := e.bmc(1)
		e.sim.CutLink(0, 1, true)
		e.clock.Advance(601 * time.Second) // the master has long marked it not live
		res := e.mustFence(1, nil)
		if res.Outcome != RefusedAlive || dev.offs != 0 || e.guestsOn(1) != 2 {
			t.Fatalf("%s\n%s", res.Outcome, trace(res))
		}
	})
	t.Run("not enough evidence", func(t *testing.T) {
		e := newEnv(t, 3, xenha.PolicyAuto, Options{})
		e.sim.PowerOff(2) // heartbeat still young, live still true: only the probes say dead
		res := e.mustFence(2, nil)
		if res.Outcome == Fenced || e.guestsOn(2) != 2 {
			t.Fatalf("%s\n%s", res.Outcome, trace(res))
		}
	})
	t.Run("one witness only", func(t *testing.T) {
		e := newEnv(t, 3, xenha.PolicyAuto, Options{})
		e.sim.PowerOff(2)
		// The peers lose their storage: the heartbeat cannot be read, the
		// master still says live; only the bridge's probes say dead.
		e.sim.CutStorage(0, true)
		e.sim.CutStorage(1, true)
		e.clock.Advance(150 * time.Second)
		res := e.mustFence(2, nil)
		// A refusal for want of evidence, not "every level failed": no
		// level was tried.
		if res.Outcome != RefusedEvidence || strings.Contains(trace(res), "level:") || e.guestsOn(2) != 2 ||
			!strings.Contains(trace(res), "not enough evidence") {
			t.Fatalf("%s\n%s", res.Outcome, trace(res))
		}
	})
	t.Run("stale epoch", func(t *testing.T) {
		e := newEnv(t, 3, xenha.PolicyAuto, Options{})
		epoch := e.handle().View().Epoch
		e.sim.Designate(1)
		e.settle("the new master", func(v *xenha.PoolView) bool { return v.Epoch > epoch })
		_, err := e.fence(2, func(r *Request) { r.ExpectedEpoch = epoch })
		if !errors.Is(err, ErrStaleEpoch) {
			t.Fatalf("stale epoch: %v", err)
		}
	})
	t.Run("nobody in control", func(t *testing.T) {
		e := newEnv(t, 3, xenha.PolicyObserve, Options{})
		if _, err := e.fence(2, nil); !errors.Is(err, ErrNoController) {
			t.Fatalf("policy observe: %v", err)
		}
	})
	t.Run("unknown host", func(t *testing.T) {
		e := newEnv(t, 3, xenha.PolicyAuto, Options{})
		if _, err := e.fence(0, func(r *Request) { r.Host = "no-such-host" }); !errors.Is(err, ErrUnknownHost) {
			t.Fatalf("unknown host: %v", err)
		}
	})
}

func TestLevelsFallThrough(t *testing.T) {
	t.Run("BMC gone with its host: the heartbeat self-fence is waited out", func(t *testing.T) {
		e := newEnv(t, 3, xenha.PolicyAuto, Options{})
		dev := e.bmc(2)
		dev.down = true
		e.crash(2)
		stop := make(chan struct{})
		defer close(stop)
		go func() { // the pool's time goes on while the bridge waits
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
					e.clock.Advance(5 * time.Second)
				}
			}
		}()
		res := e.mustFence(2, nil)
		if res.Outcome != Fenced || res.Method != LevelHeartbeatWait || e.guestsOn(2) != 0 {
			t.Fatalf("%s %s\n%s", res.Outcome, res.Method, trace(res))
		}
		tr := trace(res)
		if !strings.Contains(tr, "level:bmc ok=false") || !strings.Contains(tr, "level:xapi-soft ok=false") {
			t.Fatalf("levels not tried in order:\n%s", tr)
		}
	})
	t.Run("a power-off that never reads back off fails the level", func(t *testing.T) {
		e := newEnv(t, 3, xenha.PolicyAuto, Options{VerifyTimeout: 300 * time.Millisecond,
			Levels: []string{LevelBMC}})
		dev := e.bmc(2)
		e.hang(2)
		dev.stuckOn = true
		res := e.mustFence(2, func(r *Request) { r.RequestID = "stuck" })
		if res.Outcome == Fenced || e.guestsOn(2) != 2 {
			t.Fatalf("unverified power-off counted: %s\n%s", res.Outcome, trace(res))
		}
	})
}

func TestConcurrentAndRepeatedFencesActOnce(t *testing.T) {
	e := newEnv(t, 3, xenha.PolicyAuto, Options{})
	dev := e.bmc(2)
	e.hang(2)
	var wg sync.WaitGroup
	results := make([]*Result, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "same"
			if i == 3 {
				id = "another"
			}
			res, err := e.fence(2, func(r *Request) { r.RequestID = id })
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		}()
	}
	wg.Wait()
	if dev.offs != 1 {
		t.Fatalf("%d power-offs for concurrent fences of one host", dev.offs)
	}
	for _, r := range results {
		if r.Outcome != Fenced {
			t.Fatalf("outcome %s\n%s", r.Outcome, trace(r))
		}
	}
	// The three "same" share one result; whichever ran first reset the VMs,
	// the other found them Halted: each VM was reset exactly once.
	for _, r := range results[1:3] {
		if len(r.Trace) != len(results[0].Trace) || !r.Trace[0].Time.Equal(results[0].Trace[0].Time) {
			t.Fatal("requests with one id got different results")
		}
	}
	if n := countResets(results[0].VMResets) + countResets(results[3].VMResets); n != 2 {
		t.Fatalf("%d resets for 2 VMs", n)
	}
	again := e.mustFence(2, func(r *Request) { r.RequestID = "same" })
	if len(again.Trace) != len(results[0].Trace) || !again.Trace[0].Time.Equal(results[0].Trace[0].Time) {
		t.Fatal("a repeated request id did not return the first result")
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	e := newEnv(t, 3, xenha.PolicyAuto, Options{})
	dev := e.bmc(2)
	e.hang(2)
	before, _ := e.j.Entries("p", 0, 0)
	res := e.mustFence(2, func(r *Request) { r.DryRun = true })
	after, _ := e.j.Entries("p", 0, 0)
	if !res.DryRun || res.Outcome != Fenced || dev.offs != 0 || e.guestsOn(2) != 2 || len(after) != len(before) {
		t.Fatalf("dry run acted: %s offs=%d\n%s", res.Outcome, dev.offs, trace(res))
	}
	if !strings.Contains(trace(res), "VM.power_state_reset for 2 VM(s)") {
		t.Fatalf("the plan is missing:\n%s", trace(res))
	}
}

func TestXenHAPoolsAreNeverFencedByTheBridge(t *testing.T) {
	e := newEnv(t, 3, xenha.PolicyAuto, Options{})
	dev := e.bmc(2)
	e.sim.EnableHA(0, 30*time.Second)
	e.settle("XenHA controller", func(v *xenha.PoolView) bool { return v.Controller == xenha.ControllerXenHA })
	e.sim.PowerOff(2)
	res := e.mustFence(2, nil)
	if res.Outcome != Deferred || res.OutsideLiveset || res.VMsHalted || dev.offs != 0 {
		t.Fatalf("before XenHA decided: %+v\n%s", res, trace(res))
	}
	e.clock.Advance(31 * time.Second)
	e.settle("XenHA to drop the host", func(v *xenha.PoolView) bool {
		h, _ := v.Host(e.sim.Info().Hosts[2].UUID)
		return !h.Live
	})
	res = e.mustFence(2, nil)
	if res.Outcome != Deferred || !res.OutsideLiveset || !res.VMsHalted || dev.offs != 0 {
		t.Fatalf("after XenHA fenced: %+v\n%s", res, trace(res))
	}
}

func TestAnIncompleteResultIsNotKeptSoTheRetryFinishes(t *testing.T) {
	e := newEnv(t, 3, xenha.PolicyAuto, Options{})
	e.bmc(2)
	e.hang(2)
	// A deadline that ends right after the power-off: the VM resets fail.
	ctx, cancel := context.WithCancel(context.Background())
	req := Request{Pool: e.handle(), Host: e.sim.Info().Hosts[2].UUID, RequestID: "partial"}
	go func() {
		for !e.sim.State().Hosts[2].Powered == false {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	first, err := e.f.Fence(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Outcome != Fenced {
		t.Skipf("the deadline came before the power-off (%s): nothing to retry", first.Outcome)
	}
	if !first.Incomplete {
		t.Fatalf("resets were cut short but the result is not marked incomplete: %+v", first.VMResets)
	}
	again := e.mustFence(2, func(r *Request) { r.RequestID = "partial" })
	if n := countResets(first.VMResets) + countResets(again.VMResets); n != 2 || e.guestsOn(2) != 0 {
		t.Fatalf("resets: first %+v, retry %+v", first.VMResets, again.VMResets)
	}
}

// A fence the journal cannot record is not carried out.
// flipGuard holds the lease for its first n checks, then another bridge
// does.
type flipGuard struct {
	mu sync.Mutex
	n  int
}

func (g *flipGuard) Check(context.Context, string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n <= 0 {
		return &lease.NotHolderError{Pool: "p", Holder: "mgmt-2"}
	}
	g.n--
	return nil
}

// A fence whose bridge loses the lease midway stops there, answers with
// the lease's error and keeps no result: the same request id at the
// holder is carried out, not answered "failed" from the journal.
func TestAFenceThatLosesItsLeaseMidwayStopsAndKeepsNoResult(t *testing.T) {
	e := newEnv(t, 3, xenha.PolicyAuto, Options{})
	g := &flipGuard{n: 1} // the check before the fence starts passes
	e.f.opts.Lease = g
	dev := e.bmc(2)
	e.hang(2)
	_, err := e.fence(2, func(r *Request) { r.RequestID = "f1" })
	var nh *lease.NotHolderError
	if !errors.As(err, &nh) || nh.Holder != "mgmt-2" {
		t.Fatalf("fence after the lease went: %v", err)
	}
	if dev.offs != 0 || !e.sim.State().Hosts[2].Powered {
		t.Fatalf("the host was powered off (%d) by a bridge without the lease", dev.offs)
	}
	e.f.opts.Lease = &flipGuard{n: 100} // this bridge holds it again
	res := e.mustFence(2, func(r *Request) { r.RequestID = "f1" })
	if res.Outcome != Fenced || dev.offs != 1 {
		t.Fatalf("the same request id afterwards: %s, offs %d\n%s", res.Outcome, dev.offs, trace(res))
	}
}

func TestNoFenceTheJournalCannotRecord(t *testing.T) {
	e := newEnv(t, 3, xenha.PolicyAuto, Options{})
	e.f.opts.Journal = journaltest.FailStep{Store: e.j, Step: "controller"}
	dev := e.bmc(2)
	e.hang(2)
	res := e.mustFence(2, nil)
	if res.Outcome != Failed || dev.offs != 0 || !strings.Contains(trace(res), "journal cannot record") {
		t.Fatalf("outcome %s offs %d\n%s", res.Outcome, dev.offs, trace(res))
	}
	if !e.sim.State().Hosts[2].Powered || e.guestsOn(2) == 0 {
		t.Fatal("the host was powered off or its VMs reset anyway")
	}
}

// enableHAAt is a journal that enables XenHA in the simulated pool when a
// step is written: XenHA taking over between the decision and the act.
type enableHAAt struct {
	journal.Store
	sim  *xapisim.Sim
	step string
	done bool
}

func (j *enableHAAt) Append(e journal.Entry) (journal.Entry, error) {
	if e.Step == j.step && e.OK && !j.done {
		j.done = true
		if err := j.sim.EnableHA(0, 60*time.Second); err != nil {
			return journal.Entry{}, err
		}
	}
	return j.Store.Append(e)
}

// XenHA enabled between the decision and the first destructive call: the
// bridge does not act, and says XenHA has the host (not finished yet), not
// that every level failed.
func TestXenHAEnabledAfterTheDecisionIsDeferredNotFailed(t *testing.T) {
	e := newEnv(t, 3, xenha.PolicyAuto, Options{})
	e.f.opts.Journal = &enableHAAt{Store: e.j, sim: e.sim, step: "decision"}
	dev := e.bmc(2)
	// force: the host is up (XenHA can only be enabled with every host up).
	res := e.mustFence(2, func(r *Request) { r.Force = true })
	if res.Outcome != Deferred || res.OutsideLiveset || res.VMsHalted || dev.offs != 0 ||
		!strings.Contains(trace(res), "XenHA was enabled since the decision") {
		t.Fatalf("outcome %s offs %d\n%s", res.Outcome, dev.offs, trace(res))
	}
	if !e.sim.State().Hosts[2].Powered || e.guestsOn(2) == 0 {
		t.Fatal("the host was powered off or its VMs reset")
	}
}
