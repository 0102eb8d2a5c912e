package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cloudstack-xenha/xenha-bridge/internal/mariadbtest"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
)

// TestMain lets the tests run the bridge as a real process: the test
// binary re-executed with XENHA_TEST_BRIDGE=1 is xenha-bridge itself, so
// it can be paused (SIGSTOP) and killed (SIGKILL) like one.
func TestMain(m *testing.M) {
	if os.Getenv("XENHA_TEST_BRIDGE") == "1" {
		main()
		os.Exit(0)
	}
	mariadbtest.Main(m)
}

// bridgeProc is one management server's bridge, as a process.
type bridgeProc struct {
	id   string
	addr string
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{}
}

func startBridgeProc(t *testing.T, id, config string) *bridgeProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b := &bridgeProc{id: id, logs: &lockedBuffer{}, done: make(chan struct{})}
	b.addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b.cmd = exec.Command(exe, "serve", "--config", config, "--listen", b.addr)
	b.cmd.Env = append(os.Environ(), "XENHA_TEST_BRIDGE=1")
	b.cmd.Stdout, b.cmd.Stderr = b.logs, b.logs
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		b.cmd.Process.Signal(syscall.SIGCONT)
		b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(15 * time.Second):
			b.cmd.Process.Kill()
			<-b.done
		}
		if t.Failed() {
			t.Logf("bridge %s logs:\n%s", b.id, b.logs.String())
		}
	})
	return b
}

func (b *bridgeProc) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := b.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

