package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
)

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// command runs one command of the binary with its own deadline.
func command(t *testing.T, timeout time.Duration, args ...string) (stdout string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, args, &out, &errOut)
	return out.String(), err
}

// TestOperatorView runs the real wiring (serve --simulate with metrics),
// crashes the simulated master, has CloudStack's ElectMaster promote
// another host, and reads what an operator reads: the health probe, the
// metrics over HTTP and the status command.
func TestOperatorView(t *testing.T) {
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	control := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var logs lockedBuffer
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"serve", "--simulate", "--listen", grpcAddr, "--sim-control", control, "--sim-port", "0",
			"--metrics", metricsAddr, "--journal", filepath.Join(t.TempDir(), "j.db")}, io.Discard, &logs)
	}()
	defer func() {
		stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
		if t.Failed() {
			t.Logf("serve's log:\n%s", logs.String())
		}
	}()

	// health: waits for the bridge, one line, exit 0 only when SERVING.
	out, err := command(t, 30*time.Second, "health", "--addr", grpcAddr, "--wait", "20s")
	if err != nil || out != grpcAddr+" SERVING\n" {
		t.Fatalf("health: %q %v", out, err)
	}
	out, err = command(t, 10*time.Second, "health", "--addr", grpcAddr, "--service", "cloudstack.xenha.v1.XenHAService")
	if err != nil || !strings.Contains(out, "SERVING") {
		t.Fatalf("health of the API: %q %v", out, err)
	}

	// The master dies; CloudStack asks for a new one.
	resp, err := http.Post("http://"+control+"/hosts/0/power-off", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	elected, err := pb.NewXenHAServiceClient(conn).ElectMaster(ectx, &pb.ElectMasterRequest{Pool: "sim", RequestId: "operator-1"})
	if err != nil || elected.GetElectedBy() != pb.ElectedBy_ELECTED_BY_CLOUDSTACK {
		t.Fatalf("ElectMaster: %v %v", elected, err)
	}
	newMaster := elected.GetMaster().GetName()

	// The metrics count the election and the RPC.
	resp, err = http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`xenha_bridge_elections_total{outcome="cloudstack",pool="sim"} 1`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="ElectMaster",grpc_service="cloudstack.xenha.v1.XenHAService",grpc_type="unary"} 1`,
		`xenha_bridge_pool_epoch{pool="sim"} 2`,
		`xenha_bridge_events_published_total{type="master_changed"} 1`,
	} {
		if !strings.Contains(string(body), "\n"+want+"\n") {
			t.Errorf("the metrics lack %s", want)
		}
	}
	if !strings.Contains(string(body), `xenha_bridge_journal_entries{pool="sim"}`) ||
		!strings.Contains(string(body), `xenha_bridge_xapi_call_duration_seconds_count{method="pool.emergency_transition_to_master"} 1`) {
		t.Error("the metrics lack the journal's size or the promotion's XAPI call")
	}

	// status for people: the summary line, the detail, the last steps.
	out, err = command(t, 10*time.Second, "status", "--addr", grpcAddr)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, want := range []string{
		"POOL  CONTROLLER  MASTER", "\nsim   cloudstack  " + newMaster,
		"controller: cloudstack (policy auto, XenHA off)", "epoch:      2",
		"hosts:      3 of 3 live (xapi), 2 reached by the bridge", "journal:    last 5", "operator-1", "elected by cloudstack",
		// The dead master: live for xapi (600 s), unreachable for the bridge, side by side.
		"  yes   unreachable  yes  ", "LIVE yes with PROBE unreachable",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("status printed terminal escapes")
	}

	// status for scripts.
	out, err = command(t, 10*time.Second, "status", "--addr", grpcAddr, "--pool", "sim", "--json", "--entries", "3")
	if err != nil {
		t.Fatalf("status --json: %v", err)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	if len(rep.Pools) != 1 {
		t.Fatalf("status --json: %s", out)
	}
	p := rep.Pools[0]
	last := p.Journal[len(p.Journal)-1]
	if p.Name != "sim" || p.Controller != "cloudstack" || p.Policy != "auto" || p.Epoch != 2 || p.Master.Name != newMaster ||
		p.HostCount != 3 || len(p.Hosts) != 3 || len(p.Journal) != 3 || last.Step != "result" || last.RequestID != "operator-1" || !last.OK {
		t.Fatalf("status --json: %s", out)
	}

	for _, h := range p.Hosts {
		if h.Name == newMaster && !h.Reached || h.Name != newMaster && h.Probe == "unreachable" && (h.Reached || !h.Live) {
			t.Errorf("status --json: host %+v", h)
		}
	}

	// An unknown pool is an error naming it.
	if _, err := command(t, 10*time.Second, "status", "--addr", grpcAddr, "--pool", "nope"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("status --pool nope: %v", err)
	}

	// The log line of the election's result carries the keys operators
	// search by.
	result := ""
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "election step") && strings.Contains(line, "step=result") {
			result = line
		}
	}
	for _, key := range []string{"pool=sim", "request_id=operator-1", "epoch=1", "host="} {
		if !strings.Contains(result, key) {
			t.Errorf("the election's result line lacks %s: %q", key, result)
		}
	}
}

// TestHealthAnswers: exit 0 only for SERVING; one line whatever happens.
func TestHealthAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	go g.Serve(ln)
	defer g.Stop()
	addr := ln.Addr().String()
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))

	for name, tc := range map[string]struct {
		args []string
		want string
		code int // 0, or exitError's
	}{
		"serving":         {[]string{"--addr", addr, "--service", "up"}, addr + " SERVING\n", 0},
		"not serving":     {[]string{"--addr", addr, "--service", "down"}, addr + " NOT_SERVING\n", 1},
		"unknown service": {[]string{"--addr", addr, "--service", "what"}, addr + " UNREACHABLE: NotFound: unknown service\n", 1},
		"nobody there":    {[]string{"--addr", dead, "--timeout", "1s"}, dead + " UNREACHABLE: ", 1},
		"waits in vain":   {[]string{"--addr", addr, "--service", "down", "--wait", "600ms"}, addr + " NOT_SERVING\n", 1},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := command(t, 10*time.Second, append([]string{"health"}, tc.args...)...)
			var exit exitError
			switch {
			case tc.code == 0 && err != nil:
				t.Fatalf("err %v", err)
			case tc.code != 0 && (!errors.As(err, &exit) || exit.code != tc.code):
				t.Fatalf("want exit %d, got %v", tc.code, err)
			}
			if !strings.HasPrefix(out, tc.want) || strings.Count(out, "\n") != 1 {
				t.Fatalf("output %q, want one line starting %q", out, tc.want)
			}
		})
	}

	// Plaintext only on loopback, as the bridge serves it.
	if _, err := command(t, 5*time.Second, "health", "--addr", "192.0.2.1:50051"); err == nil || !strings.Contains(err.Error(), "--ca-file") {
		t.Fatalf("plaintext to a remote address: %v", err)
	}
	// The service turning SERVING is waited for.
	go func() {
		time.Sleep(300 * time.Millisecond)
		hs.SetServingStatus("late", healthpb.HealthCheckResponse_SERVING)
	}()
	if out, err := command(t, 10*time.Second, "health", "--addr", addr, "--service", "late", "--wait", "5s"); err != nil || !strings.HasSuffix(out, " SERVING\n") {
		t.Fatalf("--wait: %q %v", out, err)
	}
}
