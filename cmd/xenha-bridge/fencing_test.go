package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/config"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/server"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// A Redfish BMC with a self-signed certificate is reached with the
// configured ca_file or pin_sha256, as a pool's members are; without
// either, or with another pin, it is not.
func TestConfiguredBMCTrust(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "bmc-pw" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch strings.TrimSuffix(r.URL.Path, "/") {
		case "/redfish/v1/Systems":
			json.NewEncoder(w).Encode(map[string]any{"Members": []map[string]string{{"@odata.id": "/redfish/v1/Systems/1"}}, "Members@odata.count": 1})
		case "/redfish/v1/Systems/1":
			json.NewEncoder(w).Encode(map[string]any{"@odata.id": "/redfish/v1/Systems/1", "Id": "1", "PowerState": "On"})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(srv.Certificate().Raw)
	pin := hex.EncodeToString(sum[:])
	dir := t.TempDir()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("pw", []byte("pool-pw\n"))
	write("bmc", []byte("bmc-pw\n"))
	write("bmc-ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))

	for name, tc := range map[string]struct {
		trust string
		ok    bool
	}{
		"pin":             {"pin_sha256: '" + pin + "'", true},
		"ca_file":         {"ca_file: bmc-ca.pem", true},
		"ca_file and pin": {"ca_file: bmc-ca.pem, pin_sha256: '" + pin + "'", true},
		"system roots":    {"", false},
		"another pin":     {"pin_sha256: '" + strings.Repeat("ab", 32) + "'", false},
	} {
		t.Run(name, func(t *testing.T) {
			trust := ""
			if tc.trust != "" {
				trust = ", " + tc.trust
			}
			doc := "pools:\n- name: a\n  members: [https://10.0.0.1]\n  username: root\n  password_file: pw\n  fencing:\n    bmcs:\n" +
				"    - {host: xs-1, driver: redfish, address: '" + srv.URL + "', username: admin, password_file: bmc" + trust + "}\n"
			cfg, err := config.Parse([]byte(doc), "c.yaml", dir)
			if err != nil {
				t.Fatal(err)
			}
			var book bmcBook
			if err := book.addConfigured(cfg.Pools[0]); err != nil {
				t.Fatal(err)
			}
			d := book.lookup("a", xenha.HostView{Name: "xs-1"})
			if d == nil {
				t.Fatal("no device for xs-1")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := d.PowerState(ctx)
			if tc.ok && (err != nil || st != fencing.PowerOn) {
				t.Fatalf("power state %v, %v", st, err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("a BMC reached without the trust configured: %v", st)
			}
		})
	}
}

// BMCs a pool is attached with (CloudStack's out-of-band settings) are
// found before the configuration's, replaced by the next attach, and
// plain http is refused unless the pool allows it.
func TestAttachedBMCsWinAndAreReplaced(t *testing.T) {
	b := &bmcBook{}
	configured, err := b.Build("ipmi", "10.0.1.11:623", "admin", "pw", false)
	if err != nil {
		t.Fatal(err)
	}
	b.add("p", "host-a", configured)
	if _, err := b.Build("redfish", "http://127.0.0.1:1", "admin", "pw", false); err == nil {
		t.Fatal("plain http accepted without allow_plain_http")
	}
	attached, err := b.Build("redfish", "http://127.0.0.1:1", "admin", "pw", true)
	if err != nil {
		t.Fatal(err)
	}
	h := xenha.HostView{UUID: "u-a", Name: "host-a", Address: "10.0.0.11"}
	if b.lookup("p", h) != configured {
		t.Fatal("the configured BMC is not found")
	}
	b.Set("p", []server.HostDevice{{Host: "u-a", Device: attached}})
	if b.lookup("p", h) != attached {
		t.Fatal("the attached BMC does not win")
	}
	b.Set("p", nil)
	if b.lookup("p", h) != configured {
		t.Fatal("the attached BMC was not removed")
	}
	if b.lookup("other", h) != nil {
		t.Fatal("a BMC found for another pool")
	}
}

// The real drivers' refusals of what AttachPool may carry (CloudStack's
// out-of-band settings as an operator typed them) never quote the password,
// even one pasted into the address.
func TestAttachedBMCRefusalsHoldNoPassword(t *testing.T) {
	const pw = "pw-Secret-1"
	b := &bmcBook{}
	for _, c := range [][2]string{
		{"redfish", "http://admin:" + pw + "@10.0.0.1"},
		{"redfish", "https://admin:" + pw + "@10.0.0.1"},
		{"redfish", "http://10.0.0.1"}, // plain http without allow_plain_http
		{"ipmi", "admin:" + pw + "@10.0.0.1:623"},
		{"ipmi", "10.0.0.1:99999"},
		{"telnet", "10.0.0.1"},
	} {
		_, err := b.Build(c[0], c[1], "admin", pw, false)
		if err == nil {
			t.Fatalf("%v accepted", c)
		}
		if strings.Contains(err.Error(), pw) {
			t.Fatalf("%v: the error quotes the password: %v", c, err)
		}
	}
}
