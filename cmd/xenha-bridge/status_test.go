package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
)

// fakeJournal serves a journal of n entries numbered 1..n.
type fakeJournal struct {
	pb.UnimplementedXenHAServiceServer
	n     uint64
	calls atomic.Int32
}

func (f *fakeJournal) Journal(_ context.Context, r *pb.JournalRequest) (*pb.JournalResponse, error) {
	f.calls.Add(1)
	limit := uint64(r.GetLimit())
	if limit == 0 {
		limit = 1000
	}
	out := &pb.JournalResponse{}
	for s := r.GetAfterSequence() + 1; s <= f.n && uint64(len(out.Entries)) < limit; s++ {
		out.Entries = append(out.Entries, &pb.JournalEntry{Sequence: s, Kind: "elect", Step: "x"})
	}
	return out, nil
}

func journalClient(t *testing.T, srv pb.XenHAServiceServer) pb.XenHAServiceClient {
	t.Helper()
	ln := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	pb.RegisterXenHAServiceServer(g, srv)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewXenHAServiceClient(conn)
}

func TestLastJournal(t *testing.T) {
	for _, tc := range []struct {
		entries  uint64
		n        int
		maxCalls int32
	}{
		{0, 5, 1}, {3, 5, 1}, {999, 5, 1}, {1000, 5, 3}, {1001, 5, 16}, {2500, 5, 18}, {123457, 3, 40},
	} {
		f := &fakeJournal{n: tc.entries}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lines, err := lastJournal(ctx, journalClient(t, f), "p", tc.n)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		want := min(tc.entries, uint64(tc.n))
		if uint64(len(lines)) != want {
			t.Fatalf("%d entries: got %d lines, want %d", tc.entries, len(lines), want)
		}
		for i, l := range lines {
			if l.Sequence != tc.entries-want+1+uint64(i) {
				t.Fatalf("%d entries: line %d is %d", tc.entries, i, l.Sequence)
			}
		}
		if c := f.calls.Load(); c > tc.maxCalls {
			t.Errorf("%d entries: %d calls, want at most %d", tc.entries, c, tc.maxCalls)
		}
	}
}

func sampleReport() *statusReport {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	return &statusReport{Addr: "127.0.0.1:50051", Time: at.Add(3 * time.Second), Pools: []poolStatus{{
		Name: "cluster-a", UUID: "52fdfc07-2182-454f-963f-5f0f9a621d72", Observed: true, ObservedAt: &at,
		Controller: "xenha", Policy: "auto", HAEnabled: true, HATimeout: "60s", Epoch: 7,
		Master:    masterStatus{UUID: "9566c74d-1003-4c4d-bbbb-0407d1e2c649", Name: "xs1", Address: "10.0.0.11", Reachable: true},
		HostCount: 2, LiveHostCount: 2,
		Hosts: []hostStatus{
			{UUID: "9566c74d-1003-4c4d-bbbb-0407d1e2c649", Name: "xs1", Address: "10.0.0.11", Live: true, Enabled: true, Probe: "master"},
			{UUID: "a1b2c3d4-1003-4c4d-bbbb-0407d1e2c649", Name: "xs2", Address: "10.0.0.12", Live: true, Enabled: true, Probe: "slave"},
		},
		Warnings: []warningStatus{{Code: "two_host_pool", Message: "Two-host XenHA pool: on a network partition XenHA fences xs2 (a1b2c3d4-1003-4c4d-bbbb-0407d1e2c649), the host with the higher UUID, whichever side is healthy."}},
		Journal: []journalLine{{Sequence: 41, Time: at, Kind: "fence", Step: "controller", OK: true, Epoch: 7,
			Host: "a1b2c3d4-1003-4c4d-bbbb-0407d1e2c649", RequestID: "cs-17",
			Detail: "XenHA controls this pool: the bridge never fences. Outside the liveset: false; its VMs halted: false."}},
	}, {
		Name: "cluster-b", Controller: "none", Policy: "observe", Hosts: []hostStatus{}, Warnings: []warningStatus{},
		Lease:        &leaseStatus{Holder: "mgmt-2", HolderAddress: "10.0.0.22:50051", Term: 3},
		JournalError: "Unimplemented: this bridge keeps no journal",
	}}}
}

