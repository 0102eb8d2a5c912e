package config

import (
	"strings"
	"testing"
)

func TestMetricsSettings(t *testing.T) {
	for name, tc := range map[string]struct {
		doc  string
		want Metrics
	}{
		"off by default":           {"listen: 127.0.0.1:50051\n", Metrics{}},
		"empty is off":             {"metrics:\n  listen: \"\"\n", Metrics{}},
		"loopback":                 {"metrics:\n  listen: 127.0.0.1:9102\n", Metrics{Listen: "127.0.0.1:9102"}},
		"ipv6 loopback":            {"metrics: {listen: \"[::1]:9102\"}\n", Metrics{Listen: "[::1]:9102"}},
		"localhost, any port":      {"metrics: {listen: \"localhost:0\"}\n", Metrics{Listen: "localhost:0"}},
		"remote when allowed":      {"metrics:\n  listen: 0.0.0.0:9102\n  allow_remote: true\n", Metrics{Listen: "0.0.0.0:9102", AllowRemote: true}},
		"allow_remote alone is ok": {"metrics: {allow_remote: true}\n", Metrics{AllowRemote: true}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.doc), "cfg.yaml", t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Metrics != tc.want || cfg.Metrics.Enabled() != (tc.want.Listen != "") {
				t.Fatalf("metrics = %+v, want %+v", cfg.Metrics, tc.want)
			}
		})
	}
}

func TestMetricsErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		doc  string
		want string
	}{
		"every interface": {"metrics:\n  listen: :9102\n",
			"cfg.yaml: line 2: metrics.listen: refusing to serve metrics on non-loopback address :9102"},
		"a public address": {"metrics:\n  listen: 10.0.0.5:9102\n  allow_remote: false\n",
			"metrics.allow_remote: true"},
		"no port":       {"metrics:\n  listen: 127.0.0.1\n", `line 2: metrics.listen: "127.0.0.1" is not host:port`},
		"bad port":      {"metrics:\n  listen: 127.0.0.1:http\n", `metrics.listen: port "http"`},
		"bad host":      {"metrics:\n  listen: \"bad host:9102\"\n", `metrics.listen: host "bad host"`},
		"same as gRPC":  {"listen: 127.0.0.1:50051\nmetrics:\n  listen: 127.0.0.1:50051\n", "line 3: metrics.listen: 127.0.0.1:50051 is also the gRPC listen address"},
		"unknown key":   {"metrics:\n  address: 127.0.0.1:9102\n", `line 2: unknown key "address" in metrics`},
		"typo":          {"metrics:\n  lisen: 127.0.0.1:9102\n", `(did you mean "listen"?)`},
		"not a mapping": {"metrics: 127.0.0.1:9102\n", "metrics: expected the metrics settings (a mapping of keys)"},
		"quoted bool":   {"metrics:\n  allow_remote: \"true\"\n", "line 2: metrics.allow_remote: expected true or false (without quotes)"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "cfg.yaml", t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

// Validate applies the same rules to a configuration changed after loading
// (serve's --metrics flag).
func TestMetricsValidate(t *testing.T) {
	cfg := Default()
	cfg.Metrics.Listen = "192.0.2.1:9102"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "metrics.listen: refusing") {
		t.Fatalf("Validate: %v", err)
	}
	cfg.Metrics.AllowRemote = true
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate with allow_remote: %v", err)
	}
}
