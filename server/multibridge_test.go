package server

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/fencing/redfish"
	"github.com/cloudstack-xenha/xenha-bridge/internal/mariadbtest"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/membership"
	"github.com/cloudstack-xenha/xenha-bridge/mysqlstore"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

func TestMain(m *testing.M) { mariadbtest.Main(m) }

// Short lease numbers keep these tests quick; their relations are the
// defaults'.
var testLease = lease.Config{Duration: 1500 * time.Millisecond, Renew: 150 * time.Millisecond, Margin: 500 * time.Millisecond}

// bridge is one management server's bridge, on the shared database
// through a proxy a test can cut.
type bridge struct {
	id     string
	proxy  *mariadbtest.Proxy
	keeper *lease.Keeper
	c      pb.XenHAServiceClient
	stop   func()
}

// world is a simulated pool, a shared MariaDB and the bridges on them.
type multiWorld struct {
	t     *testing.T
	db    mariadbtest.Database
	sim   *xapisim.Sim
	clock *xapisim.FakeClock
	mu    sync.Mutex
	audit []xapisim.AuditRecord
}

func newMultiWorld(t *testing.T) *multiWorld {
	w := &multiWorld{t: t, db: mariadbtest.New(t), clock: xapisim.NewFakeClock()}
	sim, err := xapisim.New(xapisim.Config{Hosts: 3, Clock: w.clock, Seed: 5, DisableHeartbeatSelfFence: true,
		Audit: func(r xapisim.AuditRecord) { w.mu.Lock(); w.audit = append(w.audit, r); w.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	w.sim = sim
	return w
}

func (w *multiWorld) count(action string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, r := range w.audit {
		if r.Action == action && r.Err == "" {
			n++
		}
	}
	return n
}

func (w *multiWorld) bridge(id string) *bridge {
	t := w.t
	t.Helper()
	b := &bridge{id: id, proxy: mariadbtest.NewProxy(t, w.db.Addr)}
	store, err := mysqlstore.Open(context.Background(), mysqlstore.Config{DSN: w.db.DSNVia(b.proxy.Addr), Password: w.db.Password,
		Timeout: time.Second, Bridge: id})
	if err != nil {
		t.Fatal(err)
	}
	m := xenha.NewManager(xenha.Options{XAPI: xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond}, Epochs: store})
	info := w.sim.Info()
	if _, _, err := m.Attach(context.Background(), xenha.PoolSpec{Name: "sim", Members: w.sim.MemberURLs(),
		Credentials: xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
		TLS:         xapi.TLSOptions{AllowPlainHTTP: true}, ProbeInterval: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	cfg := testLease
	cfg.ID, cfg.Address = id, id+":50051"
	b.keeper, err = lease.New(store, cfg, func() []lease.Pool {
		var out []lease.Pool
		for _, v := range m.Pools() {
			out = append(out, lease.Pool{UUID: v.UUID, Name: v.Name})
		}
		return out
	})
	if err != nil {
		t.Fatal(err)
	}
	devices := func(_ string, h xenha.HostView) fencing.Device {
		for _, hi := range info.Hosts {
			if hi.UUID == h.UUID {
				d, _ := redfish.New(redfish.Config{URL: hi.BMCURL, Username: info.BMCUsername, Password: info.BMCPassword, AllowPlainHTTP: true})
				return d
			}
		}
		return nil
	}
	elector := elect.New(elect.Options{Journal: store, Devices: devices, Lease: b.keeper,
		ProbeSpacing: 20 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	fencer := fencing.New(fencing.Options{Journal: store, Devices: devices, Lease: b.keeper,
		ProbeSpacing: 20 * time.Millisecond, PollInterval: 20 * time.Millisecond, VerifyTimeout: 2 * time.Second})
	members := &membership.Service{Pools: m, Journal: store, Lease: b.keeper}
	srv := New(NewService(m, nil, WithElection(elector), WithFencing(fencer, nil), WithJournal(store),
		WithMembership(members), WithLeases(b.keeper)), Options{})
	ln := bufconn.Listen(1 << 20)
	go srv.Serve(ln)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	b.c = pb.NewXenHAServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.keeper.Run(ctx); close(done) }()
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			conn.Close()
			srv.Stop(time.Second)
			m.Close()
			store.Close()
		})
	}
	t.Cleanup(b.stop)
	return b
}

// kill stops the bridge as a crash would: no release of its lease (its
// database link is cut first), no goodbye.
func (b *bridge) kill() {
	b.proxy.Cut(true)
	b.stop()
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// holder waits until exactly one bridge says it holds the pool's lease.
func holder(t *testing.T, bs ...*bridge) *bridge {
	t.Helper()
	deadline := time.Now().Add(10 * testLease.Duration)
	for {
		var held []*bridge
		for _, b := range bs {
			r, err := b.c.HAMode(ctxFor(t), &pb.HAModeRequest{Pool: "sim"})
			if err == nil && r.GetLease().GetHeldHere() {
				held = append(held, b)
			}
		}
		if len(held) > 1 {
			t.Fatalf("%s and %s both hold the lease", held[0].id, held[1].id)
		}
		if len(held) == 1 {
			return held[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("no bridge holds the lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func notHolder(t *testing.T, err error, want *bridge) {
	t.Helper()
	st := wantCode(t, err, codes.FailedPrecondition)
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == "NOT_LEASE_HOLDER" {
			if ei.GetMetadata()["holder"] != want.id || ei.GetMetadata()["holder_address"] != want.id+":50051" || ei.GetMetadata()["pool_uuid"] == "" {
				t.Fatalf("holder named: %v", ei.GetMetadata())
			}
			return
		}
	}
	t.Fatalf("no NOT_LEASE_HOLDER detail: %v", st.Details())
}

func others(all []*bridge, h *bridge) []*bridge {
	var out []*bridge
	for _, b := range all {
		if b != h {
			out = append(out, b)
		}
	}
	return out
}

func TestOnlyTheLeaseHolderActsTheOthersNameIt(t *testing.T) {
	w := newMultiWorld(t)
	all := []*bridge{w.bridge("mgmt-a"), w.bridge("mgmt-b"), w.bridge("mgmt-c")}
	h := holder(t, all...)
	// Three bridges saw the pool once each: one epoch between them.
	for _, b := range all {
		if r, err := b.c.HAMode(ctxFor(t), &pb.HAModeRequest{Pool: "sim"}); err != nil || r.GetEpoch() != 1 {
			t.Fatalf("%s: epoch %d after three bridges attached one pool (%v)", b.id, r.GetEpoch(), err)
		}
	}
	info := w.sim.Info()
	w.sim.PowerOff(2)
	w.clock.Advance(3 * time.Minute) // its storage heartbeat goes stale
	for _, b := range others(all, h) {
		// Read-only calls are answered from the bridge's own view.
		r, err := b.c.HAMode(ctxFor(t), &pb.HAModeRequest{Pool: "sim"})
		if err != nil || r.GetLease().GetHolder() != h.id || r.GetLease().GetHeldHere() || r.GetLease().GetHolderAddress() != h.id+":50051" {
			t.Fatalf("%s HAMode: %v %v", b.id, r.GetLease(), err)
		}
		if _, err := b.c.ElectMaster(ctxFor(t), &pb.ElectMasterRequest{Pool: "sim", DryRun: true}); err != nil {
			t.Fatalf("%s: a dry run: %v", b.id, err)
		}
		_, err = b.c.ElectMaster(ctxFor(t), &pb.ElectMasterRequest{Pool: "sim", RequestId: "e-" + b.id})
		notHolder(t, err, h)
		_, err = b.c.FenceHost(ctxFor(t), &pb.FenceHostRequest{Pool: "sim", Host: info.Hosts[2].UUID, RequestId: "f-" + b.id})
		notHolder(t, err, h)
		_, err = b.c.EjectHost(ctxFor(t), &pb.EjectHostRequest{Pool: "sim", Host: info.Hosts[2].UUID})
		notHolder(t, err, h)
	}
	if n := w.count("bmc:ForceOff") + w.count("VM.power_state_reset") + w.count("pool.eject"); n != 0 {
		t.Fatalf("%d destructive actions by bridges without the lease", n)
	}
	// The holder acts; the others' history shows it.
	r, err := h.c.FenceHost(ctxFor(t), &pb.FenceHostRequest{Pool: "sim", Host: info.Hosts[2].UUID, RequestId: "f1"})
	if err != nil || r.GetOutcome() != pb.FenceOutcome_FENCE_OUTCOME_FENCED {
		t.Fatalf("holder: %v %v", r, err)
	}
	for _, b := range others(all, h) {
		jr, err := b.c.Journal(ctxFor(t), &pb.JournalRequest{Pool: "sim"})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range jr.GetEntries() {
			found = found || e.GetRequestId() == "f1" && e.GetBridge() == h.id
		}
		if !found {
			t.Fatalf("%s does not show %s's fence", b.id, h.id)
		}
	}
}

func TestConcurrentElectMasterThroughTwoBridgesPromotesOnce(t *testing.T) {
	w := newMultiWorld(t)
	a, b := w.bridge("mgmt-a"), w.bridge("mgmt-b")
	h := holder(t, a, b)
	w.sim.PowerOff(0) // the master
	// CloudStack's two management servers both notice, and both ask.
	var wg sync.WaitGroup
	errs := map[string]error{}
	var mu sync.Mutex
	for _, br := range []*bridge{a, b} {
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := br.c.ElectMaster(ctxFor(t), &pb.ElectMasterRequest{Pool: "sim", RequestId: "cs-" + br.id + string(rune('0'+i))})
				mu.Lock()
				errs[br.id+string(rune('0'+i))] = err
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for k, err := range errs {
		if k[:6] == h.id {
			if err != nil {
				t.Fatalf("the holder %s: %v", k, err)
			}
		} else {
			notHolder(t, err, h)
		}
	}
	if n := w.count("pool.emergency_transition_to_master"); n != 1 {
		t.Fatalf("%d promotions", n)
	}
	if m := w.sim.LiveMasters(); len(m) != 1 {
		t.Fatalf("live masters %v", m)
	}
}

func TestAKilledHolderIsReplacedAndTheEpochNeverGoesBack(t *testing.T) {
	w := newMultiWorld(t)
	a, b := w.bridge("mgmt-a"), w.bridge("mgmt-b")
	first := holder(t, a, b)
	second := others([]*bridge{a, b}, first)[0]
	w.sim.PowerOff(0)
	r1, err := first.c.ElectMaster(ctxFor(t), &pb.ElectMasterRequest{Pool: "sim", RequestId: "e1"})
	if err != nil {
		t.Fatal(err)
	}
	// CloudStack reads the state once the second bridge shows the new master.
	var before *pb.HAModeResponse
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		before, err = second.c.HAMode(ctxFor(t), &pb.HAModeRequest{Pool: "sim"})
		if err == nil && before.GetMaster().GetUuid() == r1.GetMaster().GetUuid() && before.GetMaster().GetReachable() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never saw the new master: %v %v", second.id, before, err)
		}
	}

	killed := time.Now()
	first.kill()
	if holder(t, second) != second {
		t.Fatal("no take-over")
	}
	// Not before the lease ran out: a take-over that ignored it would come
	// within a renew interval or two.
	if took := time.Since(killed); took < testLease.Duration/2 {
		t.Fatalf("%s took over %s after the kill, before the lease (%s) could run out", second.id, took, testLease.Duration)
	}
	// The same request id is answered once, whichever bridge ran it.
	again, err := second.c.ElectMaster(ctxFor(t), &pb.ElectMasterRequest{Pool: "sim", RequestId: "e1"})
	if err != nil || again.GetMaster().GetUuid() != r1.GetMaster().GetUuid() {
		t.Fatalf("e1 again: %v %v", again, err)
	}
	// The new master dies too: the new holder elects, with a higher epoch.
	for i, h := range w.sim.Info().Hosts {
		if h.UUID == r1.GetMaster().GetUuid() {
			w.sim.PowerOff(i)
		}
	}
	r2, err := second.c.ElectMaster(ctxFor(t), &pb.ElectMasterRequest{Pool: "sim", RequestId: "e2", ExpectedEpoch: before.GetEpoch()})
	if err != nil || r2.GetElectedBy() != pb.ElectedBy_ELECTED_BY_CLOUDSTACK {
		t.Fatalf("e2: %v %v", r2, err)
	}
	if r1.GetEpoch() < 1 || r2.GetEpoch() <= r1.GetEpoch() || r2.GetEpoch() <= before.GetEpoch() {
		t.Fatalf("epochs: e1 %d, before the kill %d, e2 %d", r1.GetEpoch(), before.GetEpoch(), r2.GetEpoch())
	}
	// A request made before the take-over is stale everywhere.
	_, err = second.c.FenceHost(ctxFor(t), &pb.FenceHostRequest{Pool: "sim", Host: w.sim.Info().Hosts[0].UUID, ExpectedEpoch: r1.GetEpoch() - 1})
	wantCode(t, err, codes.Aborted)
	// The survivor shows the whole history: both bridges' elections.
	jr, err := second.c.Journal(ctxFor(t), &pb.JournalRequest{Pool: "sim"})
	if err != nil {
		t.Fatal(err)
	}
	wrote := map[string]bool{}
	for _, e := range jr.GetEntries() {
		if e.GetStep() == "promote" {
			wrote[e.GetBridge()] = true
		}
	}
	if !wrote[first.id] || !wrote[second.id] {
		t.Fatalf("promotions journaled by %v", wrote)
	}
}

func TestABridgeCutFromTheDatabaseStopsActing(t *testing.T) {
	w := newMultiWorld(t)
	a, b := w.bridge("mgmt-a"), w.bridge("mgmt-b")
	h := holder(t, a, b)
	other := others([]*bridge{a, b}, h)[0]
	h.proxy.Cut(true)
	w.sim.PowerOff(2)
	deadline := time.Now().Add(10 * testLease.Duration)
	for {
		_, err := h.c.FenceHost(ctxFor(t), &pb.FenceHostRequest{Pool: "sim", Host: w.sim.Info().Hosts[2].UUID, DryRun: true})
		if err != nil {
			t.Fatalf("a dry run needs no lease: %v", err)
		}
		r, _ := h.c.HAMode(ctxFor(t), &pb.HAModeRequest{Pool: "sim"})
		if !r.GetLease().GetHeldHere() {
			if r.GetLease().GetError() == "" {
				t.Fatalf("the lease error is not shown: %v", r.GetLease())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cut bridge still holds the lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err := h.c.FenceHost(ctxFor(t), &pb.FenceHostRequest{Pool: "sim", Host: w.sim.Info().Hosts[2].UUID, RequestId: "f"})
	st := wantCode(t, err, codes.Unavailable)
	if st.Message() == "" || status.Convert(err).Details() == nil {
		t.Fatalf("%v", err)
	}
	if holder(t, other) != other {
		t.Fatal("no take-over")
	}
	if n := w.count("bmc:ForceOff"); n != 0 {
		t.Fatalf("the cut bridge fenced (%d)", n)
	}
}

// An epoch another bridge raised counts at once, before this bridge's view
// catches up: an older request is refused, a current one is not "ahead".
func TestTheSharedEpochCountsBeforeTheViewCatchesUp(t *testing.T) {
	w := newMultiWorld(t)
	a := w.bridge("mgmt-a")
	holder(t, a)
	r, err := a.c.HAMode(ctxFor(t), &pb.HAModeRequest{Pool: "sim"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := mysqlstore.Open(context.Background(), mysqlstore.Config{DSN: w.db.DSN(), Password: w.db.Password, Bridge: "mgmt-b"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// As if it had seen a change this bridge has not, at a higher epoch.
	raised, err := other.AdvanceEpoch("sim", "elsewhere", r.GetEpoch()+4)
	if err != nil || raised != r.GetEpoch()+5 {
		t.Fatalf("raise: %d %v", raised, err)
	}
	host := w.sim.Info().Hosts[2].UUID
	_, err = a.c.FenceHost(ctxFor(t), &pb.FenceHostRequest{Pool: "sim", Host: host, ExpectedEpoch: r.GetEpoch(), DryRun: true})
	wantCode(t, err, codes.Aborted)
	_, err = a.c.ElectMaster(ctxFor(t), &pb.ElectMasterRequest{Pool: "sim", ExpectedEpoch: r.GetEpoch(), DryRun: true})
	wantCode(t, err, codes.Aborted)
	if _, err := a.c.FenceHost(ctxFor(t), &pb.FenceHostRequest{Pool: "sim", Host: host, ExpectedEpoch: raised, DryRun: true}); err != nil {
		t.Fatalf("the current epoch: %v", err)
	}
	// The view adopts it at the next probe.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r, err := a.c.HAMode(ctxFor(t), &pb.HAModeRequest{Pool: "sim"}); err == nil && r.GetEpoch() == raised {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the view never adopted the shared epoch")
		}
	}
}
