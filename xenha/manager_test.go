package xenha

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
)

type env struct {
	t     *testing.T
	sim   *xapisim.Sim
	clock *xapisim.FakeClock
	m     *Manager
	spec  PoolSpec
}

func newEnv(t *testing.T, hosts int) *env {
	t.Helper()
	fc := xapisim.NewFakeClock()
	sim, err := xapisim.New(xapisim.Config{Hosts: hosts, Clock: fc, Seed: 5, DisableHeartbeatSelfFence: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	m := NewManager(Options{
		XAPI:        xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond},
		PollTimeout: 5 * time.Second,
	})
	t.Cleanup(m.Close)
	info := sim.Info()
	spec := PoolSpec{
		Name: "sim", Members: sim.MemberURLs(),
		Credentials:   xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
		TLS:           xapi.TLSOptions{AllowPlainHTTP: true},
		ProbeInterval: 100 * time.Millisecond,
		Source:        "api",
	}
	return &env{t: t, sim: sim, clock: fc, m: m, spec: spec}
}

func (e *env) attach() *PoolView {
	e.t.Helper()
	v, created, err := e.m.Attach(context.Background(), e.spec)
	if err != nil || !created {
		e.t.Fatalf("attach: %v %v", created, err)
	}
	if !v.Observed {
		e.t.Fatal("not observed within the attach wait")
	}
	return v
}

// eventually polls the view until cond holds.
func (e *env) eventually(what string, cond func(v *PoolView) bool) *PoolView {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		v, err := e.m.Pool("sim")
		if err == nil && cond(v) {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
	v, _ := e.m.Pool("sim")
	e.t.Fatalf("timed out waiting for %s; view: %+v", what, v)
	return nil
}

// next waits for an event of the given type on s.
func next(t *testing.T, s *Subscription, typ EventType) Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-s.C:
			if e.Type == typ {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event", typ)
		}
	}
}

