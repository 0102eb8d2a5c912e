package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const fullYAML = `# a full configuration
listen: 0.0.0.0:50051
log:
  level: DEBUG
  json: true
tls:
  cert_file: tls.crt
  key_file: tls.key
  client_ca_file: ca.pem
auth:
  token_file: token
events:
  retention: 5000
  subscriber_buffer: 64
pools:
  - name: cluster-a
    members: [https://10.0.0.11, "https://10.0.0.12:8443/"]
    username: root
    password_file: pw
    policy: require_xenha
    storage_timeout: 2m
    probe_interval: 5s
    master_probe_interval: 1s
    unreachable_master: fence
    tls:
      ca_file: ca.pem
      pin_sha256: "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89"
      allow_plain_http: false
    fencing:
      bmcs:
        - host: 10.0.0.11
          driver: redfish
          address: https://10.0.1.11
          username: admin
          password_file: pw
          ca_file: ca.pem
          pin_sha256: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
  - name: lab.pool_2
    members:
      - http://127.0.0.1:8080
    username: admin
    password_file: pw
    tls: {allow_plain_http: true}
`

func TestParseFull(t *testing.T) {
	dir := fixtureDir(t)
	cfg, err := Parse([]byte(fullYAML), "cfg.yaml", dir)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Config{
		Listen: "0.0.0.0:50051",
		Log:    Log{Level: "debug", JSON: true},
		TLS: ServerTLS{
			CertFile:     filepath.Join(dir, "tls.crt"),
			KeyFile:      filepath.Join(dir, "tls.key"),
			ClientCAFile: filepath.Join(dir, "ca.pem"),
		},
		Auth:    Auth{TokenFile: filepath.Join(dir, "token"), token: newSecret(testToken)},
		Events:  Events{Retention: 5000, SubscriberBuffer: 64},
		Journal: Journal{Store: "bolt", Path: DefaultJournalPath, MySQL: MySQL{Timeout: 5 * time.Second}},
		Lease:   Lease{Duration: 15 * time.Second, Renew: 2 * time.Second, Margin: 5 * time.Second},
		Pools: []Pool{{
			Name:                "cluster-a",
			Members:             []string{"https://10.0.0.11", "https://10.0.0.12:8443/"},
			Username:            "root",
			PasswordFile:        filepath.Join(dir, "pw"),
			Policy:              PolicyRequireXenHA,
			StorageTimeout:      2 * time.Minute,
			ProbeInterval:       5 * time.Second,
			MasterProbeInterval: time.Second,
			UnreachableMaster:   UnreachableFence,
			TLS: PoolTLS{
				CAFile:    filepath.Join(dir, "ca.pem"),
				PinSHA256: "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89",
			},
			Fencing: func() Fencing {
				f := defaultPool().Fencing
				f.BMCs = []BMC{{Host: "10.0.0.11", Driver: "redfish", Address: "https://10.0.1.11", Username: "admin",
					PasswordFile: filepath.Join(dir, "pw"), CAFile: filepath.Join(dir, "ca.pem"),
					PinSHA256: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
					password:  newSecret(testPassword)}}
				return f
			}(),
			AutopilotDelay: DefaultAutopilotDelay,
			password:       newSecret(testPassword),
		}, {
			Name:                "lab.pool_2",
			Members:             []string{"http://127.0.0.1:8080"},
			Username:            "admin",
			PasswordFile:        filepath.Join(dir, "pw"),
			Policy:              PolicyAuto,
			StorageTimeout:      DefaultStorageTimeout,
			ProbeInterval:       DefaultProbeInterval,
			MasterProbeInterval: DefaultMasterProbeInterval,
			UnreachableMaster:   UnreachableRefuse,
			TLS:                 PoolTLS{AllowPlainHTTP: true},
			Fencing:             defaultPool().Fencing,
			AutopilotDelay:      DefaultAutopilotDelay,
			password:            newSecret(testPassword),
		}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", cfg, want)
	}
	if !cfg.TLS.Enabled() || !cfg.TLS.MutualTLS() {
		t.Errorf("TLS.Enabled/MutualTLS = %v/%v, want true/true", cfg.TLS.Enabled(), cfg.TLS.MutualTLS())
	}
	if got := cfg.Auth.Token(); got != testToken {
		t.Errorf("Token() = %q, want the trimmed token", got)
	}
	if got := cfg.Pools[0].Password(); got != testPassword {
		t.Errorf("Password() = %q, want the password without its newline", got)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate of a parsed config: %v", err)
	}
	for i := range cfg.Pools {
		if err := cfg.Pools[i].Validate(); err != nil {
			t.Errorf("pools[%d].Validate: %v", i, err)
		}
	}

	// A round trip through YAML gives the same configuration.
	again, err := Parse(render(t, cfg), "again.yaml", t.TempDir())
	if err != nil {
		t.Fatalf("Parse(render(cfg)): %v", err)
	}
	if !reflect.DeepEqual(again, cfg) {
		t.Errorf("round trip:\n got %+v\nwant %+v", again, cfg)
	}
}

func TestDefaults(t *testing.T) {
	def := Default()
	want := &Config{
		Listen:  "127.0.0.1:50051",
		Log:     Log{Level: "info"},
		Events:  Events{Retention: 10000, SubscriberBuffer: 1024},
		Journal: Journal{Store: "bolt", Path: DefaultJournalPath, MySQL: MySQL{Timeout: 5 * time.Second}},
		Lease:   Lease{Duration: 15 * time.Second, Renew: 2 * time.Second, Margin: 5 * time.Second},
	}
	if !reflect.DeepEqual(def, want) {
		t.Fatalf("Default() = %+v, want %+v", def, want)
	}
	if err := def.Validate(); err != nil {
		t.Fatalf("Default().Validate(): %v", err)
	}
	if def.TLS.Enabled() || def.TLS.MutualTLS() || def.Auth.Token() != "" {
		t.Fatal("Default() has TLS or a token")
	}
	for _, doc := range []string{
		"",
		"\n\n",
		"# only a comment\n",
		"---\n",
		"---\n...\n",
		"~\n",
		"{}\n",
		"listen:\n",
		"listen: ~\nlog:\ntls:\nauth:\nevents:\npools:\n",
		"log: {level: ~, json: ~}\nevents: {retention: ~}\npools: []\n",
	} {
		cfg, err := Parse([]byte(doc), "cfg.yaml", t.TempDir())
		if err != nil {
			t.Errorf("Parse(%q): %v", doc, err)
			continue
		}
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("Parse(%q) = %+v, want the defaults", doc, cfg)
		}
	}

	// A pool's defaults.
	dir := fixtureDir(t)
	cfg, err := Parse([]byte("pools:\n  - name: p\n    members: [https://h]\n    username: root\n    password_file: pw\n    tls:\n"), "cfg.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Pools[0]
	if p.Policy != PolicyAuto || p.StorageTimeout != 120*time.Second || p.ProbeInterval != 30*time.Second || p.TLS != (PoolTLS{}) {
		t.Errorf("pool defaults: %+v", p)
	}
}

// poolHead is a valid pool; cases append keys from line 6 on.
const poolHead = `pools:
  - name: a
    members: [https://10.0.0.1]
    username: root
    password_file: pw
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error, in any order
	}{
		// The document.
		{"syntax", "listen: [\nlog: x\n", []string{"cfg.yaml: line ", "invalid YAML"}},
		{"tab indentation", "log:\n\tlevel: info\n", []string{"cfg.yaml: line 2: invalid YAML"}},
		{"two documents", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n", []string{"cfg.yaml: line 2: invalid YAML: a second YAML document starts here"}},
		{"top-level list", "- listen\n", []string{"cfg.yaml: line 1: the configuration must be a mapping"}},
		{"top-level scalar", "hello\n", []string{"cfg.yaml: line 1: the configuration must be a mapping", `"hello"`}},
		{"duplicate key", "listen: 127.0.0.1:1\nlog: {}\nlisten: 127.0.0.1:2\n", []string{`cfg.yaml: line 3: duplicate key "listen" (first at line 1)`}},
		{"duplicate key in pool", poolHead + "    username: admin\n", []string{`cfg.yaml: line 6: duplicate key "username" in pools[0] (first at line 4)`}},
		{"non-scalar key", "{a: 1}: x\n", []string{"cfg.yaml: line 1: keys must be plain words"}},

		// Unknown keys.
		{"unknown top-level key", "listen: 127.0.0.1:1\nlistne: x\n", []string{`cfg.yaml: line 2: unknown key "listne" (did you mean "listen"?)`}},
		{"unknown pool key", "pools:\n  - name: a\n    membres: [https://10.0.0.1]\n", []string{`cfg.yaml: line 3: unknown key "membres" in pools[0] (did you mean "members"?)`}},
		{"unknown key second pool", poolHead + "  - name: b\n    colour: red\n", []string{`cfg.yaml: line 7: unknown key "colour" in pools[1]`}},
		{"unknown pool tls key", poolHead + "    tls:\n      insecure: true\n", []string{`cfg.yaml: line 7: unknown key "insecure" in pools[0].tls`}},
		{"unknown log key", "log:\n  lvl: debug\n", []string{`cfg.yaml: line 2: unknown key "lvl" in log (did you mean "level"?)`}},
		{"unknown tls key", "tls:\n  ca_file: x\n", []string{`cfg.yaml: line 2: unknown key "ca_file" in tls`}},
		{"unknown events key", "events:\n  history: 5\n", []string{`cfg.yaml: line 2: unknown key "history" in events`}},
		{"password in pool", poolHead + "    password: hunter2\n", []string{`cfg.yaml: line 6: unknown key "password" in pools[0] (passwords are not written in the configuration`, "password_file"}},
		{"token in auth", "auth:\n  token: abc\n", []string{`cfg.yaml: line 2: unknown key "token" in auth (tokens are not written`, "token_file"}},
		{"several unknown keys", "a: 1\nb: 2\n", []string{`line 1: unknown key "a"`, `line 2: unknown key "b"`}},

		// Types.
		{"log not a mapping", "log: debug\n", []string{`cfg.yaml: line 1: log: expected the log settings (a mapping of keys), got "debug"`}},
		{"log.json not bool", "log:\n  json: yes\n", []string{`cfg.yaml: line 2: log.json: expected true or false, got "yes"`}},
		{"listen a list", "listen: [a]\n", []string{"cfg.yaml: line 1: listen: expected a string, got a list"}},
		{"quoted bool", "log:\n  json: \"true\"\n", []string{`cfg.yaml: line 2: log.json: expected true or false (without quotes), got "true"`}},
		{"quoted number", "events:\n  retention: '100'\n", []string{`cfg.yaml: line 2: events.retention: expected a whole number (without quotes), got "100"`}},
		{"retention string", "events:\n  retention: lots\n", []string{`cfg.yaml: line 2: events.retention: expected a whole number, got "lots"`}},
		{"retention float", "events:\n  retention: 1.5\n", []string{`cfg.yaml: line 2: events.retention: expected a whole number, got "1.5"`}},
		{"retention huge", "events:\n  retention: 99999999999999999999\n", []string{"cfg.yaml: line 2: events.retention:"}},
		{"pools a mapping", "pools:\n  name: a\n", []string{"cfg.yaml: line 1: pools: expected a list of pools"}},
		{"pool a scalar", "pools:\n  - a\n", []string{`cfg.yaml: line 2: pools[0]: expected a pool (a mapping of keys), got "a"`}},
		{"empty pool entry", "pools:\n  -\n", []string{"cfg.yaml: line 2: pools[0]: empty pool entry"}},
		{"members a string", "pools:\n  - name: a\n    members: https://10.0.0.1\n", []string{`cfg.yaml: line 3: pools[0].members: expected a list`}},
		{"member a mapping", "pools:\n  - name: a\n    members:\n      - {url: x}\n", []string{"cfg.yaml: line 4: pools[0].members[0]: expected a string, got a mapping"}},
		{"empty member", "pools:\n  - name: a\n    members:\n      - https://h\n      -\n", []string{"cfg.yaml: line 5: pools[0].members[1]: empty entry"}},
		{"bare number duration", poolHead + "    storage_timeout: 120\n", []string{`cfg.yaml: line 6: pools[0].storage_timeout: "120" has no unit: add one, e.g. "120s"`}},
		{"quoted bare number duration", poolHead + "    probe_interval: \"30\"\n", []string{`cfg.yaml: line 6: pools[0].probe_interval: "30" has no unit`}},
		{"float duration", poolHead + "    storage_timeout: 1.5\n", []string{`cfg.yaml: line 6: pools[0].storage_timeout: "1.5" has no unit`}},
		{"bad duration", poolHead + "    storage_timeout: two minutes\n", []string{`cfg.yaml: line 6: pools[0].storage_timeout: "two minutes" is not a duration`}},
		{"bad merge", "<<: 5\n", []string{"cfg.yaml: line 1: a merge key (<<) takes a mapping"}},

		// Values.
		{"listen no port", "listen: 127.0.0.1\n", []string{`cfg.yaml: line 1: listen: "127.0.0.1" is not host:port`}},
		{"listen empty", "listen: \"\"\n", []string{`cfg.yaml: line 1: listen: "" is not host:port`}},
		{"listen bad port", "listen: 127.0.0.1:http\n", []string{`cfg.yaml: line 1: listen: port "http"`}},
		{"listen port range", "listen: 127.0.0.1:70000\n", []string{`cfg.yaml: line 1: listen: port "70000"`}},
		{"listen bad host", "listen: \"bad host:1\"\n", []string{`cfg.yaml: line 1: listen: host "bad host"`}},
		{"plaintext on every interface", "listen: 0.0.0.0:50051\n", []string{"cfg.yaml: line 1: listen: refusing plaintext gRPC on non-loopback address 0.0.0.0:50051: configure tls"}},
		{"plaintext empty host", "log: {}\nlisten: \":50051\"\n", []string{"cfg.yaml: line 2: listen: refusing plaintext gRPC on non-loopback address :50051: configure tls"}},
		{"plaintext ipv6 any", "listen: \"[::]:50051\"\n", []string{"refusing plaintext gRPC on non-loopback address [::]:50051: configure tls"}},
		{"plaintext LAN", "listen: 10.1.2.3:50051\n", []string{"refusing plaintext gRPC on non-loopback address 10.1.2.3:50051"}},
		{"plaintext name", "listen: mgmt.example.org:50051\n", []string{"refusing plaintext gRPC on non-loopback address mgmt.example.org:50051"}},
		{"log level", "log:\n  level: verbose\n", []string{`cfg.yaml: line 2: log.level: "verbose" is not a log level`}},
		{"cert without key", "tls:\n  cert_file: tls.crt\n", []string{"cfg.yaml: line 1: tls.key_file: is required with tls.cert_file"}},
		{"key without cert", "tls:\n  key_file: tls.key\n", []string{"cfg.yaml: line 1: tls.cert_file: is required with tls.key_file"}},
		{"client ca without cert", "tls:\n  client_ca_file: ca.pem\n", []string{"cfg.yaml: line 2: tls.client_ca_file: requires tls.cert_file and tls.key_file"}},
		{"retention zero", "events:\n  retention: 0\n", []string{"cfg.yaml: line 2: events.retention: must be between 1 and 10000000 (got 0)"}},
		{"retention too big", "events:\n  retention: 10_000_001\n", []string{"cfg.yaml: line 2: events.retention: must be between 1 and 10000000 (got 10000001)"}},
		{"buffer zero", "events:\n  subscriber_buffer: 0\n", []string{"cfg.yaml: line 2: events.subscriber_buffer: must be between 1 and 1000000 (got 0)"}},
		{"buffer negative", "events:\n  subscriber_buffer: -5\n", []string{"events.subscriber_buffer: must be between 1 and 1000000 (got -5)"}},

		// Pools.
		{"name missing", "pools:\n  - members: [https://h]\n    username: root\n    password_file: pw\n", []string{"cfg.yaml: line 2: pools[0].name: is required"}},
		{"name chars", "pools:\n  - name: a/b\n", []string{`cfg.yaml: line 2: pools[0].name: "a/b" is not a valid pool name`}},
		{"name too long", "pools:\n  - name: " + strings.Repeat("x", 64) + "\n", []string{"cfg.yaml: line 2: pools[0].name:", "at most 63 characters"}},
		{"name dotdot", "pools:\n  - name: ..\n", []string{`cfg.yaml: line 2: pools[0].name: ".." is not a valid pool name`}},
		{"duplicate names", poolHead + "  - name: b\n    members: [https://10.0.0.2]\n    username: root\n    password_file: pw\n  - name: a\n    members: [https://10.0.0.3]\n    username: root\n    password_file: pw\n",
			[]string{`cfg.yaml: line 10: pools[2].name: duplicate pool name "a": already used by pools[0] (line 2)`}},
		{"members missing", "pools:\n  - name: a\n    username: root\n", []string{"cfg.yaml: line 2: pools[0].members: at least one member is required"}},
		{"members empty", "pools:\n  - name: a\n    members: []\n", []string{"cfg.yaml: line 3: pools[0].members: at least one member is required"}},
		{"http member", "pools:\n  - name: a\n    members:\n      - https://10.0.0.1\n      - http://10.0.0.2\n", []string{`cfg.yaml: line 5: pools[0].members[1]: plain http member "http://10.0.0.2" is refused`, "allow_plain_http"}},
		{"member scheme", "pools:\n  - name: a\n    members: [ftp://10.0.0.1]\n", []string{`cfg.yaml: line 3: pools[0].members[0]: "ftp://10.0.0.1" must be an https:// URL`}},
		{"member no scheme", "pools:\n  - name: a\n    members: [10.0.0.1]\n", []string{`cfg.yaml: line 3: pools[0].members[0]: "10.0.0.1" has no scheme: write https://10.0.0.1`}},
		{"member not a URL", "pools:\n  - name: a\n    members: [\"https://10.0.0.1 https://10.0.0.2\"]\n", []string{`pools[0].members[0]: "https://10.0.0.1 https://10.0.0.2" is not a URL`}},
		{"member userinfo", "pools:\n  - name: a\n    members: [\"https://root@10.0.0.1\"]\n", []string{`cfg.yaml: line 3: pools[0].members[0]: "https://[redacted]@10.0.0.1" must not hold a user name or password`}},
		{"member query", "pools:\n  - name: a\n    members: [\"https://10.0.0.1/?x=1\"]\n", []string{`pools[0].members[0]: "https://10.0.0.1/?[redacted]" must not have a query`}},
		{"member fragment", "pools:\n  - name: a\n    members: [\"https://10.0.0.1#top\"]\n", []string{`pools[0].members[0]: "https://10.0.0.1#[redacted]" must not have a fragment`}},
		{"member no host", "pools:\n  - name: a\n    members: [\"https:///x\"]\n", []string{`pools[0].members[0]: "https:///x" has no host`}},
		{"member port", "pools:\n  - name: a\n    members: [\"https://10.0.0.1:0\"]\n", []string{`pools[0].members[0]: "https://10.0.0.1:0": port "0"`}},
		{"duplicate member", "pools:\n  - name: a\n    members:\n      - https://xs1.example.org\n      - https://XS1.example.org:443/\n", []string{`cfg.yaml: line 5: pools[0].members[1]: "https://XS1.example.org:443/" is the same host as members[0]`}},
		{"username missing", "pools:\n  - name: a\n    members: [https://h]\n    password_file: pw\n", []string{"cfg.yaml: line 2: pools[0].username: is required"}},
		{"username empty", "pools:\n  - name: a\n    members: [https://h]\n    username: \"\"\n    password_file: pw\n", []string{"cfg.yaml: line 4: pools[0].username: is required"}},
		{"password_file missing", "pools:\n  - name: a\n    members: [https://h]\n    username: root\n", []string{"cfg.yaml: line 2: pools[0].password_file: is required"}},
		{"password_file absent", poolHead + "  - name: b\n    members: [https://h]\n    username: root\n    password_file: nope\n", []string{"cfg.yaml: line 9: pools[1].password_file: cannot read ", filepath.Join("DIR", "nope") + ": no such file"}},
		{"password_file directory", "pools:\n  - name: a\n    members: [https://h]\n    username: root\n    password_file: .\n", []string{"cfg.yaml: line 5: pools[0].password_file: DIR is a directory"}},
		{"password_file empty", "pools:\n  - name: a\n    members: [https://h]\n    username: root\n    password_file: empty\n", []string{"cfg.yaml: line 5: pools[0].password_file: DIR/empty is empty"}},
		{"password_file newline only", "pools:\n  - name: a\n    members: [https://h]\n    username: root\n    password_file: newline\n", []string{"cfg.yaml: line 5: pools[0].password_file: DIR/newline is blank (nothing but whitespace): it must hold the password"}},
		{"password_file in /proc", "pools:\n  - name: a\n    members: [https://h]\n    username: root\n    password_file: /proc/self/environ\n", []string{"cfg.yaml: line 5: pools[0].password_file: /proc/self/environ is empty"}},
		{"password_file world-readable", "pools:\n  - name: a\n    members: [https://h]\n    username: root\n    password_file: pw-open\n", []string{"cfg.yaml: line 5: pools[0].password_file: DIR/pw-open is readable by other users (mode 0644): a secret file may be read only by its owner and group"}},
		{"policy", poolHead + "    policy: manual\n", []string{`cfg.yaml: line 6: pools[0].policy: "manual" is not a policy`}},
		{"storage_timeout zero", poolHead + "    storage_timeout: 0s\n", []string{"cfg.yaml: line 6: pools[0].storage_timeout: must be greater than 0 (got 0s)"}},
		{"storage_timeout negative", poolHead + "    storage_timeout: -1m\n", []string{"cfg.yaml: line 6: pools[0].storage_timeout: must be greater than 0 (got -1m0s)"}},
		{"probe_interval short", poolHead + "    probe_interval: 500ms\n", []string{"cfg.yaml: line 6: pools[0].probe_interval: must be at least 1s (got 500ms)"}},
		{"pin", poolHead + "    tls:\n      pin_sha256: abcd\n", []string{`cfg.yaml: line 7: pools[0].tls.pin_sha256: "abcd" is not a SHA-256 fingerprint`}},
		{"pin not hex", poolHead + "    tls:\n      pin_sha256: " + strings.Repeat("zz", 32) + "\n", []string{"cfg.yaml: line 7: pools[0].tls.pin_sha256:", "64 hex digits"}},
		{"allow_plain_http not bool", poolHead + "    tls:\n      allow_plain_http: sure\n", []string{`cfg.yaml: line 7: pools[0].tls.allow_plain_http: expected true or false, got "sure"`}},
		{"ca_file not PEM", poolHead + "    tls:\n      ca_file: pw\n", []string{"cfg.yaml: line 7: pools[0].tls.ca_file: DIR/pw holds no PEM certificate"}},
		{"ca_file absent", poolHead + "    tls:\n      ca_file: /nonexistent/ca.pem\n", []string{"cfg.yaml: line 7: pools[0].tls.ca_file: cannot read /nonexistent/ca.pem: no such file"}},

		// Server files.
		{"cert absent", "listen: 0.0.0.0:1\ntls:\n  cert_file: nope.crt\n  key_file: tls.key\n", []string{"cfg.yaml: line 3: tls.cert_file: cannot read DIR/nope.crt: no such file"}},
		{"key world-readable", "listen: 0.0.0.0:1\ntls:\n  cert_file: tls.crt\n  key_file: key-open\n", []string{"cfg.yaml: line 4: tls.key_file: DIR/key-open is readable by other users (mode 0644)"}},
		{"key is not the cert's", "tls:\n  cert_file: tls.crt\n  key_file: pw\n", []string{"cfg.yaml: line 2: tls.cert_file: DIR/tls.crt and tls.key_file DIR/pw are not a usable certificate and private key"}},
		{"client ca not PEM", "tls:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_ca_file: token\n", []string{"cfg.yaml: line 4: tls.client_ca_file: DIR/token holds no PEM certificate"}},
		{"token world-readable", "auth:\n  token_file: token-open\n", []string{"cfg.yaml: line 2: auth.token_file: DIR/token-open is readable by other users (mode 0644): a secret file may be read only by its owner and group"}},
		{"token empty", "auth:\n  token_file: blank\n", []string{"cfg.yaml: line 2: auth.token_file: DIR/blank is blank (nothing but whitespace): it must hold the API token"}},
		{"token absent", "auth:\n  token_file: /nonexistent/token\n", []string{"cfg.yaml: line 2: auth.token_file: cannot read /nonexistent/token: no such file"}},

		// Expansion bombs and cycles end in errors, quickly.
		{"alias bomb", aliasBomb(), []string{"too complex"}},
		{"merge cycle", "pools:\n  - &a\n    <<: *a\n", []string{"cfg.yaml: line 3: merge keys (<<) nested too deeply in pools[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fixtureDir(t)
			writeFile(t, dir, "empty", nil, 0o600)
			writeFile(t, dir, "newline", []byte("\r\n"), 0o600)
			writeFile(t, dir, "blank", []byte(" \n\t\n"), 0o600)
			writeFile(t, dir, "pw-open", []byte(testPassword), 0o644)
			writeFile(t, dir, "token-open", []byte(testToken), 0o644)
			_, key := testCert(t)
			writeFile(t, dir, "key-open", key, 0o644)

			cfg, err := Parse([]byte(tt.yaml), "cfg.yaml", dir)
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with its error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "DIR", dir)
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "cfg.yaml" {
				t.Errorf("error is not a *config.Error for cfg.yaml: %#v", err)
			}
			assertNoSecret(t, msg, key)
		})
	}
}

