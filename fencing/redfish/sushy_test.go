package redfish

// Tests against a real Redfish peer: sushy-tools' sushy-emulator (PyPI
// sushy-tools, pinned in tests/redfish/requirements.txt) with its fake
// driver (no libvirt), on loopback, behind HTTP Basic authentication
// (SUSHY_EMULATOR_AUTH_FILE, an htpasswd file that sushy reads with
// bcrypt entries only).
//
// The emulator lives in the project's virtualenv: $XENHA_VENV, default
// <repo>/.venv. Without it these tests fail, saying how to install it,
// unless XENHA_SKIP_REDFISH=1, which skips them.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/fencing"
)

// sushySystem is one entry of SUSHY_EMULATOR_FAKE_SYSTEMS.
type sushySystem struct {
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
	Power string `json:"power_state"`
}

var (
	sushyOn  = sushySystem{UUID: "6d1f3b5a-0b8e-4c55-9d3e-2f8a4b6c7d01", Name: "xen-on", Power: "On"}
	sushyOff = sushySystem{UUID: "6d1f3b5a-0b8e-4c55-9d3e-2f8a4b6c7d02", Name: "xen-off", Power: "Off"}
)

// sushyEmu is a running sushy-emulator.
type sushyEmu struct {
	url, user, pass string
	stop            func()
}

// startSushy runs sushy-emulator with two fake systems (sushyOn, sushyOff)
// on a free loopback port and returns its base URL and credentials. It is
// stopped when the test ends.
func startSushy(t *testing.T) (url, user, pass string) {
	e := runSushy(t, sushyOn, sushyOff)
	return e.url, e.user, e.pass
}

func sushyBinary(t *testing.T) (bin, python string) {
	t.Helper()
	if os.Getenv("XENHA_SKIP_REDFISH") == "1" {
		t.Skip("XENHA_SKIP_REDFISH=1: sushy-emulator tests skipped")
	}
	venv := os.Getenv("XENHA_VENV")
	if venv == "" {
		venv = filepath.Join("..", "..", ".venv") // the repository's, from fencing/redfish
	}
	venv, err := filepath.Abs(venv)
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(venv, "bin", "sushy-emulator")
	python = filepath.Join(venv, "bin", "python")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("sushy-emulator not found at %s (%v).\n"+
			"Install it with `make` (it installs tests/redfish/requirements.txt into .venv), or by hand:\n"+
			"  python3 -m venv %s && %s/bin/pip install -r tests/redfish/requirements.txt\n"+
			"Set XENHA_VENV to use another virtualenv, or XENHA_SKIP_REDFISH=1 to skip these tests.",
			bin, err, venv, venv)
	}
	return bin, python
}

// sushyFiles are the hash and files shared by every emulator of a test run.
var sushyFiles struct {
	once sync.Once
	pass string
	hash string
	err  error
}

