package redfish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
)

// newSim starts a 2-host simulated pool; host 1's BMC is the one fenced.
func newSim(t *testing.T) *xapisim.Sim {
	t.Helper()
	sim, err := xapisim.New(xapisim.Config{Hosts: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

func simBMC(t *testing.T, sim *xapisim.Sim, mod func(*Config)) *BMC {
	t.Helper()
	in := sim.Info()
	cfg := Config{
		URL: in.Hosts[1].BMCURL, Username: in.BMCUsername, Password: in.BMCPassword,
		AllowPlainHTTP: true, Timeout: 2 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// noSecret fails when an error shows the password.
func noSecret(t *testing.T, err error, secret string) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Fatalf("error shows the password: %v", err)
	}
}

func TestSimPowerOff(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	ctx := ctxT(t)
	b := simBMC(t, sim, nil)
	if got := b.Driver(); got != "redfish" {
		t.Fatalf("Driver() = %q", got)
	}
	st, err := b.PowerState(ctx)
	if err != nil || st != fencing.PowerOn {
		t.Fatalf("PowerState = %v, %v; want on", st, err)
	}
	want := "redfish://" + strings.TrimPrefix(sim.Info().Hosts[1].BMCURL, "http://") + "/redfish/v1/Systems/1"
	if got := b.String(); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if err := b.PowerOff(ctx); err != nil {
		t.Fatalf("PowerOff: %v", err)
	}
	if sim.State().Hosts[1].Powered {
		t.Fatal("host 1 still powered after PowerOff")
	}
	if !sim.State().Hosts[0].Powered {
		t.Fatal("host 0 lost power: the wrong host was fenced")
	}
	if st, err := b.PowerState(ctx); err != nil || st != fencing.PowerOff {
		t.Fatalf("PowerState after PowerOff = %v, %v; want off", st, err)
	}
	// The simulator answers 409 to a ForceOff of an off host (CloudStack
	// #13377): that is success.
	if err := b.PowerOff(ctx); err != nil {
		t.Fatalf("PowerOff of an off host: %v", err)
	}
}

func TestSimWrongPassword(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	ctx := ctxT(t)
	const pw = "not-the-bmc-password"
	b := simBMC(t, sim, func(c *Config) { c.Password = pw })
	_, err := b.PowerState(ctx)
	if !errors.Is(err, fencing.ErrAuth) || errors.Is(err, fencing.ErrUnreachable) {
		t.Fatalf("PowerState err = %v, want ErrAuth", err)
	}
	noSecret(t, err, pw)
	err = b.PowerOff(ctx)
	if !errors.Is(err, fencing.ErrAuth) {
		t.Fatalf("PowerOff err = %v, want ErrAuth", err)
	}
	noSecret(t, err, pw)
	if !sim.State().Hosts[1].Powered {
		t.Fatal("a refused login powered the host off")
	}
	if strings.Contains(b.String(), pw) {
		t.Fatal("String() shows the password")
	}
}

func TestSimBMCDown(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	ctx := ctxT(t)
	b := simBMC(t, sim, func(c *Config) { c.Timeout = 300 * time.Millisecond })
	if err := sim.BMCDown(1, true); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"PowerState": func() error { _, err := b.PowerState(ctx); return err },
		"PowerOff":   func() error { return b.PowerOff(ctx) },
	} {
		start := time.Now()
		err := call()
		if !errors.Is(err, fencing.ErrUnreachable) {
			t.Fatalf("%s err = %v, want ErrUnreachable", name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%s took %v with a 300ms Timeout", name, d)
		}
	}
	if !sim.State().Hosts[1].Powered {
		t.Fatal("host powered off through a BMC that is down")
	}
	// Back up: it answers again.
	if err := sim.BMCDown(1, false); err != nil {
		t.Fatal(err)
	}
	if st, err := b.PowerState(ctx); err != nil || st != fencing.PowerOn {
		t.Fatalf("PowerState after recovery = %v, %v", st, err)
	}
}

func TestSimContext(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	b := simBMC(t, sim, func(c *Config) { c.Timeout = 20 * time.Second })
	if err := sim.BMCDown(1, true); err != nil {
		t.Fatal(err)
	}

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := b.PowerOff(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, fencing.ErrUnreachable) {
			t.Fatalf("err = %v, want DeadlineExceeded and ErrUnreachable", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %v past a 200ms deadline", d)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := b.PowerState(ctx)
		if !errors.Is(err, context.Canceled) || errors.Is(err, fencing.ErrUnreachable) {
			t.Fatalf("err = %v, want Canceled and not ErrUnreachable", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %v past a cancel", d)
		}
	})
	t.Run("already done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := b.PowerState(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want Canceled", err)
		}
	})
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	b, err := New(Config{URL: "http://" + addr, AllowPlainHTTP: true, Username: "u", Password: "p", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PowerState(ctxT(t)); !errors.Is(err, fencing.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if err := b.PowerOff(ctxT(t)); !errors.Is(err, fencing.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	f := newFakeBMC()
	srv := f.startTLS(t)
	cert := srv.Certificate()
	sum := sha256.Sum256(cert.Raw)
	pin := hex.EncodeToString(sum[:])
	wrong := sha256.Sum256([]byte("some other certificate"))
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("nothing here"), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := "http://" + srv.Listener.Addr().String()

	for name, tc := range map[string]struct {
		cfg     Config
		newErr  string
		callErr string
	}{
		"pin right":         {cfg: Config{PinSHA256: pin}},
		"pin upper colons":  {cfg: Config{PinSHA256: fingerprint(sum[:])}},
		"pin wrong":         {cfg: Config{PinSHA256: hex.EncodeToString(wrong[:])}, callErr: "TLS pin mismatch: expected SHA-256 " + fingerprint(wrong[:])},
		"no pin":            {cfg: Config{}, callErr: "TLS verification failed"},
		"CA file":           {cfg: Config{CAFile: caFile}},
		"CA file and pin":   {cfg: Config{CAFile: caFile, PinSHA256: pin}},
		"CA file wrong pin": {cfg: Config{CAFile: caFile, PinSHA256: hex.EncodeToString(wrong[:])}, callErr: "TLS pin mismatch"},
		"CA file missing":   {cfg: Config{CAFile: filepath.Join(dir, "nope.pem")}, newErr: "read CA file"},
		"CA file not PEM":   {cfg: Config{CAFile: notPEM}, newErr: "no PEM certificate"},
		"pin not hex":       {cfg: Config{PinSHA256: "zz"}, newErr: "not a hex SHA-256"},
		"pin short":         {cfg: Config{PinSHA256: "abcd"}, newErr: "not a hex SHA-256"},
		"http refused":      {cfg: Config{URL: plain}, newErr: "refusing plain http"},
		"http with pin":     {cfg: Config{URL: plain, PinSHA256: pin, AllowPlainHTTP: true}, newErr: "plain http"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.URL == "" {
				cfg.URL = srv.URL
			}
			cfg.Username, cfg.Password, cfg.Timeout = f.user, f.pass, 2*time.Second
			b, err := New(cfg)
			if tc.newErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.newErr) {
					t.Fatalf("New err = %v, want %q", err, tc.newErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st, err := b.PowerState(ctxT(t))
			if tc.callErr == "" {
				if err != nil || st != fencing.PowerOn {
					t.Fatalf("PowerState = %v, %v", st, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.callErr) {
				t.Fatalf("err = %v, want %q", err, tc.callErr)
			}
			// A certificate that fails verification is not a BMC that is
			// gone: the orchestrator must not take it as one.
			if errors.Is(err, fencing.ErrUnreachable) || errors.Is(err, fencing.ErrAuth) {
				t.Fatalf("err = %v: TLS failure classified as unreachable/auth", err)
			}
			if err := b.PowerOff(ctxT(t)); err == nil {
				t.Fatal("PowerOff went through an unverified connection")
			}
			if n := len(f.postLog()); n != 0 {
				t.Fatalf("%d POSTs reached the server", n)
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		cfg  Config
		err  string
		str  string // String() when New succeeds
		root string
	}{
		"empty":            {cfg: Config{}, err: "no BMC URL"},
		"scheme":           {cfg: Config{URL: "ftp://bmc"}, err: "https or http"},
		"no host":          {cfg: Config{URL: "https://"}, err: "no host"},
		"credentials":      {cfg: Config{URL: "https://root:hunter2@bmc"}, err: "must not carry credentials"},
		"query":            {cfg: Config{URL: "https://bmc/?x=1"}, err: "query"},
		"bad url":          {cfg: Config{URL: "https://root:hunter2@bmc:port x/"}, err: "invalid BMC URL"},
		"negative timeout": {cfg: Config{URL: "https://bmc", Timeout: -time.Second}, err: "negative Timeout"},
		"system slash":     {cfg: Config{URL: "https://bmc", SystemID: "../Managers/1"}, err: "single path segment"},
		"auto":             {cfg: Config{URL: "https://bmc.example:8443"}, str: "redfish://bmc.example:8443/redfish/v1/Systems/(auto)"},
		"system id":        {cfg: Config{URL: "https://10.0.0.50/", SystemID: "System.Embedded.1", Password: "hunter2"}, str: "redfish://10.0.0.50/redfish/v1/Systems/System.Embedded.1"},
		"root given":       {cfg: Config{URL: "https://10.0.0.50/redfish/v1/", SystemID: "1"}, str: "redfish://10.0.0.50/redfish/v1/Systems/1"},
		"escaped id":       {cfg: Config{URL: "https://10.0.0.50", SystemID: "a b"}, str: "redfish://10.0.0.50/redfish/v1/Systems/a%20b"},
		"upper scheme":     {cfg: Config{URL: "HTTPS://10.0.0.50", SystemID: "1"}, str: "redfish://10.0.0.50/redfish/v1/Systems/1"},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := New(tc.cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("New err = %v, want %q", err, tc.err)
				}
				noSecret(t, err, "hunter2")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tc.str {
				t.Fatalf("String() = %q, want %q", got, tc.str)
			}
			if b.timeout != DefaultTimeout && tc.cfg.Timeout == 0 {
				t.Fatalf("timeout %v, want the default", b.timeout)
			}
		})
	}
}

func fakeClient(t *testing.T, f *fakeBMC, srv *httptest.Server, mod func(*Config)) *BMC {
	t.Helper()
	cfg := Config{URL: srv.URL, Username: f.user, Password: f.pass, AllowPlainHTTP: true, Timeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPowerOffAnswers(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		setup    func(f *fakeBMC)
		err      string // "" = success
		notFound bool
	}{
		"204":                    {},
		"200":                    {setup: func(f *fakeBMC) { f.offStatus = 200; f.offBody = `{}` }},
		"202 still powering off": {setup: func(f *fakeBMC) { f.offStatus = 202; f.powerAfter = "PoweringOff" }},
		"409 already off":        {setup: func(f *fakeBMC) { f.power = "Off"; f.offStatus = 409 }},
		"400 already off (iDRAC)": {setup: func(f *fakeBMC) {
			f.power = "Off"
			f.offStatus = 400
			f.offBody = `{"error":{"code":"Base.1.8.GeneralError","message":"Server is already powered OFF."}}`
		}},
		"409 but still on": {
			setup: func(f *fakeBMC) {
				f.offStatus = 409
				f.offBody = `{"error":{"code":"Base.1.8.ResourceInUse","message":"busy","@Message.ExtendedInfo":[{"MessageId":"Base.1.8.ResourceInUse","Message":"a reset is in progress"}]}}`
			},
			err: "HTTP 409 Conflict: Base.1.8.ResourceInUse: busy: a reset is in progress (the system is still on)",
		},
		"409 powering off": {setup: func(f *fakeBMC) { f.power = "PoweringOff"; f.offStatus = 409 }, err: "still on"},
		"500":              {setup: func(f *fakeBMC) { f.offStatus = 500; f.offBody = "<html>\n\x1b[31mInternal\terror</html>" }, err: "HTTP 500 Internal Server Error: <html> [31mInternal error</html> (the system is still on)"},
		"no actions":       {setup: func(f *fakeBMC) { f.noActions = true }},
		"vendor target":    {setup: func(f *fakeBMC) { f.target = "/redfish/v1/Systems/1/Oem/Actions/ComputerSystem.Reset" }},
		"target off bmc":   {setup: func(f *fakeBMC) { f.target = "https://198.51.100.7/redfish/v1/Systems/1/Actions/ComputerSystem.Reset" }, err: "leads off the BMC"},
		"unknown system":   {setup: func(f *fakeBMC) { f.systems = []string{"2"} }, err: "HTTP 404", notFound: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeBMC()
			if tc.setup != nil {
				tc.setup(f)
			}
			srv := f.start(t)
			b := fakeClient(t, f, srv, func(c *Config) { c.SystemID = "1" })
			err := b.PowerOff(ctxT(t))
			if tc.err == "" {
				if err != nil {
					t.Fatalf("PowerOff: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("PowerOff err = %v, want %q", err, tc.err)
			}
			if errors.Is(err, fencing.ErrUnreachable) || errors.Is(err, fencing.ErrAuth) {
				t.Fatalf("err %v wrongly classified", err)
			}
			noSecret(t, err, f.pass)
			posts := f.postLog()
			if tc.notFound || strings.Contains(tc.err, "leads off") {
				if len(posts) != 0 {
					t.Fatalf("POSTs %q, want none", posts)
				}
				return
			}
			if len(posts) != 1 {
				t.Fatalf("POSTs %q, want exactly one (no loop)", posts)
			}
			wantPath := "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"
			if f.target != "" {
				wantPath = f.target
			}
			if posts[0] != wantPath+` {"ResetType":"ForceOff"}` {
				t.Fatalf("POST %q, want ForceOff to %s", posts[0], wantPath)
			}
		})
	}
}

func TestPowerStates(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]fencing.PowerState{
		"On": fencing.PowerOn, "Off": fencing.PowerOff, "PoweringOn": fencing.PowerOn,
		"PoweringOff": fencing.PowerOn, "Paused": fencing.PowerOn, "off": fencing.PowerOff,
	} {
		got, err := parsePowerState(in)
		if err != nil || got != want {
			t.Errorf("parsePowerState(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Sleeping", strings.Repeat("x", 500)} {
		if got, err := parsePowerState(in); err == nil || got != fencing.PowerUnknown || len(err.Error()) > 100 {
			t.Errorf("parsePowerState(%q) = %v, %v; want unknown and a short error", in[:min(len(in), 10)], got, err)
		}
	}

	f := newFakeBMC()
	srv := f.start(t)
	b := fakeClient(t, f, srv, nil)
	f.set(func(f *fakeBMC) { f.resource = `{"Id":"1"}` })
	if st, err := b.PowerState(ctxT(t)); err == nil || st != fencing.PowerUnknown || !strings.Contains(err.Error(), "no PowerState") {
		t.Fatalf("no PowerState: %v, %v", st, err)
	}
	f.set(func(f *fakeBMC) { f.resource = `<html>login page</html>` })
	if _, err := b.PowerState(ctxT(t)); err == nil || !strings.Contains(err.Error(), "not a Redfish resource") {
		t.Fatalf("HTML answer: %v", err)
	}
	f.set(func(f *fakeBMC) { f.resource = `{"PowerState":"On","Pad":"` + strings.Repeat("x", maxBody) + `"}` })
	if _, err := b.PowerState(ctxT(t)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("huge answer: %v", err)
	}
}

func TestSystemDiscovery(t *testing.T) {
	t.Parallel()
	f := newFakeBMC()
	f.systems = []string{"System.Embedded.1"}
	srv := f.start(t)
	b := fakeClient(t, f, srv, nil)
	host := strings.TrimPrefix(srv.URL, "http://")
	if got := b.String(); got != "redfish://"+host+"/redfish/v1/Systems/(auto)" {
		t.Fatalf("String() before discovery = %q", got)
	}
	if st, err := b.PowerState(ctxT(t)); err != nil || st != fencing.PowerOn {
		t.Fatalf("PowerState = %v, %v", st, err)
	}
	if got := b.String(); got != "redfish://"+host+"/redfish/v1/Systems/System.Embedded.1" {
		t.Fatalf("String() after discovery = %q", got)
	}
	if err := b.PowerOff(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if p := f.postLog(); len(p) != 1 || !strings.HasPrefix(p[0], "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset ") {
		t.Fatalf("POSTs %q", p)
	}

	f2 := newFakeBMC()
	f2.systems = []string{"1", "2", "3"}
	srv2 := f2.start(t)
	b2 := fakeClient(t, f2, srv2, nil)
	if _, err := b2.PowerState(ctxT(t)); err == nil || !strings.Contains(err.Error(), "3 systems") || !strings.Contains(err.Error(), "set SystemID") {
		t.Fatalf("several systems: %v", err)
	}
	if err := b2.PowerOff(ctxT(t)); err == nil {
		t.Fatal("PowerOff picked one of several systems")
	}
	if p := f2.postLog(); len(p) != 0 {
		t.Fatalf("POSTs %q", p)
	}
	b3 := fakeClient(t, f2, srv2, func(c *Config) { c.SystemID = "2" })
	if err := b3.PowerOff(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	f4 := newFakeBMC()
	f4.systems = nil
	srv4 := f4.start(t)
	if _, err := fakeClient(t, f4, srv4, nil).PowerState(ctxT(t)); err == nil || !strings.Contains(err.Error(), "no ComputerSystem") {
		t.Fatalf("no systems: %v", err)
	}
}

func TestAuthStatuses(t *testing.T) {
	t.Parallel()
	f := newFakeBMC()
	srv := f.start(t)
	b := fakeClient(t, f, srv, func(c *Config) { c.Password = "wrong-" + f.pass })
	_, err := b.PowerState(ctxT(t))
	if !errors.Is(err, fencing.ErrAuth) || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("401: %v", err)
	}
	noSecret(t, err, f.pass)

	// 403: the account exists but may not do this.
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusForbidden, "Base.1.8.InsufficientPrivilege", "read-only account")
	}))
	t.Cleanup(forbidden.Close)
	b2, err := New(Config{URL: forbidden.URL, SystemID: "1", AllowPlainHTTP: true, Username: "ro", Password: "ro-pass"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.PowerOff(ctxT(t)); !errors.Is(err, fencing.ErrAuth) || !strings.Contains(err.Error(), "read-only account") {
		t.Fatalf("403: %v", err)
	}
}

func TestRedirects(t *testing.T) {
	t.Parallel()
	f := newFakeBMC()
	srv := f.start(t)
	var leaked = make(chan string, 4)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked <- r.Header.Get("Authorization")
		writeJSONBody(w, map[string]any{"PowerState": "Off"})
	}))
	t.Cleanup(other.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("/redfish/v1/Systems/byname", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/redfish/v1/Systems/1", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/redfish/v1/Systems/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/redfish/v1/Systems/1", http.StatusTemporaryRedirect)
	})
	mux.Handle("/", f)
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	_ = srv

	b := fakeClient(t, f, front, func(c *Config) { c.SystemID = "byname" })
	if st, err := b.PowerState(ctxT(t)); err != nil || st != fencing.PowerOn {
		t.Fatalf("redirect within the BMC: %v, %v", st, err)
	}
	b2 := fakeClient(t, f, front, func(c *Config) { c.SystemID = "elsewhere" })
	if _, err := b2.PowerState(ctxT(t)); err == nil || !strings.Contains(err.Error(), "HTTP 307") {
		t.Fatalf("redirect off the BMC: %v", err)
	}
	select {
	case h := <-leaked:
		t.Fatalf("followed a redirect to another host (Authorization %q)", h)
	default:
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 5, ""},
		{"  a \n\t b  ", 5, "a b"},
		{"x\x1b[31my", 10, "x [31my"},
		{"abcdef", 5, "abcde…"},
		{"abcde", 5, "abcde"},
		{strings.Repeat("é", 9), 5, strings.Repeat("é", 5) + "…"},
	} {
		if got := clip(tc.in, tc.n); got != tc.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