// aliasBomb is a "billion laughs" made of merge keys.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("pools:\n  - &x0 {name: a}\n")
	for i := 1; i <= 7; i++ {
		fmt.Fprintf(&b, "  - &x%d {<<: [*x%d%s]}\n", i, i-1, strings.Repeat(fmt.Sprintf(", *x%d", i-1), 99))
	}
	return b.String()
}

func assertNoSecret(t *testing.T, s string, key []byte) {
	t.Helper()
	for _, secret := range []string{testPassword, testToken} {
		if strings.Contains(s, secret) {
			t.Errorf("secret %q leaked into %q", secret, s)
		}
	}
	if key != nil {
		for _, line := range strings.Split(string(key), "\n") {
			if len(line) > 20 && !strings.HasPrefix(line, "-----") && strings.Contains(s, line) {
				t.Errorf("private key leaked into %q", s)
			}
		}
	}
}

func TestErrorsAreAllReported(t *testing.T) {
	doc := "listen: 0.0.0.0:1\nlog:\n  level: loud\npools:\n  - name: a\n    members: [http://h]\n    username: root\n    password_file: pw\n    policy: x\n"
	_, err := Parse([]byte(doc), "cfg.yaml", fixtureDir(t))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"line 1: listen:", "line 3: log.level:", "line 6: pools[0].members[0]:", "line 9: pools[0].policy:"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

func TestTooManyErrors(t *testing.T) {
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	_, err := Parse([]byte(b.String()), "cfg.yaml", "")
	if err == nil || !strings.Contains(err.Error(), "(and 30 more problems)") {
		t.Fatalf("err = %v", err)
	}
}

func TestMergeKeysAndAnchors(t *testing.T) {
	doc := `
common: &common
  username: root
  password_file: pw
  storage_timeout: 90s
pools:
  - <<: *common
    name: a
    members: [https://10.0.0.1]
  - <<: *common
    name: b
    members: [https://10.0.0.2]
    storage_timeout: 3m
`
	// "common" is not a key of the schema: anchors must live inside it.
	if _, err := Parse([]byte(doc), "cfg.yaml", fixtureDir(t)); err == nil || !strings.Contains(err.Error(), `line 2: unknown key "common"`) {
		t.Fatalf("err = %v", err)
	}
	doc = `
pools:
  - &a
    name: a
    members: &m [https://10.0.0.1]
    username: root
    password_file: pw
    storage_timeout: 90s
  - <<: *a
    name: b
    storage_timeout: 3m
  - <<: [{name: c, probe_interval: 7s}, *a]
    members: *m
`
	cfg, err := Parse([]byte(doc), "cfg.yaml", fixtureDir(t))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, 0, len(cfg.Pools))
	for _, p := range cfg.Pools {
		got = append(got, fmt.Sprintf("%s %v %s %s %s", p.Name, p.Members, p.Username, p.StorageTimeout, p.ProbeInterval))
	}
	want := []string{
		"a [https://10.0.0.1] root 1m30s 30s",
		"b [https://10.0.0.1] root 3m0s 30s",
		"c [https://10.0.0.1] root 1m30s 7s",
	}
	if !slices.Equal(got, want) {
		t.Errorf("pools = %q, want %q", got, want)
	}
}

