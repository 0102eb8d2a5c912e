package server

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/fencing/redfish"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/membership"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

type fixture struct {
	t     *testing.T
	m     *xenha.Manager
	sim   *xapisim.Sim
	clock *xapisim.FakeClock
	conn  *grpc.ClientConn
	c     pb.XenHAServiceClient
}

func newFixture(t *testing.T, opts Options, mopts xenha.Options) *fixture {
	t.Helper()
	if mopts.XAPI.Timeout == 0 {
		mopts.XAPI = xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond}
	}
	m := xenha.NewManager(mopts)
	t.Cleanup(m.Close)
	srv := New(NewService(m, nil), opts)
	conn := dialServer(t, srv)
	return &fixture{t: t, m: m, conn: conn, c: pb.NewXenHAServiceClient(conn)}
}

// withSim starts a simulated pool and attaches it as "sim" through the API.
func (f *fixture) withSim(hosts int) *fixture {
	f.t.Helper()
	f.clock = xapisim.NewFakeClock()
	sim, err := xapisim.New(xapisim.Config{Hosts: hosts, Clock: f.clock, Seed: 3, DisableHeartbeatSelfFence: true})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(sim.Close)
	f.sim = sim
	info := sim.Info()
	resp, err := f.c.AttachPool(f.ctx(), &pb.AttachPoolRequest{
		Name: "sim", Members: sim.MemberURLs(), Username: info.Username, Password: info.Password,
		Tls: &pb.XAPITLS{AllowPlainHttp: true},
	})
	if err != nil || !resp.GetCreated() || !resp.GetPool().GetObserved() {
		f.t.Fatalf("attach: %v %v", resp, err)
	}
	return f
}

func (f *fixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, err error, c codes.Code) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != c {
		t.Fatalf("want %v, got %v", c, err)
	}
	return st
}

func badField(st *status.Status) string {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
			return br.FieldViolations[0].Field
		}
	}
	return ""
}

func TestHAModeOfASimulatedPool(t *testing.T) {
	f := newFixture(t, Options{}, xenha.Options{}).withSim(3)
	info := f.sim.Info()
	for _, id := range []string{"sim", info.PoolUUID} {
		r, err := f.c.HAMode(f.ctx(), &pb.HAModeRequest{Pool: id})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetPool() != "sim" || r.GetPoolUuid() != info.PoolUUID || r.GetController() != pb.Controller_CONTROLLER_CLOUDSTACK ||
			r.GetPolicy() != pb.Policy_POLICY_AUTO || !r.GetObserved() || r.GetEpoch() != 1 || r.GetHostCount() != 3 ||
			r.GetLiveHostCount() != 3 || r.GetMaster().GetUuid() != info.Hosts[0].UUID || !r.GetMaster().GetReachable() ||
			r.GetStorageTimeout().AsDuration() != 120*time.Second || !r.GetXenhaEligibility().GetEligible() {
			t.Fatalf("HAMode(%s) = %v", id, r)
		}
	}
}

func TestRequestErrors(t *testing.T) {
	f := newFixture(t, Options{}, xenha.Options{})
	_, err := f.c.HAMode(f.ctx(), &pb.HAModeRequest{})
	if st := wantCode(t, err, codes.InvalidArgument); badField(st) != "pool" {
		t.Fatalf("details %v", st.Details())
	}
	_, err = f.c.HAMode(f.ctx(), &pb.HAModeRequest{Pool: "nope"})
	wantCode(t, err, codes.NotFound)
	_, err = f.c.DetachPool(f.ctx(), &pb.DetachPoolRequest{Pool: "nope"})
	wantCode(t, err, codes.NotFound)
	_, err = f.c.ElectMaster(f.ctx(), &pb.ElectMasterRequest{Pool: "nope"})
	wantCode(t, err, codes.NotFound)
	_, err = f.c.FenceHost(f.ctx(), &pb.FenceHostRequest{Pool: "x"})
	wantCode(t, err, codes.InvalidArgument)

	good := &pb.AttachPoolRequest{Name: "p", Members: []string{"https://10.9.9.9"}, Username: "root", Password: "pw"}
	cases := map[string]func(r *pb.AttachPoolRequest){
		"name":            func(r *pb.AttachPoolRequest) { r.Name = "has space" },
		"members[0]":      func(r *pb.AttachPoolRequest) { r.Members = []string{"ftp://x"} },
		"username":        func(r *pb.AttachPoolRequest) { r.Username = "" },
		"password":        func(r *pb.AttachPoolRequest) { r.Password = "" },
		"policy":          func(r *pb.AttachPoolRequest) { r.Policy = 99 },
		"storage_timeout": func(r *pb.AttachPoolRequest) { r.StorageTimeout = durationpb.New(-time.Second) },
	}
	for field, mut := range cases {
		r := &pb.AttachPoolRequest{Name: good.Name, Members: good.Members, Username: good.Username, Password: good.Password}
		mut(r)
		_, err := f.c.AttachPool(f.ctx(), r)
		st := wantCode(t, err, codes.InvalidArgument)
		if badField(st) != field {
			t.Errorf("%s: field %q in %v", field, badField(st), err)
		}
		if got := err.Error(); strings.Contains(got, "pw") && field != "password" {
			t.Errorf("password echoed: %s", got)
		}
	}
	lists, err := f.c.ListPools(f.ctx(), &pb.ListPoolsRequest{})
	if err != nil || len(lists.GetPools()) != 0 {
		t.Fatalf("rejected attaches left pools behind: %v %v", lists, err)
	}
}

