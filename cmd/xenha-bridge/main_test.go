package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestCommands(t *testing.T) {
	if out, err := runCmd(t, "version"); err != nil || !strings.HasPrefix(out, "xenha-bridge ") {
		t.Fatalf("version: %q %v", out, err)
	}
	if _, err := runCmd(t, "frobnicate"); err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Fatalf("unknown command: %v", err)
	}
	if _, err := runCmd(t); err == nil {
		t.Fatal("no command accepted")
	}
}

func TestServeRefusesBadSettings(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("listen: 127.0.0.1:0\nlisen: x\n"), 0o600)
	cases := map[string]struct {
		args []string
		want string
	}{
		"plaintext on every interface": {[]string{"serve", "--listen", "0.0.0.0:50051"}, "plaintext"},
		"unknown key":                  {[]string{"serve", "--config", typo}, "line 2"},
		"missing file":                 {[]string{"serve", "--config", filepath.Join(dir, "none.yaml")}, "none.yaml"},
		"stray argument":               {[]string{"serve", "extra"}, "extra"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := runCmd(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error mentioning %q, got %v", tc.want, err)
			}
		})
	}
}

func TestServeStopsOnSignal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out bytes.Buffer
	journal := filepath.Join(t.TempDir(), "j.db")
	go func() {
		done <- run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--journal", journal}, &out, &out)
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestSimPorts: `sim --port P --control ADDR` puts every host's XAPI on P
// (each on its own address) and the control endpoint on ADDR, so a page
// can print commands that reach them.
func TestSimPorts(t *testing.T) {
	port, control := strconv.Itoa(freePort(t)), "127.0.0.1:"+strconv.Itoa(freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"sim", "--hosts", "2", "--port", port, "--control", control, "--json"}, pw, io.Discard)
		pw.Close()
	}()
	var info xapisim.Info
	if err := json.NewDecoder(pr).Decode(&info); err != nil {
		t.Fatalf("sim printed no JSON: %v (%v)", err, <-done)
	}
	go io.Copy(io.Discard, pr)
	if info.ControlURL != "http://"+control {
		t.Errorf("control endpoint %s, want http://%s", info.ControlURL, control)
	}
	for _, h := range info.Hosts {
		if !strings.HasSuffix(h.URL, ":"+port) {
			t.Errorf("host %s at %s, want port %s", h.Name, h.URL, port)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("sim: %v", err)
	}
}