// The rules every secret file follows (modes, blank content) are tested
// for each field in secrets_test.go.

func TestRelativePaths(t *testing.T) {
	root := t.TempDir()
	confDir := filepath.Join(root, "etc", "xenha")
	fillFixture(t, confDir)
	writeFile(t, confDir, "secrets/b.pw", []byte(testPassword), 0o600)
	doc := `listen: 127.0.0.1:1
tls:
  cert_file: tls.crt
  key_file: ./tls.key
auth:
  token_file: token
pools:
  - name: a
    members: [https://h]
    username: root
    password_file: secrets/b.pw
    tls:
      ca_file: ../xenha/ca.pem
  - name: b
    members: [https://h]
    username: root
    password_file: ` + filepath.Join(confDir, "pw") + `
`
	path := writeFile(t, confDir, "config.yaml", []byte(doc), 0o644)

	// Load resolves against the file's directory, whatever the working
	// directory.
	t.Chdir(root)
	for _, p := range []string{path, filepath.Join("etc", "xenha", "config.yaml")} {
		cfg, err := Load(p)
		if err != nil {
			t.Fatalf("Load(%s): %v", p, err)
		}
		got := []string{cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.Auth.TokenFile, cfg.Pools[0].PasswordFile, cfg.Pools[0].TLS.CAFile, cfg.Pools[1].PasswordFile}
		want := []string{
			filepath.Join(confDir, "tls.crt"), filepath.Join(confDir, "tls.key"), filepath.Join(confDir, "token"),
			filepath.Join(confDir, "secrets", "b.pw"), filepath.Join(confDir, "ca.pem"), filepath.Join(confDir, "pw"),
		}
		if !slices.Equal(got, want) {
			t.Errorf("Load(%s) paths:\n got %q\nwant %q", p, got, want)
		}
		if cfg.Pools[0].Password() != testPassword || cfg.Auth.Token() != testToken {
			t.Errorf("secrets not loaded")
		}
	}

	// Parse resolves against baseDir.
	if _, err := Parse([]byte(doc), "cfg.yaml", root); err == nil || !strings.Contains(err.Error(), filepath.Join(root, "tls.crt")) {
		t.Errorf("Parse with another baseDir: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "missing.yaml"))
	if err == nil || err.Error() != filepath.Join(dir, "missing.yaml")+": cannot read the configuration: no such file" {
		t.Errorf("Load(missing) = %v", err)
	}
	path := writeFile(t, dir, "config.yaml", []byte("listen: 127.0.0.1:1\npools:\n  - name: a\n    membres: []\n"), 0o644)
	_, err = Load(path)
	if want := path + `: line 4: unknown key "membres" in pools[0] (did you mean "members"?)`; err == nil || err.Error() != want {
		t.Errorf("Load = %v\nwant %s", err, want)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	dir := fixtureDir(t)
	cfg, err := Parse([]byte(fullYAML), "cfg.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	_, key := testCert(t)
	type wrapper struct {
		cfg  Config
		pool Pool
		auth Auth
	}
	values := []any{
		cfg, *cfg, cfg.Pools, cfg.Pools[0], &cfg.Pools[0], cfg.Auth, &cfg.Auth,
		wrapper{*cfg, cfg.Pools[0], cfg.Auth}, &wrapper{*cfg, cfg.Pools[0], cfg.Auth},
		map[string]Pool{"a": cfg.Pools[0]}, []*Pool{&cfg.Pools[0]},
		cfg.Pools[0].password, cfg.Auth.token,
	}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
			assertNoSecret(t, fmt.Sprintf(verb, v), key)
		}
		assertNoSecret(t, fmt.Sprint(v), key)
		assertNoSecret(t, fmt.Sprintln(v), key)
		b, err := json.Marshal(v)
		if err == nil {
			assertNoSecret(t, string(b), key)
		}
		if y, err := yaml.Marshal(v); err == nil {
			assertNoSecret(t, string(y), key)
		}
	}
	assertNoSecret(t, cfg.Pools[0].String(), key)
	assertNoSecret(t, cfg.Pools[0].GoString(), key)
	assertNoSecret(t, cfg.Auth.String(), key)
	assertNoSecret(t, cfg.Auth.GoString(), key)

	// The printed forms still say what is there.
	for _, tt := range []struct {
		got, want string
	}{
		{fmt.Sprintf("%+v", cfg.Pools[0]), "Password:[redacted]"},
		{fmt.Sprintf("%+v", cfg.Pools[0]), "Name:cluster-a"},
		{fmt.Sprintf("%#v", cfg.Pools[0]), `config.Pool{Name:"cluster-a"`},
		{fmt.Sprintf("%#v", cfg.Auth), `config.Auth{TokenFile:"` + filepath.Join(dir, "token") + `", Token:"[redacted]"}`},
		{fmt.Sprintf("%v", cfg.Auth), "{" + filepath.Join(dir, "token") + " [redacted]}"},
		{fmt.Sprintf("%+v", Auth{}), "{TokenFile: Token:}"},
		{fmt.Sprintf("%#v", *cfg), `Pools:[]config.Pool{config.Pool{Name:"cluster-a"`},
	} {
		if !strings.Contains(tt.got, tt.want) {
			t.Errorf("%q does not contain %q", tt.got, tt.want)
		}
	}
}

func TestSecretsNotInErrors(t *testing.T) {
	_, key := testCert(t)
	for _, doc := range []string{
		// A password loaded while other things are wrong.
		poolHead + "    policy: nope\n    members: [\"https://root:" + testPassword + "@10.0.0.1\"]\n",
		// Credentials in member URLs, in every shape.
		"pools:\n  - name: a\n    members: [\"https://root:" + testPassword + "@10.0.0.1\"]\n",
		"pools:\n  - name: a\n    members: [\"http://root:" + testPassword + "@10.0.0.1\"]\n",
		"pools:\n  - name: a\n    members: [\"ftp://root:" + testPassword + "@10.0.0.1\"]\n",
		"pools:\n  - name: a\n    members: [\"root:" + testPassword + "@10.0.0.1\"]\n",
		"pools:\n  - name: a\n    members: [\"https://root:" + testPassword + "/x@10.0.0.1:99999\"]\n",
		"pools:\n  - name: a\n    members: [\"https://root:" + testPassword + "@[::1\"]\n",
		"pools:\n  - name: a\n    members: [\"https://root:" + testPassword + "@h\", \"https://root:" + testPassword + "@h\"]\n",
		// Secret files that are refused.
		"auth:\n  token_file: token-open\n",
		"pools:\n  - name: a\n    members: [https://h]\n    username: root\n    password_file: pw-open\n",
		"tls:\n  cert_file: tls.crt\n  key_file: key-open\n",
		"tls:\n  cert_file: pw\n  key_file: tls.key\n",
		"tls:\n  cert_file: tls.key\n  key_file: tls.key\n",
		"pools:\n  - name: a\n    members: [https://h]\n    username: root\n    password_file: pw\n    tls: {ca_file: pw}\n",
		"tls:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_ca_file: token\n",
	} {
		dir := fixtureDir(t)
		writeFile(t, dir, "pw-open", []byte(testPassword), 0o644)
		writeFile(t, dir, "token-open", []byte(testToken), 0o644)
		writeFile(t, dir, "key-open", key, 0o644)
		_, err := Parse([]byte(doc), "cfg.yaml", dir)
		if err == nil {
			t.Errorf("accepted:\n%s", doc)
			continue
		}
		assertNoSecret(t, err.Error(), key)
	}
}

func TestPoolValidate(t *testing.T) {
	p := NewPool("cluster-a", []string{"https://10.0.0.1", "https://10.0.0.2"}, "root", testPassword)
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if p.Policy != PolicyAuto || p.StorageTimeout != DefaultStorageTimeout || p.ProbeInterval != DefaultProbeInterval {
		t.Errorf("NewPool defaults: %+v", p)
	}
	if p.Password() != testPassword {
		t.Errorf("Password() after NewPool")
	}
	assertNoSecret(t, fmt.Sprintf("%v %+v %#v %s", p, p, p, *p), nil)

	tests := []struct {
		name   string
		change func(p *Pool)
		want   string
	}{
		{"no password", func(p *Pool) { p.SetPassword("") }, "password: is required"},
		{"password file not read", func(p *Pool) { p.SetPassword(""); p.PasswordFile = "/x" }, "password: is required (password_file /x was not read"},
		{"no name", func(p *Pool) { p.Name = "" }, "name: is required"},
		{"bad name", func(p *Pool) { p.Name = "a b" }, `name: "a b" is not a valid pool name`},
		{"no members", func(p *Pool) { p.Members = nil }, "members: at least one member is required"},
		{"http member", func(p *Pool) { p.Members = []string{"https://a", "http://b"} }, `members[1]: plain http member "http://b" is refused`},
		{"duplicate member", func(p *Pool) { p.Members = []string{"https://a", "https://A:443"} }, `members[1]: "https://A:443" is the same host as members[0]`},
		{"jsonrpc path is the same host", func(p *Pool) { p.Members = []string{"https://a/jsonrpc", "https://a"} }, `members[1]: "https://a" is the same host as members[0]`},
		{"no username", func(p *Pool) { p.Username = " " }, "username: is required"},
		{"empty policy", func(p *Pool) { p.Policy = "" }, `policy: "" is not a policy`},
		{"zero storage timeout", func(p *Pool) { p.StorageTimeout = 0 }, "storage_timeout: must be greater than 0 (got 0s)"},
		{"zero probe interval", func(p *Pool) { p.ProbeInterval = 0 }, "probe_interval: must be at least 1s (got 0s)"},
		{"master probed too often", func(p *Pool) { p.MasterProbeInterval = 100 * time.Millisecond }, "master_probe_interval: must be between 500ms and 1h (got 100ms)"},
		{"unknown unreachable policy", func(p *Pool) { p.UnreachableMaster = "shoot" }, `unreachable_master: must be "refuse" or "fence" (got "shoot")`},
		{"bad pin", func(p *Pool) { p.TLS.PinSHA256 = "xx" }, `tls.pin_sha256: "xx" is not a SHA-256 fingerprint`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPool("cluster-a", []string{"https://10.0.0.1"}, "root", testPassword)
			tt.change(p)
			err := p.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want it to start with %q", err, tt.want)
			}
			assertNoSecret(t, err.Error(), nil)
		})
	}

	ok := NewPool("p", []string{"http://127.0.0.1:8080"}, "root", "pw")
	ok.TLS.AllowPlainHTTP = true
	ok.TLS.PinSHA256 = strings.Repeat("AB", 32)
	for _, pol := range Policies {
		ok.Policy = pol
		if err := ok.Validate(); err != nil {
			t.Errorf("policy %s: %v", pol, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := Default()
	c.Pools = []Pool{*NewPool("a", []string{"https://h1"}, "root", "pw"), *NewPool("a", []string{"https://h2"}, "root", "")}
	c.Listen = "[::]:50051"
	err := c.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{
		"listen: refusing plaintext gRPC on non-loopback address [::]:50051: configure tls",
		"pools[1].password: is required",
		`pools[1].name: duplicate pool name "a": already used by pools[0]`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "line ") {
		t.Errorf("Validate reports lines: %v", err)
	}
	c.TLS = ServerTLS{CertFile: "/c", KeyFile: "/k"}
	c.Pools = c.Pools[:1]
	if err := c.Validate(); err != nil {
		t.Errorf("Validate with TLS: %v", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for _, tt := range []struct {
		listen string
		want   bool
	}{
		{"127.0.0.1:50051", true},
		{"127.1.2.3:1", true},
		{"[::1]:50051", true},
		{"[::ffff:127.0.0.1]:1", true},
		{"localhost:50051", true},
		{"LOCALHOST:1", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"[::1]", true},
		{":50051", false},
		{"0.0.0.0:50051", false},
		{"[::]:50051", false},
		{"10.0.0.1:50051", false},
		{"128.0.0.1:1", false},
		{"localhost.example.org:1", false},
		{"mgmt:1", false},
		{"", false},
	} {
		if got := IsLoopback(tt.listen); got != tt.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tt.listen, got, tt.want)
		}
	}
}

func TestServerTLS(t *testing.T) {
	for _, tt := range []struct {
		tls              ServerTLS
		enabled, mutualT bool
	}{
		{ServerTLS{}, false, false},
		{ServerTLS{CertFile: "c", KeyFile: "k"}, true, false},
		{ServerTLS{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"}, true, true},
		{ServerTLS{ClientCAFile: "ca"}, false, false},
	} {
		if tt.tls.Enabled() != tt.enabled || tt.tls.MutualTLS() != tt.mutualT {
			t.Errorf("%+v: Enabled=%v MutualTLS=%v", tt.tls, tt.tls.Enabled(), tt.tls.MutualTLS())
		}
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tt := range []struct {
		err  Error
		want string
	}{
		{Error{File: "c.yaml", Line: 3, Field: "pools[0].name", Msg: "is required"}, "c.yaml: line 3: pools[0].name: is required"},
		{Error{File: "c.yaml", Line: 3, Msg: `unknown key "x"`}, `c.yaml: line 3: unknown key "x"`},
		{Error{File: "c.yaml", Field: "listen", Msg: "bad"}, "c.yaml: listen: bad"},
		{Error{Field: "name", Msg: "is required"}, "name: is required"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestFencingSettings(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "pw", []byte(testPassword+"\n"), 0o600)
	writeFile(t, dir, "bmc", []byte("bmc-Secret-1\n"), 0o600)
	writeFile(t, dir, "open", []byte("bmc-Secret-2\n"), 0o644)
	base := "pools:\n- name: a\n  members: [https://10.0.0.1]\n  username: root\n  password_file: pw\n  fencing:\n"
	cfg, err := Parse([]byte(base+"    levels: [heartbeat-wait, bmc]\n    delay: 5s\n    storm_percent: 40\n    bmcs:\n    - {host: 10.0.0.1, driver: redfish, address: 'https://10.0.1.1', username: admin, password_file: bmc}\n"), "c.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Pools[0].Fencing
	if !slices.Equal(f.Levels, []string{"heartbeat-wait", "bmc"}) || f.Delay != 5*time.Second || f.StormPercent != 40 ||
		len(f.BMCs) != 1 || f.BMCs[0].Password() != "bmc-Secret-1" || f.BMCs[0].PasswordFile != filepath.Join(dir, "bmc") {
		t.Fatalf("fencing %+v", f)
	}
	if s := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg); strings.Contains(s, "bmc-Secret-1") {
		t.Fatal("the BMC password prints")
	}
	for body, want := range map[string]string{
		"    levels: [bmc, teleport]\n": "pools[0].fencing.levels[1]",
		"    levels: []\n":              "pools[0].fencing.levels",
		"    storm_percent: 0\n":        "pools[0].fencing.storm_percent",
		"    delay: 1h\n":               "pools[0].fencing.delay",
		"    bmcs:\n    - {host: h, driver: ilo, address: x, username: u, password_file: bmc}\n":   "pools[0].fencing.bmcs[0].driver",
		"    bmcs:\n    - {host: h, driver: ipmi, address: x, username: u, password_file: open}\n": "pools[0].fencing.bmcs[0].password_file",
		"    bmcs:\n    - {driver: ipmi, address: x, username: u, password_file: bmc}\n":           "pools[0].fencing.bmcs[0].host",
		"    bmc: {}\n": `unknown key "bmc"`,
		// BMC TLS, checked as a pool's tls; errors name config keys only.
		"    bmcs:\n    - {host: h, driver: redfish, address: 'https://b', username: u, password_file: bmc, pin_sha256: abcd}\n":             `pools[0].fencing.bmcs[0].pin_sha256: "abcd" is not a SHA-256 fingerprint`,
		"    bmcs:\n    - {host: h, driver: redfish, address: 'https://b', username: u, password_file: bmc, ca_file: bmc}\n":                 "pools[0].fencing.bmcs[0].ca_file: " + filepath.Join(dir, "bmc") + " holds no PEM certificate",
		"    bmcs:\n    - {host: h, driver: redfish, address: 'https://b', username: u, password_file: bmc, ca_file: /nonexistent/ca.pem}\n": "pools[0].fencing.bmcs[0].ca_file: cannot read /nonexistent/ca.pem",
		"    bmcs:\n    - {host: h, driver: ipmi, address: 'b:623', username: u, password_file: bmc, ca_file: ca.pem}\n":                     "pools[0].fencing.bmcs[0].ca_file: applies to redfish BMCs only",
		"    bmcs:\n    - {host: h, driver: redfish, address: 'http://b', username: u, password_file: bmc}\n":                                "pools[0].fencing.bmcs[0].address: is plain http: the BMC password would cross the network in clear. Use https://; for a BMC with a self-signed certificate set pools[0].fencing.bmcs[0].ca_file or pools[0].fencing.bmcs[0].pin_sha256",
		"    bmcs:\n    - {host: h, driver: redfish, address: 'ftp://b', username: u, password_file: bmc}\n":                                 "pools[0].fencing.bmcs[0].address: is not an https URL",
	} {
		_, err := Parse([]byte(base+body), "c.yaml", dir)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: want an error naming %s, got %v", body, want, err)
		}
		if err != nil && strings.Contains(err.Error(), "bmc-Secret") {
			t.Errorf("a BMC password in an error: %v", err)
		}
		if err != nil && (strings.Contains(err.Error(), "AllowPlainHTTP") || strings.Contains(err.Error(), "CAFile") || strings.Contains(err.Error(), "PinSHA256")) {
			t.Errorf("a Go field name in an error: %v", err)
		}
	}
	// A self-signed Redfish BMC: its CA file and pin are kept.
	writeFile(t, dir, "bmc-ca.pem", func() []byte { c, _ := testCert(t); return c }(), 0o644)
	pin := strings.Repeat("ab", 32)
	cfg, err = Parse([]byte(base+"    bmcs:\n    - {host: h, driver: redfish, address: 'https://b', username: u, password_file: bmc, ca_file: bmc-ca.pem, pin_sha256: '"+pin+"'}\n"), "c.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Pools[0].Fencing.BMCs[0]; b.CAFile != filepath.Join(dir, "bmc-ca.pem") || b.PinSHA256 != pin {
		t.Fatalf("BMC TLS %+v", b)
	}
}

func TestSharedStoreSettings(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "db", []byte("db-Secret-1\n"), 0o600)
	writeFile(t, dir, "open", []byte("db-Secret-2\n"), 0o644)
	base := "journal:\n  store: mysql\n  mysql:\n    dsn: 'xenha@tcp(10.0.0.5:3306)/cloud_xenha'\n    password_file: db\n"
	cfg, err := Parse([]byte(base+"lease:\n  id: mgmt-1\n  advertise: 10.0.0.7:50051\n  duration: 20s\n  renew: 3s\n  margin: 6s\n"), "c.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	m, l := cfg.Journal.MySQL, cfg.Lease
	if cfg.Journal.Store != StoreMySQL || m.DSN != "xenha@tcp(10.0.0.5:3306)/cloud_xenha" || m.Password() != "db-Secret-1" ||
		m.PasswordFile != filepath.Join(dir, "db") || m.Timeout != 5*time.Second {
		t.Fatalf("mysql %+v", m)
	}
	if l.ID != "mgmt-1" || l.Advertise != "10.0.0.7:50051" || l.Duration != 20*time.Second || l.Renew != 3*time.Second || l.Margin != 6*time.Second {
		t.Fatalf("lease %+v", l)
	}
	if s := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg); strings.Contains(s, "db-Secret-1") {
		t.Fatal("the database password prints")
	}
	// The defaults are the documented numbers.
	if cfg, err := Parse([]byte(base), "c.yaml", dir); err != nil || cfg.Lease.Duration != 15*time.Second ||
		cfg.Lease.Renew != 2*time.Second || cfg.Lease.Margin != 5*time.Second {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	for doc, want := range map[string]string{
		"journal:\n  store: postgres\n": "journal.store",
		"journal:\n  store: mysql\n":    "journal.mysql.dsn: is required",
		"journal:\n  store: mysql\n  mysql:\n    dsn: 'xenha:db-Secret-3@tcp(h:3306)/x'\n    password_file: db\n": "must not hold the password",
		"journal:\n  store: mysql\n  mysql:\n    dsn: 'xenha@tcp(h:3306)/'\n    password_file: db\n":              "names no database",
		"journal:\n  store: mysql\n  mysql:\n    dsn: 'db-Secret-4'\n    password_file: db\n":                     "journal.mysql.dsn: is not a MySQL DSN",
		"journal:\n  store: mysql\n  mysql:\n    dsn: 'x@tcp(h)/d'\n":                                             "journal.mysql.password_file: is required",
		"journal:\n  store: mysql\n  mysql:\n    dsn: 'x@tcp(h)/d'\n    password_file: open\n":                    "journal.mysql.password_file",
		"journal:\n  mysql:\n    dsn: 'x@tcp(h)/d'\n":                                                             "journal.store is bolt",
		"lease:\n  renew: 1s\n":                  "lease: needs journal.store: mysql",
		base + "lease:\n  margin: 500ms\n":       "lease.margin: must be at least 1s",
		base + "lease:\n  renew: 10s\n":          "lease.duration: minus lease.margin (10s) must exceed lease.renew (10s)",
		base + "lease:\n  duration: 6s\n":        "must exceed lease.renew",
		base + "lease:\n  advertise: nowhere\n":  "lease.advertise",
		base + "lease:\n  id: 'two words'\n":     "lease.id",
		base + "lease:\n  lease_duration: 10s\n": `unknown key "lease_duration" in lease`,
		base + "  password: db-Secret-5\n":       `unknown key "password"`,
	} {
		_, err := Parse([]byte(doc), "c.yaml", dir)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: want an error with %q, got %v", doc, want, err)
		}
		if err != nil && strings.Contains(err.Error(), "db-Secret") {
			t.Errorf("a database password in an error: %v", err)
		}
	}
}