func TestRegistry(t *testing.T) {
	f := newFixture(t, Options{}, xenha.Options{}).withSim(3)
	info := f.sim.Info()
	again, err := f.c.AttachPool(f.ctx(), &pb.AttachPoolRequest{
		Name: "sim", Members: f.sim.MemberURLs(), Username: info.Username, Password: info.Password,
		Tls: &pb.XAPITLS{AllowPlainHttp: true},
	})
	if err != nil || again.GetCreated() {
		t.Fatalf("idempotent attach: %v %v", again, err)
	}
	// CloudStack's cluster changed: the members follow it.
	fewer, err := f.c.AttachPool(f.ctx(), &pb.AttachPoolRequest{
		Name: "sim", Members: f.sim.MemberURLs()[:2], Username: info.Username, Password: info.Password,
		Tls: &pb.XAPITLS{AllowPlainHttp: true},
	})
	if err != nil || fewer.GetCreated() || len(fewer.GetPool().GetMembers()) != 2 {
		t.Fatalf("attach with other members: %v %v", fewer, err)
	}
	// Members leaving out the master (host-0): refused, the pool unchanged.
	_, err = f.c.AttachPool(f.ctx(), &pb.AttachPoolRequest{
		Name: "sim", Members: f.sim.MemberURLs()[1:], Username: info.Username, Password: info.Password,
		Tls: &pb.XAPITLS{AllowPlainHttp: true},
	})
	if st := wantCode(t, err, codes.FailedPrecondition); !strings.Contains(st.Message(), "host-0") {
		t.Errorf("the refusal does not name the master: %v", st.Message())
	}
	_, err = f.c.AttachPool(f.ctx(), &pb.AttachPoolRequest{
		Name: "sim", Members: f.sim.MemberURLs(), Username: info.Username, Password: info.Password,
		Tls: &pb.XAPITLS{AllowPlainHttp: true}, Policy: pb.Policy_POLICY_OBSERVE,
	})
	wantCode(t, err, codes.AlreadyExists)
	list, err := f.c.ListPools(f.ctx(), &pb.ListPoolsRequest{})
	if err != nil || len(list.GetPools()) != 1 || list.GetPools()[0].GetPoolUuid() != info.PoolUUID || list.GetPools()[0].GetSource() != "api" ||
		len(list.GetPools()[0].GetMembers()) != 2 {
		t.Fatalf("list %v %v", list, err)
	}
	_, err = f.c.ElectMaster(f.ctx(), &pb.ElectMasterRequest{Pool: "sim"})
	wantCode(t, err, codes.Unimplemented)
	_, err = f.c.FenceHost(f.ctx(), &pb.FenceHostRequest{Pool: "sim", Host: info.Hosts[1].UUID})
	wantCode(t, err, codes.Unimplemented)
	if _, err := f.c.DetachPool(f.ctx(), &pb.DetachPoolRequest{Pool: info.PoolUUID}); err != nil {
		t.Fatal(err)
	}
	_, err = f.c.HAMode(f.ctx(), &pb.HAModeRequest{Pool: "sim"})
	wantCode(t, err, codes.NotFound)
}

