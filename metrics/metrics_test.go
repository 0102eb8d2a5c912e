package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
	"github.com/cloudstack-xenha/xenha-bridge/xenha/xenhatest"
)

func TestOutcomes(t *testing.T) {
	invalid := &xenha.InvalidArgumentError{Field: "expected_epoch", Reason: "ahead"}
	for name, tc := range map[string]struct {
		got, want string
	}{
		"elected by cloudstack": {ElectionOutcome(&elect.Result{ElectedBy: elect.ByCloudStack}, nil), "cloudstack"},
		"elected by xenha":      {ElectionOutcome(&elect.Result{ElectedBy: elect.ByXenHA}, nil), "xenha"},
		"master alive":          {ElectionOutcome(&elect.Result{ElectedBy: elect.ByNone}, nil), "none"},
		"refused":               {ElectionOutcome(nil, &elect.RefusedError{Reason: "alive"}), "refused"},
		"not converged":         {ElectionOutcome(nil, fmt.Errorf("%w by the deadline", elect.ErrNotConverged)), "not_converged"},
		"stale epoch":           {ElectionOutcome(nil, fmt.Errorf("%w: 1 < 2", fencing.ErrStaleEpoch)), "stale_epoch"},
		"no controller":         {ElectionOutcome(nil, fencing.ErrNoController), "no_controller"},
		"invalid":               {ElectionOutcome(nil, invalid), "invalid"},
		"canceled":              {ElectionOutcome(nil, fmt.Errorf("waiting: %w", context.Canceled)), "canceled"},
		"timeout":               {ElectionOutcome(nil, context.DeadlineExceeded), "timeout"},
		"other":                 {ElectionOutcome(nil, errors.New("boom")), "error"},
		"fenced":                {FenceOutcome(&fencing.Result{Outcome: fencing.Fenced}, nil), "fenced"},
		"deferred":              {FenceOutcome(&fencing.Result{Outcome: fencing.Deferred}, nil), "deferred_to_xenha"},
		"refused alive":         {FenceOutcome(&fencing.Result{Outcome: fencing.RefusedAlive}, nil), "refused_host_alive"},
		"fence failed":          {FenceOutcome(&fencing.Result{Outcome: fencing.Failed}, nil), "failed"},
		"unknown host":          {FenceOutcome(nil, fmt.Errorf("%w: x", fencing.ErrUnknownHost)), "unknown_host"},
		"fence stale":           {FenceOutcome(nil, fencing.ErrStaleEpoch), "stale_epoch"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", name, tc.got, tc.want)
		}
	}
}

