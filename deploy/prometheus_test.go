package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/metrics"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
	"github.com/cloudstack-xenha/xenha-bridge/xenha/xenhatest"
)

const (
	rulesFile     = "prometheus/xenha-bridge-rules.yml"
	rulesTestFile = "prometheus/xenha-bridge-rules.test.yml"
	dashboardFile = "grafana/xenha-bridge.json"
)

// ruleFile is what the tests read of a rules file.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string            `yaml:"alert"`
			Expr   string            `yaml:"expr"`
			For    string            `yaml:"for"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T, path string) ruleFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rf
}

// TestAlertRules checks the rules with promtool and runs their unit tests;
// every alert must be shown firing by at least one of them, and have a
// severity and a summary.
func TestAlertRules(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus", "XENHA_SKIP_PROMETHEUS")
	if out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.Command(promtool, "test", "rules", filepath.Base(rulesTestFile))
	cmd.Dir = filepath.Dir(rulesTestFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	// A broken rule must fail the check, so a pass means something.
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: xenha_bridge_pool_epoch >\n"), 0o644)
	if out, err := exec.Command(promtool, "check", "rules", bad).CombinedOutput(); err == nil {
		t.Fatalf("promtool check rules passed a broken rule:\n%s", out)
	}

	rf := readRules(t, rulesFile)
	tb, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				AlertName string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(tb, &tests); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			}
		}
	}
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !fires[r.Alert] {
				t.Errorf("%s: no test in %s shows it firing", r.Alert, rulesTestFile)
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
			}
			for _, name := range metricNames(r.Expr) {
				if !exported(t)[name] {
					t.Errorf("%s: %s is not a metric the bridge exports", r.Alert, name)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no alerts read")
	}
}

var exportedNames map[string]bool

// exported is every metric name a bridge's /metrics can show, read from
// the metrics package's registry with a pool, a journal, the pool's lease
// (a bridge with journal.store: mysql; the lease is read from a fake
// keeper, the collector is the bridge's), an election, a fence and XAPI
// calls observed (a vector shows only the series it has), plus the gRPC
// server's, and Prometheus's own up.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	if exportedNames != nil {
		return exportedNames
	}
	m := metrics.New("test")
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
	xenhatest.AttachSim(t, pools)
	m.WatchLeases(pools, heldLeases{})
	m.ObserveElection(elect.Observation{Pool: "sim", Result: &elect.Result{ElectedBy: elect.ByCloudStack}, Took: time.Second})
	m.ObserveFence(fencing.Observation{Pool: "sim", Result: &fencing.Result{Outcome: fencing.Fenced}, Took: time.Second})
	m.ObserveXAPICall("pool.get_all", time.Millisecond, &xapi.Error{Code: xapi.CodeHostIsSlave})

	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{"up": true}
	for _, f := range fams {
		names[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		}
	}
	// The gRPC metrics have series only once calls are made: their
	// descriptions name them.
	descs := make(chan *prometheus.Desc, 64)
	go func() { m.GRPC().Describe(descs); close(descs) }()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		if sm := fq.FindStringSubmatch(d.String()); sm != nil {
			for _, s := range []string{"", "_bucket", "_sum", "_count"} {
				names[sm[1]+s] = true
			}
		}
	}
	for _, want := range []string{"xenha_bridge_pool_master_reachable", "xenha_bridge_fences_total", "grpc_server_handled_total",
		"xenha_bridge_lease_term"} {
		if !names[want] {
			t.Fatalf("the registry has no %s: %v", want, names)
		}
	}
	exportedNames = names
	return names
}

// heldLeases is a lease keeper that holds every pool's lease, at term 1.
type heldLeases struct{}

func (heldLeases) Status(uuid string) lease.Status {
	return lease.Status{Pool: uuid, Known: true, Mine: true, Holder: "test", Term: 1}
}

var (
	// PromQL pieces that hold no metric name.
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	braces     = regexp.MustCompile(`\{[^{}]*\}`)
	brackets   = regexp.MustCompile(`\[[^\[\]]*\]`)
	grouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	keywords   = map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// metricNames returns the metric names a PromQL expression (or a Grafana
// label_values query) reads.
func metricNames(expr string) []string {
	s := quoted.ReplaceAllString(expr, `""`)
	s = braces.ReplaceAllString(s, " ")
	s = brackets.ReplaceAllString(s, " ")
	s = grouping.ReplaceAllString(s, " ")
	s = regexp.MustCompile(`\$\{?\w+\}?`).ReplaceAllString(s, " ")
	if m := regexp.MustCompile(`^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`).FindStringSubmatch(s); m != nil {
		return []string{m[1]}
	}
	var names []string
	for _, m := range identifier.FindAllStringSubmatchIndex(s, -1) {
		word := strings.TrimRight(s[m[0]:m[1]], " \t\n(")
		if m[2] >= 0 || keywords[strings.ToLower(word)] { // a function call or a keyword
			continue
		}
		if m[0] > 0 && (s[m[0]-1] >= '0' && s[m[0]-1] <= '9' || s[m[0]-1] == '.') { // 1e9, 0.95
			continue
		}
		names = append(names, word)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`up{job="x"} == 0`: {"up"},
		`histogram_quantile(0.95, sum by (le, method) (rate(a_bucket{job=~"$job"}[$__rate_interval])))`: {"a_bucket"},
		`(a{o=~"x|y"} unless a offset 15m) and on (job, instance) (up offset 15m)`:                      {"a", "a", "up"},
		`time() - b{pool=~"$pool"} > 1e9`:                      {"b"},
		`label_values(c{job=~"$job"}, pool)`:                   {"c"},
		`sum without (x) (increase(d[5m])) > bool 0.5 or e`:    {"d", "e"},
		`changes(xenha_bridge_pool_epoch{pool="and"}[1h]) > 3`: {"xenha_bridge_pool_epoch"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", expr, got, want)
		}
	}
}

// TestDashboard reads the Grafana dashboard: every panel has a query, and
// every query (the template variables' too) reads only metrics the bridge
// exports.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr string `json:"expr"`
	}
	type panel struct {
		ID      int       `json:"id"`
		Type    string    `json:"type"`
		Title   string    `json:"title"`
		Targets []target  `json:"targets"`
		Panels  []panel   `json:"panels"`
		GridPos *struct{} `json:"gridPos"`
	}
	var dash struct {
		UID        string  `json:"uid"`
		Title      string  `json:"title"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("the dashboard has no uid or title")
	}
	names := exported(t)
	check := func(where, expr string) {
		t.Helper()
		if strings.TrimSpace(expr) == "" {
			t.Errorf("%s: empty query", where)
			return
		}
		got := metricNames(expr)
		if len(got) == 0 {
			t.Errorf("%s: %q reads no metric", where, expr)
		}
		for _, n := range got {
			if !names[n] {
				t.Errorf("%s: %q reads %s, which the bridge does not export", where, expr, n)
			}
		}
	}
	queries, ids := 0, map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil {
				t.Errorf("panel %q has no gridPos", p.Title)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				check(fmt.Sprintf("panel %q", p.Title), tg.Expr)
				queries++
			}
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type == "query" {
			check("variable "+v.Name, v.Definition)
		}
	}
	if queries < 10 {
		t.Errorf("only %d queries", queries)
	}
	// The check itself: a name the bridge does not export is caught.
	if names["xenha_bridge_no_such_metric"] || !slices.Contains(metricNames(`rate(xenha_bridge_no_such_metric[5m])`), "xenha_bridge_no_such_metric") {
		t.Error("the name check does not catch an unknown metric")
	}
}