// sushyCredentials makes a random password and its bcrypt hash (cost 4:
// sushy checks it on every request) with the bcrypt module sushy-tools
// itself depends on.
func sushyCredentials(t *testing.T, python string) (pass, hash string) {
	t.Helper()
	sushyFiles.once.Do(func() {
		raw := make([]byte, 12)
		rand.Read(raw)
		sushyFiles.pass = "fence-" + hex.EncodeToString(raw)
		cmd := exec.Command(python, "-c",
			"import bcrypt, sys; print(bcrypt.hashpw(sys.stdin.buffer.read(), bcrypt.gensalt(rounds=4)).decode())")
		cmd.Stdin = strings.NewReader(sushyFiles.pass)
		out, err := cmd.Output()
		if err != nil {
			sushyFiles.err = fmt.Errorf("bcrypt hash with %s: %v", python, err)
			return
		}
		sushyFiles.hash = strings.TrimSpace(string(out))
	})
	if sushyFiles.err != nil {
		t.Fatal(sushyFiles.err)
	}
	return sushyFiles.pass, sushyFiles.hash
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// pyString quotes s as a Python string literal (JSON's escapes are
// Python's for the characters a path holds).
func pyString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// runSushy starts sushy-emulator with the given fake systems.
func runSushy(t *testing.T, systems ...sushySystem) *sushyEmu {
	t.Helper()
	bin, python := sushyBinary(t)
	pass, hash := sushyCredentials(t, python)
	const user = "fencer"
	dir := t.TempDir()
	authFile := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(authFile, []byte(user+":"+hash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sys, err := json.Marshal(systems)
	if err != nil {
		t.Fatal(err)
	}

	for attempt := 1; ; attempt++ {
		port := freePort(t)
		conf := filepath.Join(dir, fmt.Sprintf("emulator-%d.conf", attempt))
		// The config file is Python, read by Flask's from_pyfile: only
		// upper-case names are settings.
		body := fmt.Sprintf(`import json
SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
SUSHY_EMULATOR_LISTEN_PORT = %d
SUSHY_EMULATOR_FAKE_DRIVER = True
SUSHY_EMULATOR_FAKE_SYSTEMS = json.loads(%s)
SUSHY_EMULATOR_STATE_DIR = %s
SUSHY_EMULATOR_AUTH_FILE = %s
`, port, pyString(string(sys)), pyString(filepath.Join(dir, "state")), pyString(authFile))
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		logPath := filepath.Join(dir, fmt.Sprintf("emulator-%d.log", attempt))
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--config", conf)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.Env = []string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"}
		for _, kv := range os.Environ() { // nothing of the caller's sushy settings
			if !strings.HasPrefix(kv, "SUSHY_") && !strings.HasPrefix(kv, "PYTHON") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		if err := cmd.Start(); err != nil {
			logFile.Close()
			t.Fatalf("start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); logFile.Close(); close(exited) }()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(3 * time.Second):
					cmd.Process.Kill()
					<-exited
				}
			})
		}
		t.Cleanup(stop)

		url := fmt.Sprintf("http://127.0.0.1:%d", port)
		switch waitSushy(url, exited) {
		case nil:
			return &sushyEmu{url: url, user: user, pass: pass, stop: stop}
		case errSushyExited:
			stop()
			log, _ := os.ReadFile(logPath)
			if attempt < 3 && bytes.Contains(log, []byte("already in use")) {
				continue // the free port was taken meanwhile
			}
			t.Fatalf("sushy-emulator exited before answering:\n%s", log)
		default:
			stop()
			log, _ := os.ReadFile(logPath)
			t.Fatalf("sushy-emulator did not answer %s/redfish/v1/ within 20s:\n%s", url, log)
		}
	}
}

var errSushyExited = errors.New("sushy-emulator exited")

// waitSushy polls the service root (which sushy serves without
// authentication) until it answers 200.
func waitSushy(url string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errSushyExited
		default:
		}
		resp, err := client.Get(url + "/redfish/v1/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("timeout")
}

func sushyBMC(t *testing.T, url, user, pass, system string) *BMC {
	t.Helper()
	b, err := New(Config{URL: url, SystemID: system, Username: user, Password: pass, AllowPlainHTTP: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSushyPowerState(t *testing.T) {
	t.Parallel()
	url, user, pass := startSushy(t)
	ctx := ctxT(t)
	for id, want := range map[string]fencing.PowerState{
		sushyOn.UUID:  fencing.PowerOn,
		sushyOff.UUID: fencing.PowerOff,
		sushyOn.Name:  fencing.PowerOn,  // sushy redirects (307) a name to the uuid
		sushyOff.Name: fencing.PowerOff, //
	} {
		st, err := sushyBMC(t, url, user, pass, id).PowerState(ctx)
		if err != nil || st != want {
			t.Fatalf("PowerState(%s) = %v, %v; want %v", id, st, err, want)
		}
	}
	// Two systems and no SystemID: refuse to guess.
	_, err := sushyBMC(t, url, user, pass, "").PowerState(ctx)
	if err == nil || !strings.Contains(err.Error(), "2 systems") || !strings.Contains(err.Error(), sushyOn.UUID) {
		t.Fatalf("no SystemID among two: %v", err)
	}
	// An unknown system is the BMC's answer, not an outage.
	_, err = sushyBMC(t, url, user, pass, "no-such-host").PowerState(ctx)
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") || errors.Is(err, fencing.ErrUnreachable) || errors.Is(err, fencing.ErrAuth) {
		t.Fatalf("unknown system: %v", err)
	}
}

func TestSushyPowerOff(t *testing.T) {
	t.Parallel()
	url, user, pass := startSushy(t)
	// Longer than ctxT: sushy applies the change up to 11 s late, and the
	// read-back below allows 20 s for it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// By name: the GET is redirected to the uuid, and the reset target
	// comes from the resource (uuid-based).
	b := sushyBMC(t, url, user, pass, sushyOn.Name)
	if err := b.PowerOff(ctx); err != nil {
		t.Fatalf("PowerOff: %v", err)
	}
	// sushy's fake driver applies a power change 1 to 11 s after
	// accepting it ("hardware actions are not immediate"), reporting the
	// old state until then: the caller's read-back has to wait for it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := b.PowerState(ctx)
		if err != nil {
			t.Fatalf("PowerState: %v", err)
		}
		if st == fencing.PowerOff {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %v 20s after ForceOff", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Again, now that it is off.
	if err := b.PowerOff(ctx); err != nil {
		t.Fatalf("PowerOff of a system it powered off: %v", err)
	}
	if st, err := sushyBMC(t, url, user, pass, sushyOff.UUID).PowerState(ctx); err != nil || st != fencing.PowerOff {
		t.Fatalf("the other system: %v, %v", st, err)
	}
}

func TestSushyPowerOffAlreadyOff(t *testing.T) {
	t.Parallel()
	url, user, pass := startSushy(t)
	ctx := ctxT(t)
	// What sushy itself answers, for the record (2.2.0: 204 No Content).
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
		url+"/redfish/v1/Systems/"+sushyOff.UUID+"/Actions/ComputerSystem.Reset",
		strings.NewReader(`{"ResetType":"ForceOff"}`))
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		t.Logf("sushy-emulator answers ForceOff of an off system with HTTP %d", resp.StatusCode)
	}

	b := sushyBMC(t, url, user, pass, sushyOff.UUID)
	if err := b.PowerOff(ctx); err != nil {
		t.Fatalf("PowerOff of an off system: %v", err)
	}
	if st, err := b.PowerState(ctx); err != nil || st != fencing.PowerOff {
		t.Fatalf("PowerState = %v, %v", st, err)
	}
	// It must not have touched the other one.
	if st, err := sushyBMC(t, url, user, pass, sushyOn.UUID).PowerState(ctx); err != nil || st != fencing.PowerOn {
		t.Fatalf("the other system: %v, %v", st, err)
	}
}

func TestSushyWrongCredentials(t *testing.T) {
	t.Parallel()
	url, user, pass := startSushy(t)
	ctx := ctxT(t)
	for name, c := range map[string][2]string{
		"password": {user, pass + "-wrong"},
		"user":     {"nobody", pass},
		"none":     {"", ""},
	} {
		b := sushyBMC(t, url, c[0], c[1], sushyOn.UUID)
		_, err := b.PowerState(ctx)
		if !errors.Is(err, fencing.ErrAuth) || errors.Is(err, fencing.ErrUnreachable) {
			t.Fatalf("%s: PowerState err = %v, want ErrAuth", name, err)
		}
		noSecret(t, err, pass)
		err = b.PowerOff(ctx)
		if !errors.Is(err, fencing.ErrAuth) {
			t.Fatalf("%s: PowerOff err = %v, want ErrAuth", name, err)
		}
		noSecret(t, err, pass)
	}
	// Nothing was powered off (sushy rejects before the app sees it).
	if st, err := sushyBMC(t, url, user, pass, sushyOn.UUID).PowerState(ctx); err != nil || st != fencing.PowerOn {
		t.Fatalf("after refused requests: %v, %v", st, err)
	}
}

func TestSushyStopped(t *testing.T) {
	t.Parallel()
	e := runSushy(t, sushyOn) // one system: found without SystemID
	ctx := ctxT(t)
	b := sushyBMC(t, e.url, e.user, e.pass, "")
	if st, err := b.PowerState(ctx); err != nil || st != fencing.PowerOn {
		t.Fatalf("PowerState = %v, %v", st, err)
	}
	if want := "redfish://" + strings.TrimPrefix(e.url, "http://") + "/redfish/v1/Systems/" + sushyOn.UUID; b.String() != want {
		t.Fatalf("String() = %q, want %q", b.String(), want)
	}
	e.stop() // the BMC is gone with its host
	start := time.Now()
	if _, err := b.PowerState(ctx); !errors.Is(err, fencing.ErrUnreachable) {
		t.Fatalf("PowerState err = %v, want ErrUnreachable", err)
	}
	if err := b.PowerOff(ctx); !errors.Is(err, fencing.ErrUnreachable) {
		t.Fatalf("PowerOff err = %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to find the BMC gone", d)
	}
	// A fresh client, with nothing cached, finds it gone too.
	if _, err := sushyBMC(t, e.url, e.user, e.pass, "").PowerState(context.Background()); !errors.Is(err, fencing.ErrUnreachable) {
		t.Fatalf("fresh client: %v", err)
	}
}