// call dials afresh (a paused process's old connection may be stale) and
// runs f with a deadline.
func (b *bridgeProc) call(t *testing.T, f func(context.Context, pb.XenHAServiceClient) error) error {
	t.Helper()
	conn, err := grpc.NewClient(b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// An election on a silent dead master waits out production probe
	// timeouts (3 s) more than once: leave room on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	return f(ctx, pb.NewXenHAServiceClient(conn))
}

func (b *bridgeProc) lease(t *testing.T) (*pb.HAModeResponse, error) {
	var r *pb.HAModeResponse
	err := b.call(t, func(ctx context.Context, c pb.XenHAServiceClient) error {
		var err error
		r, err = c.HAMode(ctx, &pb.HAModeRequest{Pool: "sim"})
		return err
	})
	return r, err
}

// waitHolds waits until b says it holds the pool's lease, and returns how
// long that took.
func (b *bridgeProc) waitHolds(t *testing.T, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if r, err := b.lease(t); err == nil && r.GetLease().GetHeldHere() {
			return time.Since(start)
		}
		if time.Since(start) > within {
			r, err := b.lease(t)
			t.Fatalf("bridge %s does not hold the lease after %s: %v %v", b.id, within, r.GetLease(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Lease numbers of these tests: short, and valid for the configuration.
const (
	procLease  = 3 * time.Second
	procRenew  = 300 * time.Millisecond
	procMargin = time.Second
)

// TestPausedAndKilledBridgeProcesses runs two bridges as processes on one
// MariaDB and one simulated pool: the holder paused past its lease does
// not act when resumed, another bridge takes over, and a killed holder is
// replaced once its lease has run out.
func TestPausedAndKilledBridgeProcesses(t *testing.T) {
	db := mariadbtest.New(t)
	clock := xapisim.NewFakeClock()
	var mu sync.Mutex
	var promotions []string
	sim, err := xapisim.New(xapisim.Config{Hosts: 3, Clock: clock, Seed: 9, DisableHeartbeatSelfFence: true,
		Audit: func(r xapisim.AuditRecord) {
			if r.Action == "pool.emergency_transition_to_master" && r.Err == "" {
				mu.Lock()
				promotions = append(promotions, r.Target)
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	promoted := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), promotions...) }

	dir := t.TempDir()
	info := sim.Info()
	writeSecret := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dbpw, poolpw := writeSecret("db.pw", db.Password), writeSecret("pool.pw", info.Password)
	config := func(id string) string {
		doc := fmt.Sprintf(`journal:
  store: mysql
  mysql:
    dsn: '%s'
    password_file: %s
    timeout: 1s
lease:
  id: %s
  duration: %s
  renew: %s
  margin: %s
pools:
  - name: sim
    members: ['%s']
    username: %s
    password_file: %s
    probe_interval: 1s
    tls:
      allow_plain_http: true
`, db.DSN(), dbpw, id, procLease, procRenew, procMargin, strings.Join(sim.MemberURLs(), "', '"), info.Username, poolpw)
		p := filepath.Join(dir, id+".yaml")
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	a := startBridgeProc(t, "mgmt-a", config("mgmt-a"))
	a.waitHolds(t, 30*time.Second)
	b := startBridgeProc(t, "mgmt-b", config("mgmt-b"))
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		r, err := b.lease(t)
		if err == nil && r.GetLease().GetHolder() == "mgmt-a" && !r.GetLease().GetHeldHere() {
			if addr := r.GetLease().GetHolderAddress(); addr != a.addr {
				t.Fatalf("b names the holder's address %q, want %q", addr, a.addr)
			}
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("b never saw a's lease: %v %v", r.GetLease(), err)
		}
	}

	// The operator's view on b says who acts.
	if out, err := command(t, 15*time.Second, "status", "--addr", b.addr, "--entries", "0"); err != nil ||
		!strings.Contains(out, "lease:      held by mgmt-a at "+a.addr) {
		t.Fatalf("status on b: %v\n%s", err, out)
	}

	// a is paused past its lease: b takes over once it has run out.
	a.signal(t, syscall.SIGSTOP)
	took := b.waitHolds(t, 10*procLease)
	if took < procLease/2 { // one that ignored the lease would take it within a renew or two
		t.Fatalf("b took over %s after a's pause, before a's lease (%s) could run out", took, procLease)
	}
	sim.PowerOff(0) // the master dies meanwhile

	// a wakes up and is asked to act at once: it must not.
	a.signal(t, syscall.SIGCONT)
	err = a.call(t, func(ctx context.Context, c pb.XenHAServiceClient) error {
		_, err := c.ElectMaster(ctx, &pb.ElectMasterRequest{Pool: "sim", RequestId: "from-a", OperatorOverride: true, Reason: "test"})
		return err
	})
	if c := status.Code(err); c != codes.FailedPrecondition && c != codes.Unavailable {
		t.Fatalf("the resumed bridge answered %v", err)
	}
	if p := promoted(); len(p) != 0 {
		t.Fatalf("the resumed bridge promoted %v", p)
	}
	t.Logf("the resumed bridge answered: %v", err)
	// b, the holder, elects (no BMC here: the operator overrides).
	var r1 *pb.ElectMasterResponse
	err = b.call(t, func(ctx context.Context, c pb.XenHAServiceClient) error {
		var err error
		r1, err = c.ElectMaster(ctx, &pb.ElectMasterRequest{Pool: "sim", RequestId: "from-b", OperatorOverride: true, Reason: "test"})
		return err
	})
	if err != nil || r1.GetElectedBy() != pb.ElectedBy_ELECTED_BY_CLOUDSTACK {
		t.Fatalf("the holder's election: %v %v", r1, err)
	}
	if p := promoted(); len(p) != 1 {
		t.Fatalf("promotions %v", p)
	}

	// b is killed: a takes the pool back once b's lease has run out.
	b.signal(t, syscall.SIGKILL)
	took = a.waitHolds(t, 10*procLease)
	if took < procLease/2 {
		t.Fatalf("a took over %s after b died, before b's lease (%s) could run out", took, procLease)
	}
	r, err := a.lease(t)
	if err != nil || r.GetEpoch() < r1.GetEpoch() {
		t.Fatalf("a's epoch %d went below the election's %d: %v", r.GetEpoch(), r1.GetEpoch(), err)
	}
	// a shows the whole history, b's election included.
	var jr *pb.JournalResponse
	err = a.call(t, func(ctx context.Context, c pb.XenHAServiceClient) error {
		var err error
		jr, err = c.Journal(ctx, &pb.JournalRequest{Pool: "sim"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range jr.GetEntries() {
		found = found || e.GetRequestId() == "from-b" && e.GetStep() == "promote" && e.GetBridge() == "mgmt-b"
	}
	if !found {
		t.Fatal("a's journal does not show b's promotion")
	}
}
