package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudstack-xenha/xenha-bridge/config"
)

// needTool finds a command a test cannot do without, or fails saying how
// to get it; skipVar set to 1 skips the test instead.
func needTool(t *testing.T, name, pkg, skipVar string) string {
	t.Helper()
	if os.Getenv(skipVar) == "1" {
		t.Skipf("%s=1", skipVar)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: apt-get install %s (or set %s=1 to skip this test)", name, pkg, skipVar)
	}
	return path
}

// unitRoot lays out a root directory for systemd-analyze --root: the
// system's units (for the targets the unit depends on), the unit, its
// sysusers.d file and an executable where ExecStart= points.
func unitRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr/local/bin", "usr/lib/systemd", "usr/lib/sysusers.d", "etc/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copying the system's units: %v\n%s", err, out)
	}
	copyFile(t, "xenha-bridge.service", filepath.Join(root, "etc/systemd/system/xenha-bridge.service"), 0o644)
	copyFile(t, "xenha-bridge.sysusers", filepath.Join(root, "usr/lib/sysusers.d/xenha-bridge.conf"), 0o644)
	// verify checks that ExecStart's program exists and is executable.
	if err := os.WriteFile(filepath.Join(root, "usr/local/bin/xenha-bridge"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit: it must pass
// without a word. The same check on a broken copy must fail, so a pass
// means something.
func TestUnitVerifies(t *testing.T) {
	analyze := needTool(t, "systemd-analyze", "systemd", "XENHA_SKIP_SYSTEMD")
	root := unitRoot(t)
	out, err := exec.Command(analyze, "verify", "--root="+root, "xenha-bridge.service").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The exposure score of the hardening, as systemd rates it.
	out, err = exec.Command(analyze, "security", "--offline=true", "--root="+root, "xenha-bridge.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for xenha-bridge.service: ([0-9.]+) (\w+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 2.0 {
		t.Errorf("exposure level %s %s: the hardening got weaker (it was 1.5 OK)", m[1], m[2])
	}

	// sysusers.d accepts the user's declaration.
	if sysusers, err := exec.LookPath("systemd-sysusers"); err == nil {
		out, err := exec.Command(sysusers, "--dry-run", "--root="+root).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Creating user 'xenha-bridge'") {
			t.Fatalf("systemd-sysusers: %v\n%s", err, out)
		}
	}

	// A unit whose program is missing fails verify.
	os.Remove(filepath.Join(root, "usr/local/bin/xenha-bridge"))
	if out, err := exec.Command(analyze, "verify", "--root="+root, "xenha-bridge.service").CombinedOutput(); err == nil {
		t.Fatalf("verify passed with ExecStart's program missing:\n%s", out)
	}
}

// unitSettings reads the [Service] section: key → values, in order.
func unitSettings(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("xenha-bridge.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			settings[k] = append(settings[k], v)
		}
	}
	return settings
}

// TestUnitPromises: what docs/install.md promises of the unit is in it.
func TestUnitPromises(t *testing.T) {
	s := unitSettings(t)
	for key, want := range map[string]string{
		"User":                    "xenha-bridge",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"CapabilityBoundingSet":   "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"StateDirectory":          "xenha-bridge",
		"ReadWritePaths":          "/var/lib/xenha-bridge",
		"Restart":                 "on-failure",
		"LoadCredential":          "config.yaml:/etc/xenha-bridge/config.yaml",
		"ExecStart":               "/usr/local/bin/xenha-bridge serve --config %d/config.yaml",
	} {
		if !slices.Contains(s[key], want) {
			t.Errorf("%s=%s is not set (have %q)", key, want, s[key])
		}
	}
	if slices.Contains(s["Restart"], "always") || len(s["ReadWritePaths"]) != 1 {
		t.Errorf("Restart %q, ReadWritePaths %q", s["Restart"], s["ReadWritePaths"])
	}
}

// TestSystemdConfig: the configuration to start from loads as the unit
// hands it over, from a credentials directory holding the files it names
// by relative names.
func TestSystemdConfig(t *testing.T) {
	creds := t.TempDir()
	copyFile(t, "config.yaml", filepath.Join(creds, "config.yaml"), 0o400)
	if err := os.WriteFile(filepath.Join(creds, "cluster-a.password"), []byte("secret\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Skipf("no CA bundle to stand for the pool's CA: %v", err)
	}
	if err := os.WriteFile(filepath.Join(creds, "xs-ca.pem"), ca, 0o400); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(creds, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Pools[0]
	if p.PasswordFile != filepath.Join(creds, "cluster-a.password") || p.Password() != "secret" ||
		p.TLS.CAFile != filepath.Join(creds, "xs-ca.pem") || cfg.Journal.Path != config.DefaultJournalPath ||
		cfg.Metrics.Listen != "127.0.0.1:9102" || !cfg.Log.JSON {
		t.Fatalf("loaded %+v", cfg)
	}
}