func recvEvent(t *testing.T, s pb.XenHAService_PoolEventsClient) *pb.PoolEvent {
	t.Helper()
	r, err := s.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return r.GetEvent()
}

func TestPoolEventsFollowAFailoverAndResume(t *testing.T) {
	f := newFixture(t, Options{}, xenha.Options{}).withSim(3)
	if err := f.sim.EnableHA(0, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// HAMode gives the point to stream from, so nothing after it is missed.
	mode, err := f.c.HAMode(f.ctx(), &pb.HAModeRequest{Pool: "sim"})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := f.c.PoolEvents(f.ctx(), &pb.PoolEventsRequest{Pool: "sim", AfterSequence: mode.GetEventSequence(), Incarnation: mode.GetEventIncarnation()})
	if err != nil {
		t.Fatal(err)
	}
	var seen []*pb.PoolEvent
	waitFor := func(typ pb.EventType) *pb.PoolEvent {
		for {
			e := recvEvent(t, stream)
			seen = append(seen, e)
			if e.GetType() == typ {
				return e
			}
		}
	}
	if err := f.sim.PowerOff(0); err != nil {
		t.Fatal(err)
	}
	waitFor(pb.EventType_EVENT_TYPE_MASTER_LOST)
	f.clock.Advance(31 * time.Second)
	mc := waitFor(pb.EventType_EVENT_TYPE_MASTER_CHANGED)
	if mc.GetCause() != pb.MasterChangeCause_MASTER_CHANGE_CAUSE_XENHA_ELECTION || mc.GetPreviousHostUuid() != f.sim.Info().Hosts[0].UUID {
		t.Fatalf("MASTER_CHANGED %v", mc)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].GetSequence() != seen[i-1].GetSequence()+1 {
			t.Fatalf("gap in one pool's sequence: %d then %d", seen[i-1].GetSequence(), seen[i].GetSequence())
		}
	}
	// HAMode follows without a restart.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := f.c.HAMode(f.ctx(), &pb.HAModeRequest{Pool: "sim"})
		if err == nil && r.GetMaster().GetUuid() == mc.GetHostUuid() && r.GetMaster().GetReachable() && r.GetController() == pb.Controller_CONTROLLER_XENHA {
			if r.GetEpoch() < mc.GetEpoch() {
				t.Fatalf("epoch went back: %d < %d", r.GetEpoch(), mc.GetEpoch())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HAMode did not follow the failover: %v %v", r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Resume after the first event seen: the rest comes again, in order.
	resumed, err := f.c.PoolEvents(f.ctx(), &pb.PoolEventsRequest{Pool: "sim", AfterSequence: seen[0].GetSequence(), Incarnation: seen[0].GetIncarnation()})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range seen[1:] {
		if got := recvEvent(t, resumed); got.GetSequence() != want.GetSequence() || got.GetType() != want.GetType() {
			t.Fatalf("resumed %d %v, want %d %v", got.GetSequence(), got.GetType(), want.GetSequence(), want.GetType())
		}
	}
}

func TestPoolEventsOutOfRange(t *testing.T) {
	f := newFixture(t, Options{}, xenha.Options{Retention: 2})
	hub := f.m.Hub()
	for range 5 {
		hub.Publish(xenha.Event{Pool: "a", Type: xenha.EventHostUp})
	}
	for name, req := range map[string]*pb.PoolEventsRequest{
		"compacted": {AfterSequence: 1},
		"restarted": {AfterSequence: 4, Incarnation: "an-earlier-run"},
	} {
		s, err := f.c.PoolEvents(f.ctx(), req)
		if err == nil {
			_, err = s.Recv()
		}
		if st, _ := status.FromError(err); st.Code() != codes.OutOfRange {
			t.Errorf("%s: want OUT_OF_RANGE, got %v", name, err)
		}
	}
	s, _ := f.c.PoolEvents(f.ctx(), &pb.PoolEventsRequest{AfterSequence: 9})
	_, err := s.Recv()
	wantCode(t, err, codes.InvalidArgument)
	s, _ = f.c.PoolEvents(f.ctx(), &pb.PoolEventsRequest{Pool: "unknown"})
	_, err = s.Recv()
	wantCode(t, err, codes.NotFound)
}

func TestSlowConsumerIsCutOffAndCanResume(t *testing.T) {
	f := newFixture(t, Options{}, xenha.Options{Retention: 100000, SubscriberBuffer: 64})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := f.c.PoolEvents(ctx, &pb.PoolEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := f.c.PoolEvents(ctx, &pb.PoolEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // both subscribed
	hub := f.m.Hub()
	const n, burst = 20000, 32
	msg := strings.Repeat("x", 200)
	got := make(chan int, n)
	go func() { // the fast one keeps up
		for i := 1; ; i++ {
			if _, err := fast.Recv(); err != nil {
				return
			}
			got <- i
		}
	}()
	for i := 0; i < n; i += burst {
		for range burst {
			hub.Publish(xenha.Event{Pool: "a", Type: xenha.EventHostUp, Message: msg})
		}
		for c := 0; c < i+burst; {
			select {
			case c = <-got:
			case <-time.After(5 * time.Second):
				t.Fatalf("the fast consumer stalled at %d", c)
			}
		}
	}
	// The slow one, which read nothing, gets what was queued, then the cut.
	var last uint64
	for {
		r, err := slow.Recv()
		if err != nil {
			wantCode(t, err, codes.ResourceExhausted)
			break
		}
		last = r.GetEvent().GetSequence()
	}
	if last == 0 || last >= n {
		t.Fatalf("slow consumer's last sequence %d", last)
	}
	resumed, err := f.c.PoolEvents(ctx, &pb.PoolEventsRequest{AfterSequence: last})
	if err != nil {
		t.Fatal(err)
	}
	if e := recvEvent(t, resumed); e.GetSequence() != last+1 {
		t.Fatalf("resumed at %d, want %d", e.GetSequence(), last+1)
	}
}

func TestAuthRefusesEveryRPCButHealth(t *testing.T) {
	f := newFixture(t, Options{Token: "s3cret-token"}, xenha.Options{})
	calls := map[string]func(ctx context.Context) error{
		"HAMode": func(ctx context.Context) error { _, err := f.c.HAMode(ctx, &pb.HAModeRequest{Pool: "x"}); return err },
		"ElectMaster": func(ctx context.Context) error {
			_, err := f.c.ElectMaster(ctx, &pb.ElectMasterRequest{Pool: "x"})
			return err
		},
		"FenceHost": func(ctx context.Context) error {
			_, err := f.c.FenceHost(ctx, &pb.FenceHostRequest{Pool: "x", Host: "h"})
			return err
		},
		"AttachPool": func(ctx context.Context) error { _, err := f.c.AttachPool(ctx, &pb.AttachPoolRequest{}); return err },
		"DetachPool": func(ctx context.Context) error {
			_, err := f.c.DetachPool(ctx, &pb.DetachPoolRequest{Pool: "x"})
			return err
		},
		"ListPools": func(ctx context.Context) error { _, err := f.c.ListPools(ctx, &pb.ListPoolsRequest{}); return err },
		"PoolEvents": func(ctx context.Context) error {
			s, err := f.c.PoolEvents(ctx, &pb.PoolEventsRequest{Pool: "x"})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		},
	}
	for name, call := range calls {
		for _, tok := range []string{"", "wrong"} {
			ctx := f.ctx()
			if tok != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
			}
			if st, _ := status.FromError(call(ctx)); st.Code() != codes.Unauthenticated {
				t.Errorf("%s with token %q: %v", name, tok, st)
			}
		}
		ok := metadata.AppendToOutgoingContext(f.ctx(), "authorization", "Bearer s3cret-token")
		if st, _ := status.FromError(call(ok)); st.Code() == codes.Unauthenticated {
			t.Errorf("%s with the right token: %v", name, st)
		}
	}
	h, err := healthpb.NewHealthClient(f.conn).Check(f.ctx(), &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health without a token: %v %v", h, err)
	}
}

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func TestFenceHostOverGRPC(t *testing.T) {
	m := xenha.NewManager(xenha.Options{XAPI: xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond}})
	t.Cleanup(m.Close)
	fencer := fencing.New(fencing.Options{ProbeSpacing: 20 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	devices := func(driver, address, user, pass string) (fencing.Device, error) {
		return redfish.New(redfish.Config{URL: address, Username: user, Password: pass, AllowPlainHTTP: true})
	}
	srv := New(NewService(m, nil, WithFencing(fencer, devices)), Options{})
	conn := dialServer(t, srv)
	f := (&fixture{t: t, m: m, conn: conn, c: pb.NewXenHAServiceClient(conn)}).withSim(3)
	info := f.sim.Info()
	host := info.Hosts[2]
	bmc := &pb.BMC{Driver: "redfish", Address: host.BMCURL, Username: info.BMCUsername, Password: info.BMCPassword}

	// A live host: refused, with the evidence in the trace.
	r, err := f.c.FenceHost(f.ctx(), &pb.FenceHostRequest{Pool: "sim", Host: host.UUID, RequestId: "a", Bmc: bmc})
	if err != nil || r.GetOutcome() != pb.FenceOutcome_FENCE_OUTCOME_REFUSED_HOST_ALIVE || len(r.GetTrace()) == 0 {
		t.Fatalf("live host: %v %v", r, err)
	}
	// Hung and silent on storage for 150 s: fenced through the Redfish BMC of the request.
	f.sim.HangXAPI(2, true)
	f.sim.CutStorage(2, true)
	f.clock.Advance(150 * time.Second)
	mode, _ := f.c.HAMode(f.ctx(), &pb.HAModeRequest{Pool: "sim"})
	r, err = f.c.FenceHost(f.ctx(), &pb.FenceHostRequest{Pool: "sim", Host: host.Name, RequestId: "b", Bmc: bmc, ExpectedEpoch: mode.GetEpoch()})
	if err != nil || r.GetOutcome() != pb.FenceOutcome_FENCE_OUTCOME_FENCED || r.GetMethod() != "redfish" || len(r.GetVmResets()) != 2 {
		t.Fatalf("dead host: %v %v", r, err)
	}
	if f.sim.State().Hosts[2].Powered {
		t.Fatal("the host still has power")
	}
	// Errors.
	_, err = f.c.FenceHost(f.ctx(), &pb.FenceHostRequest{Pool: "sim", Host: "nope"})
	wantCode(t, err, codes.NotFound)
	_, err = f.c.FenceHost(f.ctx(), &pb.FenceHostRequest{Pool: "sim", Host: host.UUID, ExpectedEpoch: mode.GetEpoch() + 5})
	wantCode(t, err, codes.InvalidArgument)
	_, err = f.c.FenceHost(f.ctx(), &pb.FenceHostRequest{Pool: "sim", Host: host.UUID, Bmc: &pb.BMC{Driver: "ilo", Address: "x", Username: "u"}})
	wantCode(t, err, codes.InvalidArgument)
	if err := f.sim.Designate(1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = f.c.FenceHost(f.ctx(), &pb.FenceHostRequest{Pool: "sim", Host: host.UUID, ExpectedEpoch: mode.GetEpoch()})
		if st, _ := status.FromError(err); st.Code() == codes.Aborted || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantCode(t, err, codes.Aborted)
}

func TestElectMasterAndJournalOverGRPC(t *testing.T) {
	dir := t.TempDir()
	j, err := journal.Open(filepath.Join(dir, "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	m := xenha.NewManager(xenha.Options{XAPI: xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond}, Epochs: j})
	t.Cleanup(m.Close)
	var sim *xapisim.Sim
	elector := elect.New(elect.Options{Journal: j, ProbeSpacing: 20 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		Devices: func(pool string, h xenha.HostView) fencing.Device {
			info := sim.Info()
			for _, hi := range info.Hosts {
				if hi.UUID == h.UUID {
					d, _ := redfish.New(redfish.Config{URL: hi.BMCURL, Username: info.BMCUsername, Password: info.BMCPassword, AllowPlainHTTP: true})
					return d
				}
			}
			return nil
		}})
	srv := New(NewService(m, nil, WithElection(elector), WithJournal(j)), Options{})
	conn := dialServer(t, srv)
	f := (&fixture{t: t, m: m, conn: conn, c: pb.NewXenHAServiceClient(conn)}).withSim(3)
	sim = f.sim

	// The master alive but cut off from the bridge: FAILED_PRECONDITION, with the trace.
	sim.CutBridge(0, true)
	_, err = f.c.ElectMaster(f.ctx(), &pb.ElectMasterRequest{Pool: "sim", RequestId: "x"})
	st := wantCode(t, err, codes.FailedPrecondition)
	found := false
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok && len(pf.GetViolations()) > 2 {
			found = true
		}
	}
	if !found {
		t.Fatalf("no trace in the details: %v", st.Details())
	}
	sim.CutBridge(0, false)

	sim.PowerOff(0)
	r, err := f.c.ElectMaster(f.ctx(), &pb.ElectMasterRequest{Pool: "sim", RequestId: "e1"})
	if err != nil || r.GetElectedBy() != pb.ElectedBy_ELECTED_BY_CLOUDSTACK || r.GetMaster().GetUuid() == sim.Info().Hosts[0].UUID {
		t.Fatalf("%v %v", r, err)
	}
	again, err := f.c.ElectMaster(f.ctx(), &pb.ElectMasterRequest{Pool: "sim", RequestId: "e1"})
	if err != nil || again.GetMaster().GetUuid() != r.GetMaster().GetUuid() || len(again.GetTrace()) != len(r.GetTrace()) {
		t.Fatalf("a repeated request id: %v %v", again, err)
	}
	jr, err := f.c.Journal(f.ctx(), &pb.JournalRequest{Pool: sim.Info().PoolUUID})
	if err != nil || len(jr.GetEntries()) < 5 {
		t.Fatalf("journal: %v %v", jr, err)
	}
	promoted := false
	for _, e := range jr.GetEntries() {
		promoted = promoted || (e.GetStep() == "promote" && e.GetRequestId() == "e1")
	}
	if !promoted {
		t.Fatal("the promotion is not in the journal")
	}
	_, err = f.c.Journal(f.ctx(), &pb.JournalRequest{Pool: "sim", Limit: -1})
	wantCode(t, err, codes.InvalidArgument)
}

func TestMembershipRequestErrors(t *testing.T) {
	f := newFixture(t, Options{}, xenha.Options{})
	_, err := f.c.ClassifyHost(f.ctx(), &pb.ClassifyHostRequest{Url: "https://10.0.0.1", Username: "root", Password: "pw"})
	wantCode(t, err, codes.Unimplemented) // this fixture has no membership service

	m := xenha.NewManager(xenha.Options{})
	t.Cleanup(m.Close)
	srv := New(NewService(m, nil, WithMembership(&membership.Service{Pools: m})), Options{})
	conn := dialServer(t, srv)
	c := pb.NewXenHAServiceClient(conn)
	for field, call := range map[string]func() error{
		"url": func() error {
			_, err := c.ClassifyHost(f.ctx(), &pb.ClassifyHostRequest{Username: "root", Password: "pw"})
			return err
		},
		"password": func() error {
			_, err := c.ClassifyHost(f.ctx(), &pb.ClassifyHostRequest{Url: "https://x", Username: "root"})
			return err
		},
		"pool": func() error {
			_, err := c.JoinHost(f.ctx(), &pb.JoinHostRequest{Url: "https://x", Username: "u", Password: "p"})
			return err
		},
		"host": func() error { _, err := c.EjectHost(f.ctx(), &pb.EjectHostRequest{Pool: "p"}); return err },
		"timeout": func() error {
			_, err := c.EnableXenHA(f.ctx(), &pb.EnableXenHARequest{Pool: "p", Timeout: durationpb.New(time.Second)})
			return err
		},
	} {
		st := wantCode(t, call(), codes.InvalidArgument)
		if badField(st) != field {
			t.Errorf("%s: field %q", field, badField(st))
		}
	}
	_, err = c.DisableXenHA(f.ctx(), &pb.DisableXenHARequest{Pool: "nope"})
	wantCode(t, err, codes.NotFound)
	// An unreachable host: UNAVAILABLE, and the password is not echoed.
	_, err = c.ClassifyHost(f.ctx(), &pb.ClassifyHostRequest{Url: "http://127.0.0.1:1", Username: "root", Password: "Sekr1t-pw", Tls: &pb.XAPITLS{AllowPlainHttp: true}})
	wantCode(t, err, codes.Unavailable)
	if strings.Contains(err.Error(), "Sekr1t-pw") {
		t.Fatal("the password is in the error")
	}
}

// dialServer serves srv on an in-memory listener and dials it; both are
// closed when the test ends.
func dialServer(tb testing.TB, srv *Server) *grpc.ClientConn {
	tb.Helper()
	ln := bufconn.Listen(1 << 20)
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Stop(time.Second) })
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}