func TestObservations(t *testing.T) {
	m := New("test")
	m.ObserveElection(elect.Observation{Pool: "a", Result: &elect.Result{ElectedBy: elect.ByCloudStack}, Took: time.Second})
	m.ObserveElection(elect.Observation{Pool: "a", Err: &elect.RefusedError{Reason: "x"}})
	m.ObserveFence(fencing.Observation{Pool: "b", Result: &fencing.Result{Outcome: fencing.Fenced}})
	m.ObserveXAPICall("pool.get_all", 20*time.Millisecond, nil)
	m.ObserveXAPICall("session.login_with_password", time.Millisecond, &xapi.Error{Code: xapi.CodeHostIsSlave})
	want := `
# HELP xenha_bridge_elections_total ElectMaster runs (automatic ones included; not dry runs or repeated request ids), by pool and outcome: xenha, cloudstack, none (the master was alive), refused, not_converged, stale_epoch, no_controller, invalid, canceled, timeout, error.
# TYPE xenha_bridge_elections_total counter
xenha_bridge_elections_total{outcome="cloudstack",pool="a"} 1
xenha_bridge_elections_total{outcome="refused",pool="a"} 1
# HELP xenha_bridge_fences_total FenceHost runs (not dry runs or repeated request ids), by pool and outcome: fenced, deferred_to_xenha, refused_host_alive, failed, unknown_host, stale_epoch, no_controller, invalid, canceled, timeout, error.
# TYPE xenha_bridge_fences_total counter
xenha_bridge_fences_total{outcome="fenced",pool="b"} 1
# HELP xenha_bridge_xapi_call_errors_total XAPI requests that failed, by XenAPI method and code: the XenAPI error code (HOST_IS_SLAVE, ...) or unreachable, timeout, canceled, malformed, closed, error.
# TYPE xenha_bridge_xapi_call_errors_total counter
xenha_bridge_xapi_call_errors_total{code="HOST_IS_SLAVE",method="session.login_with_password"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"xenha_bridge_elections_total", "xenha_bridge_fences_total", "xenha_bridge_xapi_call_errors_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.xapiSeconds); n != 2 {
		t.Fatalf("xapi_call_duration_seconds series: %d, want one per method", n)
	}
}

// TestPoolsAndJournal reads a simulated pool and a journal at scrape time,
// through the HTTP handler, and checks the names pass Prometheus's lint.
func TestPoolsAndJournal(t *testing.T) {
	m := New("test")
	pools := xenha.NewManager(xenha.Options{XAPI: xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond, Observe: m.ObserveXAPICall}})
	defer pools.Close()
	m.WatchPools(pools)
	j, err := journal.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	m.WatchJournal(j)
	j.Append(journal.Entry{Pool: "sim", Kind: "elect", Step: "request"})
	sim := xenhatest.AttachSim(t, pools)
	sub, err := pools.Subscribe("sim", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	srv := httptest.NewServer(m.NewHTTPServer(nil).Handler)
	defer srv.Close()
	scrape := func() string {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics: %s\n%s", resp.Status, b)
		}
		return string(b)
	}
	has := func(body string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(body, "\n"+l+"\n") {
				t.Errorf("no %q in the scrape", l)
			}
		}
	}
	body := scrape()
	has(body,
		`xenha_bridge_pool_controller{controller="cloudstack",pool="sim"} 1`,
		`xenha_bridge_pool_controller{controller="xenha",pool="sim"} 0`,
		`xenha_bridge_pool_master_reachable{pool="sim"} 1`,
		`xenha_bridge_pool_hosts{pool="sim"} 3`,
		`xenha_bridge_pool_live_hosts{pool="sim"} 3`,
		`xenha_bridge_pool_epoch{pool="sim"} 1`,
		`xenha_bridge_pool_observed{pool="sim"} 1`,
		`xenha_bridge_pool_warnings{code="master_unreachable",pool="sim"} 0`,
		`xenha_bridge_event_streams 1`,
		`xenha_bridge_journal_entries{pool="sim"} 1`,
		`xenha_bridge_build_info{goversion="`+runtime.Version()+`",version="test"} 1`,
	)
	if !strings.Contains(body, `xenha_bridge_xapi_call_duration_seconds_count{method="event.from"}`) {
		t.Error("no event.from timing")
	}

	// The master dies: the scrape shows it, the stream lags while nobody reads.
	if err := sim.PowerOff(0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(body, "\n"+`xenha_bridge_pool_warnings{code="master_unreachable",pool="sim"} 1`+"\n") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		body = scrape()
	}
	has(body,
		`xenha_bridge_pool_master_reachable{pool="sim"} 0`,
		`xenha_bridge_pool_warnings{code="master_unreachable",pool="sim"} 1`,
		`xenha_bridge_events_published_total{type="master_lost"} 1`,
	)
	if strings.Contains(body, "\nxenha_bridge_event_stream_lag 0\n") {
		t.Error("the unread stream shows no lag")
	}
	if !strings.Contains(body, `xenha_bridge_xapi_call_errors_total{code="timeout",method="session.login_with_password"}`) {
		t.Error("the dead (silent) master's timed-out logins are not counted")
	}

	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, Namespace) {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}

	// A detached pool disappears from the scrape.
	if err := pools.Detach("sim"); err != nil {
		t.Fatal(err)
	}
	if body := scrape(); strings.Contains(body, `xenha_bridge_pool_epoch{pool="sim"}`) {
		t.Error("a detached pool is still reported")
	}

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /: %s", resp.Status)
	}
}