func TestPrintStatus(t *testing.T) {
	var wide, narrow bytes.Buffer
	if err := printStatus(&wide, sampleReport(), 0); err != nil {
		t.Fatal(err)
	}
	out := wide.String()
	for _, want := range []string{
		"POOL       CONTROLLER  MASTER  LIVE  EPOCH  WARNINGS\n",
		"cluster-a  xenha       xs1     2/2   7      two_host_pool\n",
		"cluster-b  none        -       0/0   0      -\n",
		"pool cluster-a  52fdfc07-2182-454f-963f-5f0f9a621d72\n",
		"  controller: xenha (policy auto, XenHA on, T=60s)\n",
		"  master:     xs1  10.0.0.11  9566c74d, reachable\n",
		"  epoch:      7 (last heard 3s ago)\n",
		"    two_host_pool\n      Two-host XenHA pool: on a network partition XenHA fences xs2",
		"    SEQ  TIME (UTC)       KIND   STEP        OK   EPOCH  HOST      REQUEST\n",
		"    41   Nov 26 10:00:00  fence  controller  yes  7      a1b2c3d4  cs-17\n" +
			"           XenHA controls this pool: the bridge never fences. Outside the liveset: false; its VMs halted: false.\n",
		"  epoch:      0 (never observed)\n  lease:      held by mgmt-2 at 10.0.0.22:50051, term 3: not acting here\n",
		"  warnings:   none\n",
		"  journal:    cannot be read: Unimplemented: this bridge keeps no journal\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q in:\n%s", want, out)
		}
	}

	// In an 80-column terminal, long text is wrapped to fit.
	if err := printStatus(&narrow, sampleReport(), 80); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(narrow.String(), "\n") {
		if n := utf8.RuneCountInString(line); n > 80 {
			t.Errorf("%d columns: %q", n, line)
		}
	}
	if !strings.Contains(narrow.String(), "           XenHA controls this pool: the bridge never fences. Outside the\n           liveset: false;") {
		t.Errorf("the journal detail was not wrapped:\n%s", narrow.String())
	}

	if strings.Contains(out, "pool cluster-a  52fdfc07-2182-454f-963f-5f0f9a621d72\n  controller: xenha (policy auto, XenHA on, T=60s)\n  master:     xs1  10.0.0.11  9566c74d, reachable\n  epoch:      7 (last heard 3s ago)\n  lease") {
		t.Error("a lease line for a bridge without leases")
	}
	for l, want := range map[*leaseStatus]string{
		{Holder: "mgmt-1", HeldHere: true, Term: 2}:                    "held by this bridge (mgmt-1), term 2: it acts on the pool",
		{Holder: "mgmt-1", Error: "the lease store cannot be reached"}: "unknown: the lease store cannot be reached; this bridge does not act",
		{}: "nobody holds it yet",
	} {
		if got := leaseLine(l); got != want {
			t.Errorf("leaseLine(%+v) = %q, want %q", *l, got, want)
		}
	}

	var none bytes.Buffer
	printStatus(&none, &statusReport{Addr: "127.0.0.1:50051"}, 0)
	if none.String() != "no pool is attached to the bridge at 127.0.0.1:50051\n" {
		t.Errorf("no pools: %q", none.String())
	}
}

func TestWrap(t *testing.T) {
	if got := wrap("a b c", 0); len(got) != 1 || got[0] != "a b c" {
		t.Errorf("wrap without width: %q", got)
	}
	text := strings.Repeat("word ", 30)
	for _, l := range wrap(text, 32) {
		if len(l) > 32 {
			t.Errorf("wrapped line %q", l)
		}
	}
}

// `journal --pool` prints the whole journal by default, page by page, and
// stops at --limit when one is given.
func TestReadJournalPagesThroughTheWholeJournal(t *testing.T) {
	for _, tc := range []struct {
		entries uint64
		limit   int
		want    int
	}{
		{0, 0, 0}, {999, 0, 999}, {1000, 0, 1000}, {2500, 0, 2500}, {2500, 1200, 1200}, {10, 3, 3},
	} {
		f := &fakeJournal{n: tc.entries}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := readJournal(ctx, journalClient(t, f), "p", 0, tc.limit)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want {
			t.Fatalf("%d entries, limit %d: got %d", tc.entries, tc.limit, len(got))
		}
		for i, e := range got {
			if e.GetSequence() != uint64(i+1) {
				t.Fatalf("%d entries: entry %d is %d", tc.entries, i, e.GetSequence())
			}
		}
	}
}
