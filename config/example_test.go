package config

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// schemaKeys is every key of the schema, as a path.
var schemaKeys = []string{
	"listen",
	"log", "log.level", "log.json",
	"tls", "tls.cert_file", "tls.key_file", "tls.client_ca_file",
	"auth", "auth.token_file",
	"events", "events.retention", "events.subscriber_buffer",
	"pools", "pools[].name", "pools[].members", "pools[].username", "pools[].password_file",
	"pools[].policy", "pools[].storage_timeout", "pools[].probe_interval",
	"pools[].tls", "pools[].tls.ca_file", "pools[].tls.pin_sha256", "pools[].tls.allow_plain_http",
	"journal", "journal.path", "metrics", "metrics.listen", "metrics.allow_remote", "pools[].preferred_masters", "pools[].autopilot", "pools[].autopilot_delay", "pools[].master_probe_interval", "pools[].unreachable_master",
	"pools[].fencing", "pools[].fencing.levels", "pools[].fencing.delay", "pools[].fencing.storm_percent",
	"pools[].fencing.heartbeat_timeout", "pools[].fencing.bmcs", "pools[].fencing.bmcs[].host",
	"pools[].fencing.bmcs[].driver", "pools[].fencing.bmcs[].address", "pools[].fencing.bmcs[].username",
	"pools[].fencing.bmcs[].password_file", "pools[].fencing.bmcs[].ca_file", "pools[].fencing.bmcs[].pin_sha256",
	"journal.store", "journal.mysql", "journal.mysql.dsn", "journal.mysql.password_file", "journal.mysql.timeout",
	"lease", "lease.id", "lease.advertise", "lease.duration", "lease.renew", "lease.margin",
}

// TestExampleYAML checks that example.yaml, with its /etc/xenha-bridge/
// paths moved to a temporary directory holding those files, is accepted,
// and that it shows every key of the schema.
func TestExampleYAML(t *testing.T) {
	example, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key := testCert(t)
	writeFile(t, dir, "tls.crt", cert, 0o644)
	writeFile(t, dir, "tls.key", key, 0o600)
	writeFile(t, dir, "ca.crt", cert, 0o644)
	writeFile(t, dir, "xs-ca.pem", cert, 0o644)
	writeFile(t, dir, "token", []byte(testToken+"\n"), 0o600)
	writeFile(t, dir, "cluster-a.password", []byte(testPassword+"\n"), 0o640)
	writeFile(t, dir, "cluster-b.password", []byte("other\n"), 0o600)
	writeFile(t, dir, "bmc-10.0.0.11.password", []byte("ipmi-secret\n"), 0o600)
	writeFile(t, dir, "bmc-10.0.0.12.password", []byte("redfish-secret\n"), 0o600)
	writeFile(t, dir, "bmc-10.0.0.12-ca.pem", cert, 0o644)
	doc := strings.ReplaceAll(string(example), "/etc/xenha-bridge/", dir+"/")
	path := writeFile(t, dir, "config.yaml", []byte(doc), 0o644)

	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
	if len(cfg.Pools) != 2 || cfg.Pools[0].Name != "cluster-a" || cfg.Pools[0].Password() != testPassword ||
		cfg.Auth.Token() != testToken || !cfg.TLS.MutualTLS() || cfg.Pools[1].Password() != "other" ||
		len(cfg.Pools[0].Fencing.BMCs) != 2 || cfg.Pools[0].Fencing.BMCs[0].Password() != "ipmi-secret" ||
		cfg.Journal.Path != filepath.Join(dir, "journal.db") && !strings.HasPrefix(cfg.Journal.Path, "/var/lib") ||
		cfg.Metrics != (Metrics{Listen: "127.0.0.1:9102"}) {
		t.Errorf("example.yaml loaded as %+v", cfg)
	}

	// Every key is documented in the examples.
	shared, err := os.ReadFile("example-shared.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "mysql.password", []byte("db-secret\n"), 0o600)
	sharedPath := writeFile(t, dir, "shared.yaml", []byte(strings.ReplaceAll(string(shared), "/etc/xenha-bridge/", dir+"/")), 0o644)
	scfg, err := Load(sharedPath)
	if err != nil {
		t.Fatalf("example-shared.yaml: %v", err)
	}
	if scfg.Journal.Store != StoreMySQL || scfg.Journal.MySQL.Password() != "db-secret" || scfg.Lease.ID != "mgmt-1" ||
		scfg.Lease.Duration != DefaultLeaseDuration || scfg.Lease.Renew != DefaultLeaseRenew || scfg.Lease.Margin != DefaultLeaseMargin {
		t.Errorf("example-shared.yaml loaded as %+v", scfg)
	}
	var found []string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := join(path, n.Content[i].Value)
				if !slices.Contains(found, p) {
					found = append(found, p)
				}
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			if path == "pools" || path == "pools[].fencing.bmcs" {
				for _, c := range n.Content {
					walk(c, path+"[]")
				}
			}
		}
	}
	for _, doc := range [][]byte{example, shared} {
		var root yaml.Node
		if err := yaml.Unmarshal(doc, &root); err != nil {
			t.Fatal(err)
		}
		walk(&root, "")
	}
	sort.Strings(found)
	want := slices.Clone(schemaKeys)
	sort.Strings(want)
	if !slices.Equal(found, want) {
		t.Errorf("example.yaml keys:\n got %q\nwant %q", found, want)
	}
}

// TestExampleYAMLMissingFiles: the example's files missing, every error
// names the field and the path.
func TestExampleYAMLMissingFiles(t *testing.T) {
	example, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	doc := strings.ReplaceAll(string(example), "/etc/xenha-bridge/", dir+"/")
	_, err = Parse([]byte(doc), "example.yaml", dir)
	if err == nil {
		t.Fatal("accepted with no files")
	}
	for _, w := range []string{
		"tls.cert_file: cannot read " + filepath.Join(dir, "tls.crt"),
		"auth.token_file: cannot read " + filepath.Join(dir, "token"),
		"pools[1].password_file: cannot read " + filepath.Join(dir, "cluster-b.password"),
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}
