package server

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// handled reads grpc_server_handled_total for one method and code.
func handled(t *testing.T, reg *prometheus.Registry, method, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "grpc_server_handled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["grpc_method"] == method && labels["grpc_code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no grpc_server_handled_total for %s %s", method, code)
	return 0
}

// jsonLines parses the JSON log lines a syncBuffer collected.
func jsonLines(t *testing.T, s *syncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON log line: %s", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// TestMetricsAndLogFields: every RPC is counted by method and code
// (unauthenticated ones and health checks too), and its log line carries
// the pool, host and request id of the request under the bridge's keys.
func TestMetricsAndLogFields(t *testing.T) {
	metrics := grpcprom.NewServerMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics)
	var logs syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, JSONFormat: true, Output: &logs})
	f := newFixture(t, Options{Metrics: metrics, Logger: log, Token: "s3cret"}, xenha.Options{})

	// Every method is there from the start, at 0.
	if n := handled(t, reg, "ElectMaster", "OK"); n != 0 {
		t.Fatalf("ElectMaster OK before any call: %v", n)
	}
	ctx := metadata.AppendToOutgoingContext(f.ctx(), "authorization", "Bearer s3cret")
	if _, err := f.c.ListPools(ctx, &pb.ListPoolsRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := f.c.FenceHost(ctx, &pb.FenceHostRequest{Pool: "nope", Host: "host-9", RequestId: "req-7", ExpectedEpoch: 4})
	wantCode(t, err, codes.NotFound)
	_, err = f.c.HAMode(f.ctx(), &pb.HAModeRequest{Pool: "sim"}) // no token
	wantCode(t, err, codes.Unauthenticated)
	if _, err := healthpb.NewHealthClient(f.conn).Check(f.ctx(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, code string
	}{{"ListPools", "OK"}, {"FenceHost", "NotFound"}, {"HAMode", "Unauthenticated"}, {"Check", "OK"}} {
		if n := handled(t, reg, c.method, c.code); n != 1 {
			t.Errorf("grpc_server_handled_total{%s,%s} = %v, want 1", c.method, c.code, n)
		}
	}

	_, err = f.c.ElectMaster(ctx, &pb.ElectMasterRequest{Pool: "nope", RequestId: strings.Repeat("r", 4000)})
	wantCode(t, err, codes.InvalidArgument)

	var fence, elect map[string]any
	for _, l := range jsonLines(t, &logs) {
		switch l["grpc.method"] {
		case "FenceHost":
			fence = l
		case "ElectMaster":
			elect = l
		}
	}
	if id, _ := elect["request_id"].(string); !strings.HasPrefix(id, "rrrr") || len(id) > 131 {
		t.Errorf("a 4000-character request id is logged as %d characters", len(id))
	}
	if fence == nil || fence["pool"] != "nope" || fence["host"] != "host-9" || fence["request_id"] != "req-7" ||
		fence["epoch"] != float64(4) || fence["grpc.code"] != "NotFound" {
		t.Fatalf("FenceHost's log line: %v", fence)
	}
}

// TestPanicIsInternal: a handler's panic becomes INTERNAL, counted and
// logged like any answer, and the server goes on serving.
func TestPanicIsInternal(t *testing.T) {
	metrics := grpcprom.NewServerMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics)
	var logs syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, JSONFormat: true, Output: &logs})
	srv := New(NewService(nil, nil), Options{Metrics: metrics, Logger: log}) // no manager: ListPools panics
	conn := dialServer(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 2 {
		_, err := pb.NewXenHAServiceClient(conn).ListPools(ctx, &pb.ListPoolsRequest{})
		wantCode(t, err, codes.Internal)
	}
	if n := handled(t, reg, "ListPools", "Internal"); n != 2 {
		t.Fatalf("grpc_server_handled_total{ListPools,Internal} = %v, want 2", n)
	}
	seen := map[string]bool{}
	for _, l := range jsonLines(t, &logs) {
		seen[l["@message"].(string)] = true
	}
	if !seen["panic in a handler"] || !seen["finished call"] {
		t.Fatalf("log: %v", seen)
	}
}