// TestAlertFiresInPrometheus runs Debian's Prometheus on loopback with the
// rules, scraping a bridge on the simulator (the real binary, built here);
// powers the simulated master off through the simulator's control
// endpoint; and waits for XenHAPoolNoMaster to fire in Prometheus's API,
// after the rule's own for: 30s.
func TestAlertFiresInPrometheus(t *testing.T) {
	promBin := needTool(t, "prometheus", "prometheus", "XENHA_SKIP_PROMETHEUS")
	if testing.Short() {
		t.Skip("-short: no end-to-end run")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "xenha-bridge")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/xenha-bridge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	grpcAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	control := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	bridgeLog := start(t, "bridge", bin, "serve", "--simulate", "--listen", grpcAddr, "--sim-control", control, "--sim-port", "0",
		"--metrics", metricsAddr, "--journal", filepath.Join(dir, "j.db"))

	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: xenha-bridge
    static_configs:
      - targets: [%q]
`, rules, metricsAddr)), 0o644)
	promAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	promLog := start(t, "prometheus", promBin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr)
	defer func() {
		if t.Failed() {
			t.Logf("bridge's log:\n%s\nprometheus's log:\n%s", bridgeLog, promLog)
		}
	}()

	api := func(path string, out any) error {
		resp, err := http.Get("http://" + promAddr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", resp.Status, b)
		}
		return json.Unmarshal(b, out)
	}
	type sample struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	query := func(q string) (sample, error) {
		var s sample
		err := api("/api/v1/query?query="+url.QueryEscape(q), &s)
		return s, err
	}
	type alerts struct {
		Data struct {
			Alerts []struct {
				Labels   map[string]string `json:"labels"`
				State    string            `json:"state"`
				ActiveAt time.Time         `json:"activeAt"`
			} `json:"alerts"`
		} `json:"data"`
	}
	waitFor := func(what string, within time.Duration, ok func() (bool, error)) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			good, err := ok()
			if good {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s (last error: %v)", what, within, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}

	// Prometheus scrapes the bridge and sees the pool's master.
	waitFor("Prometheus reads the simulated pool's master as reachable", 30*time.Second, func() (bool, error) {
		s, err := query(`xenha_bridge_pool_master_reachable{job="xenha-bridge",pool="sim"} == 1`)
		return err == nil && len(s.Data.Result) == 1, err
	})
	var a alerts
	if err := api("/api/v1/alerts", &a); err != nil {
		t.Fatal(err)
	}
	for _, al := range a.Data.Alerts {
		if al.State == "firing" {
			t.Errorf("an alert fires before anything failed: %v", al.Labels)
		}
	}

	// The master dies.
	resp, err := http.Post("http://"+control+"/hosts/0/power-off", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	off := time.Now()
	var state string
	waitFor("XenHAPoolNoMaster firing", 75*time.Second, func() (bool, error) {
		var a alerts
		if err := api("/api/v1/alerts", &a); err != nil {
			return false, err
		}
		for _, al := range a.Data.Alerts {
			if al.Labels["alertname"] == "XenHAPoolNoMaster" && al.Labels["pool"] == "sim" {
				state = al.State
				if al.State == "firing" {
					if al.Labels["severity"] != "critical" || al.Labels["instance"] != metricsAddr {
						t.Errorf("labels: %v", al.Labels)
					}
					return true, nil
				}
			}
		}
		return false, fmt.Errorf("XenHAPoolNoMaster is %q", state)
	})
	if took := time.Since(off); took < 30*time.Second {
		t.Errorf("XenHAPoolNoMaster fired %s after the power-off, before its for: 30s", took.Round(time.Second))
	}
	t.Logf("XenHAPoolNoMaster fired %s after the master's power-off", time.Since(off).Round(time.Second))
}

// start runs a program until the test ends (SIGTERM, then SIGKILL after
// 10 s) and returns its output, read at the end.
func start(t *testing.T, name, bin string, args ...string) *lockedLog {
	t.Helper()
	log := &lockedLog{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return log
}

// lockedLog collects a process's output.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