func TestAttachObservesThePool(t *testing.T) {
	e := newEnv(t, 3)
	v := e.attach()
	info := e.sim.Info()
	if v.UUID != info.PoolUUID || v.Controller != ControllerCloudStack || v.Epoch != 1 || v.HAEnabled {
		t.Fatalf("view %+v", v)
	}
	if v.Master.UUID != info.Hosts[0].UUID || !v.Master.Reachable || len(v.Hosts) != 3 || v.LiveHosts() != 3 {
		t.Fatalf("master/hosts %+v %+v", v.Master, v.Hosts)
	}
	if !v.Eligibility.Eligible {
		t.Fatalf("eligibility %v", v.Eligibility.Reasons)
	}
	byUUID, err := e.m.Pool(info.PoolUUID)
	if err != nil || byUUID.Name != "sim" {
		t.Fatalf("lookup by UUID: %v", err)
	}
	// Same spec again: no-op. Different spec: refused.
	if _, created, err := e.m.Attach(context.Background(), e.spec); err != nil || created {
		t.Fatalf("re-attach: %v %v", created, err)
	}
	other := e.spec
	other.Policy = PolicyObserve
	if _, _, err := e.m.Attach(context.Background(), other); !errors.Is(err, ErrPoolExists) {
		t.Fatalf("conflicting attach: %v", err)
	}
	if err := e.m.Detach("sim"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Pool("sim"); !errors.Is(err, ErrUnknownPool) {
		t.Fatalf("after detach: %v", err)
	}
}

func TestAttachRejectsBadSpecs(t *testing.T) {
	e := newEnv(t, 1)
	cases := map[string]func(s *PoolSpec){
		"name":     func(s *PoolSpec) { s.Name = "bad name!" },
		"members":  func(s *PoolSpec) { s.Members = nil },
		"username": func(s *PoolSpec) { s.Credentials.Username = "" },
		"password": func(s *PoolSpec) { s.Credentials.Password = "" },
		"policy":   func(s *PoolSpec) { s.Policy = "sometimes" },
		"storage_timeout": func(s *PoolSpec) {
			s.StorageTimeout = -time.Second
		},
	}
	for field, mut := range cases {
		s := e.spec
		s.Members = append([]string(nil), e.spec.Members...)
		mut(&s)
		_, _, err := e.m.Attach(context.Background(), s)
		var ia *InvalidArgumentError
		if !errors.As(err, &ia) || ia.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
	s := e.spec
	s.TLS.AllowPlainHTTP = false
	if _, _, err := e.m.Attach(context.Background(), s); err == nil {
		t.Error("plain http accepted without allow_plain_http")
	}
}

func TestEnablingXenHAChangesTheController(t *testing.T) {
	e := newEnv(t, 3)
	e.attach()
	sub, err := e.m.Subscribe("sim", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := e.sim.EnableHA(0, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub, EventHAEnabled)
	if ev.Epoch != 2 {
		t.Fatalf("HA_ENABLED epoch %d", ev.Epoch)
	}
	cc := next(t, sub, EventControllerChanged)
	if cc.Controller != ControllerXenHA || cc.Epoch != 2 {
		t.Fatalf("controller event %+v", cc)
	}
	v := e.eventually("heartbeat SR resolved", func(v *PoolView) bool { return len(v.HeartbeatSRs) == 1 })
	if v.HATimeout != 90*time.Second || v.HeartbeatSRs[0] != e.sim.State().Pools[0].SharedSRs[0] {
		t.Fatalf("T %v, heartbeat SRs %v", v.HATimeout, v.HeartbeatSRs)
	}
	if _, ok := has(v.Warnings, WarnNoProtectedVMs); !ok {
		t.Fatalf("warnings %v", codes(v.Warnings))
	}
}

func TestCacheFollowsAXenHAFailover(t *testing.T) {
	e := newEnv(t, 3)
	if err := e.sim.EnableHA(0, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	v0 := e.attach()
	sub, _ := e.m.Subscribe("", 0, "")
	defer sub.Close()

	if err := e.sim.PowerOff(0); err != nil {
		t.Fatal(err)
	}
	lost := next(t, sub, EventMasterLost)
	if lost.Host != v0.Master.UUID {
		t.Fatalf("MASTER_LOST %+v", lost)
	}
	e.eventually("master unreachable", func(v *PoolView) bool {
		_, ok := has(v.Warnings, WarnMasterUnreachable)
		return ok && !v.Master.Reachable
	})
	e.clock.Advance(31 * time.Second) // xhad decides
	changed := next(t, sub, EventMasterChanged)
	if changed.Cause != CauseXenHAElection || changed.Previous != v0.Master.UUID || changed.Host == v0.Master.UUID {
		t.Fatalf("MASTER_CHANGED %+v", changed)
	}
	v := e.eventually("new master reachable", func(v *PoolView) bool { return v.Master.Reachable })
	if v.Master.UUID != changed.Host || v.Epoch <= v0.Epoch {
		t.Fatalf("view after failover: master %s epoch %d (was %d)", v.Master.UUID, v.Epoch, v0.Epoch)
	}
	down := next(t, sub, EventHostDown)
	if down.Host != v0.Master.UUID {
		t.Fatalf("HOST_DOWN %+v", down)
	}
}

func TestAdminDesignationIsFollowedAndNamed(t *testing.T) {
	e := newEnv(t, 3)
	e.attach()
	sub, _ := e.m.Subscribe("sim", 0, "")
	defer sub.Close()
	if err := e.sim.Designate(2); err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub, EventMasterChanged)
	if ev.Cause != CauseAdminDesignation || ev.Host != e.sim.Info().Hosts[2].UUID {
		t.Fatalf("MASTER_CHANGED %+v", ev)
	}
}

func TestSplitBrainIsReported(t *testing.T) {
	e := newEnv(t, 3)
	e.attach()
	sub, _ := e.m.Subscribe("sim", 0, "")
	defer sub.Close()
	if err := e.sim.PowerOff(0); err != nil {
		t.Fatal(err)
	}
	info := e.sim.Info()
	local, err := xapi.NewSlaveLocalClient(info.Hosts[1].URL, e.spec.Credentials, xapi.Options{TLS: e.spec.TLS})
	if err != nil {
		t.Fatal(err)
	}
	if err := local.PoolEmergencyTransitionToMaster(context.Background()); err != nil {
		t.Fatal(err)
	}
	local.Close(context.Background())
	if err := e.sim.PowerOn(0); err != nil { // the old master returns, still master
		t.Fatal(err)
	}
	next(t, sub, EventSplitBrain)
	v := e.eventually("split brain warning", func(v *PoolView) bool { _, ok := has(v.Warnings, WarnSplitBrain); return ok })
	if len(v.Claimers) != 2 {
		t.Fatalf("claimers %v", v.Claimers)
	}
}

func TestMasterCutOffFromTheBridgeIsSeenByTheProbe(t *testing.T) {
	e := newEnv(t, 3)
	e.attach()
	if err := e.sim.CutBridge(0, true); err != nil {
		t.Fatal(err)
	}
	// The event loop hangs on the master; the probe sees it gone.
	e.eventually("master unreachable", func(v *PoolView) bool { return !v.Master.Reachable })
	if err := e.sim.CutBridge(0, false); err != nil {
		t.Fatal(err)
	}
	e.eventually("master reachable again", func(v *PoolView) bool { return v.Master.Reachable })
}

// A powered-off master on a real network is silent: the event long-poll
// never breaks. The master check notices within its interval plus the
// probe timeout, long before the next probe round of every member.
func TestASilentMasterIsNoticedByTheMasterCheck(t *testing.T) {
	e := newEnv(t, 3)
	e.spec.ProbeInterval = time.Hour // only the master check can notice
	e.spec.MasterProbeInterval = 200 * time.Millisecond
	e.attach()
	sub, err := e.m.Subscribe("sim", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := e.sim.PowerOff(0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ev := next(t, sub, EventMasterLost)
	if took := time.Since(start); took > 5*time.Second || ev.Host != e.sim.Info().Hosts[0].UUID {
		t.Fatalf("MASTER_LOST %+v after %s", ev, took)
	}
}

// An admin designates another master while the old one is cut off from
// the bridge: the watcher follows the new master (a search for it is
// never cut short by the probes of the silent old one).
func TestADesignationIsFollowedWhileTheOldMasterIsSilent(t *testing.T) {
	e := newEnv(t, 3)
	e.attach()
	if err := e.sim.CutBridge(0, true); err != nil {
		t.Fatal(err)
	}
	e.eventually("master unreachable", func(v *PoolView) bool { return !v.Master.Reachable })
	if err := e.sim.Designate(2); err != nil {
		t.Fatal(err)
	}
	want := e.sim.Info().Hosts[2].UUID
	e.eventually("the designated master followed", func(v *PoolView) bool { return v.Master.UUID == want && v.Master.Reachable })
}

// CloudStack hands a cluster over again when its hosts change: a pool
// attached through the API follows the new member list (the host added
// since can be probed and promoted), keeps its epoch and its subscribers;
// the same members in another order change nothing; a list with no member
// in common (another cluster under the same name), a pool from the
// configuration file, or any other setting is still refused.
func TestAReattachFollowsTheClustersHosts(t *testing.T) {
	e := newEnv(t, 3)
	all := e.spec.Members
	e.spec.Members = all[:2]
	before := e.attach()
	third := e.sim.Info().Hosts[2].Address
	h, err := e.m.Handle("sim")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.MemberURL(third); ok {
		t.Fatal("a host not attached is a member")
	}
	sub, err := e.m.Subscribe("sim", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	reordered := e.spec
	reordered.Members = []string{all[1], all[0]}
	w := e.m.pools["sim"]
	if _, created, err := e.m.Attach(context.Background(), reordered); err != nil || created || e.m.pools["sim"] != w {
		t.Fatalf("same members in another order: created %v, err %v, restarted %v", created, err, e.m.pools["sim"] != w)
	}

	grown := e.spec
	grown.Members = []string{all[2], all[0], all[1]}
	v, created, err := e.m.Attach(context.Background(), grown)
	if err != nil || created {
		t.Fatalf("re-attach with a host added: created %v, err %v", created, err)
	}
	if len(v.Members) != 3 || v.Epoch != before.Epoch {
		t.Fatalf("after the re-attach: members %v, epoch %d (was %d)", v.Members, v.Epoch, before.Epoch)
	}
	h, err = e.m.Handle("sim")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.MemberURL(third); !ok {
		t.Fatal("the host added is not a member after the re-attach")
	}
	if p := h.Probe(context.Background(), third); p.State != xapi.ProbeSlave {
		t.Fatalf("the host added is not probed: %+v", p)
	}
	// The subscription opened before the re-attach still hears the pool.
	if err := e.sim.PowerOff(2); err != nil {
		t.Fatal(err)
	}
	h.Refresh()
	e.clock.Advance(11 * time.Minute) // past xapi's 600 s live rule
	next(t, sub, EventHostDown)

	refused := map[string]func(s *PoolSpec){
		"another policy":          func(s *PoolSpec) { s.Policy = PolicyObserve },
		"another storage timeout": func(s *PoolSpec) { s.StorageTimeout = 3 * time.Minute },
		"from the file":           func(s *PoolSpec) { s.Source = "config"; s.Members = all[:2] },
		"no member in common":     func(s *PoolSpec) { s.Members = []string{"http://127.0.0.1:1"} },
		"members and policy":      func(s *PoolSpec) { s.Members = all[:1]; s.Policy = PolicyObserve },
	}
	for what, change := range refused {
		s := grown
		change(&s)
		if _, _, err := e.m.Attach(context.Background(), s); !errors.Is(err, ErrPoolExists) {
			t.Errorf("%s: %v, want ErrPoolExists", what, err)
		}
	}
	// A pool from the configuration file is not changed through the API.
	if err := e.m.Detach("sim"); err != nil {
		t.Fatal(err)
	}
	fromFile := grown
	fromFile.Source = "config"
	if _, _, err := e.m.Attach(context.Background(), fromFile); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.m.Attach(context.Background(), e.spec); !errors.Is(err, ErrPoolExists) {
		t.Errorf("other members for a pool from the file: %v, want ErrPoolExists", err)
	}
}

// Re-attaches in a row while each new watcher makes its first observation:
// the manager's lock and a watcher's were once taken in opposite orders
// (setUUID under the watcher's lock, the replacement under the manager's),
// which hung within a few hundred re-attaches (this test, before the fix).
func TestReattachesInARowNeverDeadlock(t *testing.T) {
	e := newEnv(t, 3)
	e.attach()
	all := e.spec.Members
	h, _ := e.m.Handle("sim")
	done, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := range 400 {
			s := e.spec
			s.Members = all[:2+i%2] // host-0, the master, always stays
			if _, _, err := e.m.Attach(context.Background(), s); err != nil {
				t.Errorf("re-attach %d: %v", i, err)
				return
			}
			time.Sleep(time.Duration(i%8) * time.Millisecond) // let the new watcher make its first observation
		}
	}()
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				h.ExpectMaster("") // takes the current watcher's lock, as an election does
				e.m.Pools()
			}
		}
	}()
	defer close(stop)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("re-attaches hung")
	}
}

// What the bridge knew survives a replacement: a pool whose master is lost
// stays observed (an election can still run), the new members never leave
// out the master of record, handles taken before follow the new watcher,
// and only the credentials may change too.
func TestAReplacementKeepsWhatTheBridgeKnew(t *testing.T) {
	e := newEnv(t, 3)
	e.attach()
	all := e.spec.Members
	before, err := e.m.Handle("sim")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.PowerOff(0); err != nil {
		t.Fatal(err)
	}
	lost := e.eventually("master lost", func(v *PoolView) bool { return v.Observed && !v.Master.Reachable })

	withoutMaster := e.spec
	withoutMaster.Members = all[1:]
	if _, _, err := e.m.Attach(context.Background(), withoutMaster); !errors.Is(err, ErrDropsMaster) {
		t.Fatalf("members leaving out the lost master: %v, want ErrDropsMaster", err)
	}
	fewer := e.spec
	fewer.Members = all[:2]
	v, _, err := e.m.Attach(context.Background(), fewer)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Observed || v.Controller != ControllerCloudStack || v.Master.UUID != lost.Master.UUID || v.Epoch != lost.Epoch {
		t.Fatalf("the replacement forgot the pool: %+v", v)
	}
	time.Sleep(300 * time.Millisecond) // the new watcher's probes and search run
	if v := before.View(); !v.Observed || v.Controller != ControllerCloudStack || len(v.Members) != 2 {
		t.Fatalf("a handle taken before the replacement: %+v", v)
	}

	rotated := fewer
	rotated.Credentials.Password = "rotated"
	if _, created, err := e.m.Attach(context.Background(), rotated); err != nil || created {
		t.Fatalf("new credentials: created %v, err %v", created, err)
	}
	if got := before.Spec().Credentials.Password; got != "rotated" {
		t.Fatal("the handle does not follow the new credentials")
	}

	// Detached, then another pool under the same name: the old handle is
	// not moved to it, and says nobody acts through it.
	if err := e.m.Detach("sim"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.m.Attach(context.Background(), e.spec); err != nil {
		t.Fatal(err)
	}
	if v := before.View(); v.Observed || v.Controller != ControllerNone {
		t.Fatalf("a handle of a detached pool still acts: %+v", v)
	}
}
