package xapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClientLazyLogin(t *testing.T) {
	f := newFakeHost(t, "")
	f.handle("pool.get_all", func([]json.RawMessage) (any, error) { return []string{"OpaqueRef:p"}, nil })
	c := newTestClient(t, f)
	if n := f.loginTries.Load(); n != 0 {
		t.Fatalf("NewClient logged in (%d)", n)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		res, err := c.Call(ctx, "pool.get_all")
		if err != nil {
			t.Fatal(err)
		}
		if string(res) != `["OpaqueRef:p"]` {
			t.Fatalf("result %s", res)
		}
	}
	if n := f.logins.Load(); n != 1 {
		t.Fatalf("logins = %d, want 1", n)
	}
	login := f.callsTo("session.login_with_password")[0]
	var args []string
	for _, p := range login.Params {
		args = append(args, str(p))
	}
	if want := []string{testUser, testPass, "1.0", "xenha-bridge"}; !reflect.DeepEqual(args, want) {
		t.Fatalf("login args %q, want %q", args, want)
	}
	calls := f.callsTo("pool.get_all")
	if len(calls) != 3 || str(calls[0].Params[0]) != f.issuedSessions()[0] {
		t.Fatalf("session ref not prepended: %+v", calls)
	}
}

func TestClientExplicitLoginAndAuthFailure(t *testing.T) {
	f := newFakeHost(t, "")
	ctx := context.Background()

	bad, err := NewClient(f.URL(), Credentials{Username: "root", Password: "wrong"}, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // a failure is not cached: each attempt asks again
		if err := bad.Login(ctx); !IsAuthFailed(err) {
			t.Fatalf("Login = %v, want auth failure", err)
		}
	}
	if n := f.loginTries.Load(); n != 2 {
		t.Fatalf("login attempts = %d, want 2", n)
	}

	good := newTestClient(t, f)
	if err := good.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if err := good.Login(ctx); err != nil { // already logged in: no-op
		t.Fatal(err)
	}
	if n := f.logins.Load(); n != 1 {
		t.Fatalf("logins = %d, want 1", n)
	}
}

// cannedServer answers every request with the same status and body.
func cannedServer(t *testing.T, status int, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Method string }
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &req)
		if req.Method == "session.login_with_password" {
			io.WriteString(w, `{"jsonrpc":"2.0","result":"OpaqueRef:s","id":1}`)
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClientErrorShapes(t *testing.T) {
	for name, tc := range map[string]struct {
		status    int
		body      string
		code      string
		params    []string
		transport bool
	}{
		"v2":            {200, `{"jsonrpc":"2.0","error":{"code":1,"message":"HOST_IS_SLAVE","data":["10.0.0.1"]},"id":1}`, CodeHostIsSlave, []string{"10.0.0.1"}, false},
		"v2 no params":  {200, `{"jsonrpc":"2.0","error":{"code":1,"message":"HA_NOT_ENABLED","data":[]},"id":1}`, CodeHANotEnabled, []string{}, false},
		"emergency":     {200, `{"jsonrpc":"2.0","error":["HOST_HAS_NO_MANAGEMENT_IP"],"id":0}`, CodeHostHasNoManagementIP, []string{}, false},
		"v1":            {200, `{"result":null,"error":["HOST_OFFLINE","OpaqueRef:h2"],"id":"x"}`, CodeHostOffline, []string{"OpaqueRef:h2"}, false},
		"html 500":      {500, `<html><body><h1>HTTP 500 internal server error</h1></body></html>`, "", nil, true},
		"500 with json": {500, `{"jsonrpc":"2.0","result":"","id":1}`, "", nil, true},
		"garbage 200":   {200, `this is not json`, "", nil, true},
		"truncated":     {200, `{"jsonrpc":"2.0","result":{"a":`, "", nil, true},
		"redirect":      {302, ``, "", nil, true},
	} {
		t.Run(name, func(t *testing.T) {
			url := cannedServer(t, tc.status, tc.body)
			c, err := NewClient(url, testCreds(), testOpts())
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Call(context.Background(), "some.method", "x")
			if tc.transport {
				var te *TransportError
				if !errors.As(err, &te) || !IsUnreachable(err) {
					t.Fatalf("err = %v (%T), want *TransportError", err, err)
				}
				if te.Method != "some.method" || te.URL != url+"/jsonrpc" {
					t.Fatalf("TransportError fields %+v", te)
				}
				if _, ok := AsError(err); ok {
					t.Fatal("a transport failure must not look like an API failure")
				}
				return
			}
			e, ok := AsError(err)
			if !ok {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if e.Code != tc.code || !reflect.DeepEqual(nonNil(e.Params), tc.params) {
				t.Fatalf("got %s %q, want %s %q", e.Code, e.Params, tc.code, tc.params)
			}
			if IsUnreachable(err) {
				t.Fatal("an API failure is not a transport failure")
			}
			if !strings.Contains(err.Error(), "some.method") {
				t.Fatalf("error lacks the method: %v", err)
			}
		})
	}
}

func TestClientReloginOnSessionInvalid(t *testing.T) {
	f := newFakeHost(t, "")
	f.handle("host.get_all", func([]json.RawMessage) (any, error) { return []string{}, nil })
	c := newTestClient(t, f)
	ctx := context.Background()
	if _, err := c.Call(ctx, "host.get_all"); err != nil {
		t.Fatal(err)
	}
	f.expireSessions()
	if _, err := c.Call(ctx, "host.get_all"); err != nil {
		t.Fatalf("call after expiry: %v", err)
	}
	if n := f.logins.Load(); n != 2 {
		t.Fatalf("logins = %d, want 2", n)
	}
	if n := len(f.callsTo("host.get_all")); n != 3 {
		t.Fatalf("calls = %d, want 3 (ok, invalid, retried)", n)
	}
}

func TestClientRetriesOnlyOnce(t *testing.T) {
	f := newFakeHost(t, "")
	f.handle("host.get_all", func([]json.RawMessage) (any, error) {
		return nil, &Error{Code: CodeSessionInvalid, Params: []string{"OpaqueRef:whatever"}}
	})
	c := newTestClient(t, f)
	_, err := c.Call(context.Background(), "host.get_all")
	if !IsSessionInvalid(err) {
		t.Fatalf("err = %v, want SESSION_INVALID", err)
	}
	if n := len(f.callsTo("host.get_all")); n != 2 {
		t.Fatalf("calls = %d, want 2", n)
	}
	if n := f.logins.Load(); n != 2 {
		t.Fatalf("logins = %d, want 2", n)
	}
}

func TestClientConcurrentRelogin(t *testing.T) {
	f := newFakeHost(t, "")
	f.handle("VM.get_all", func([]json.RawMessage) (any, error) { return []string{}, nil })
	c := newTestClient(t, f)
	ctx := context.Background()
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	f.expireSessions()
	f.mu.Lock()
	f.loginDelay = 100 * time.Millisecond // keep the re-login open while others pile up
	f.mu.Unlock()

	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Call(ctx, "VM.get_all")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.logins.Load(); got != 2 {
		t.Fatalf("logins = %d, want 2 (initial + one re-login)", got)
	}
}

func TestClientHangingServer(t *testing.T) {
	hang := hangingListener(t)
	opts := testOpts()

	t.Run("ctx deadline during login", func(t *testing.T) {
		c, err := NewClient(hang, testCreds(), opts) // Timeout 5s: the ctx is shorter
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = c.Call(ctx, "pool.get_all")
		assertDeadline(t, err, start, time.Second)
	})

	t.Run("default timeout without ctx deadline", func(t *testing.T) {
		o := opts
		o.Timeout = 300 * time.Millisecond
		c, err := NewClient(hang, testCreds(), o)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = c.Login(context.Background())
		assertDeadline(t, err, start, 2*time.Second)
	})

	t.Run("call hangs after login", func(t *testing.T) {
		f := newFakeHost(t, "")
		release := make(chan struct{})
		t.Cleanup(func() { close(release) }) // runs before the server's Close
		f.handle("pool.get_all", func([]json.RawMessage) (any, error) {
			<-release
			return "late", nil
		})
		c := newTestClient(t, f)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if err := c.Login(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := c.Call(ctx, "pool.get_all")
		assertDeadline(t, err, start, time.Second)
	})
}

func assertDeadline(t *testing.T, err error, start time.Time, limit time.Duration) {
	t.Helper()
	if took := time.Since(start); took > limit {
		t.Fatalf("returned after %v, limit %v", took, limit)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if !IsUnreachable(err) {
		t.Fatalf("a host that does not answer is unreachable: %v (%T)", err, err)
	}
}

func TestClientConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := NewClient("http://root:"+testPass+"@"+addr, testCreds(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	err = c.Login(context.Background())
	var te *TransportError
	if !errors.As(err, &te) || !IsUnreachable(err) {
		t.Fatalf("err = %v (%T), want unreachable", err, err)
	}
	if te.URL != "http://"+addr+"/jsonrpc" || strings.Contains(err.Error(), testPass) {
		t.Fatalf("URL %q / error %q must not carry userinfo", te.URL, err)
	}
}

func TestClientURL(t *testing.T) {
	for name, tc := range map[string]struct {
		in, url, addr string
		allowHTTP     bool
		wantErr       bool
	}{
		"plain":       {in: "https://10.0.0.1", url: "https://10.0.0.1", addr: "10.0.0.1"},
		"slash":       {in: "https://10.0.0.1/", url: "https://10.0.0.1", addr: "10.0.0.1"},
		"jsonrpc":     {in: "https://10.0.0.1:8443/jsonrpc", url: "https://10.0.0.1:8443", addr: "10.0.0.1"},
		"userinfo":    {in: "https://root:pw@xen1.example.com/", url: "https://xen1.example.com", addr: "xen1.example.com"},
		"ipv6":        {in: "https://[fd00::1]:443", url: "https://[fd00::1]:443", addr: "fd00::1"},
		"http":        {in: "http://10.0.0.1", wantErr: true},
		"http ok":     {in: "http://10.0.0.1", allowHTTP: true, url: "http://10.0.0.1", addr: "10.0.0.1"},
		"bad scheme":  {in: "ftp://10.0.0.1", wantErr: true},
		"no host":     {in: "https://", wantErr: true},
		"unparseable": {in: "https://root:pw@[::1", wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			opts := testOpts()
			opts.TLS.AllowPlainHTTP = tc.allowHTTP
			c, err := NewClient(tc.in, testCreds(), opts)
			if tc.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				if strings.Contains(err.Error(), "pw") {
					t.Fatalf("error leaks userinfo: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.URL() != tc.url || c.Address() != tc.addr {
				t.Fatalf("URL %q Address %q, want %q %q", c.URL(), c.Address(), tc.url, tc.addr)
			}
		})
	}
}

func TestClientLogoutAndClose(t *testing.T) {
	f := newFakeHost(t, "")
	f.handle("pool.get_all", func([]json.RawMessage) (any, error) { return []string{}, nil })
	c := newTestClient(t, f)
	ctx := context.Background()
	if err := c.Logout(ctx); err != nil { // nothing to log out
		t.Fatal(err)
	}
	if _, err := c.Call(ctx, "pool.get_all"); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.liveSessions(); n != 0 {
		t.Fatalf("sessions left on the host: %d", n)
	}
	if _, err := c.Call(ctx, "pool.get_all"); err != nil { // logs in again
		t.Fatal(err)
	}
	f.expireSessions()
	if err := c.Close(ctx); err != nil { // an already expired session is fine
		t.Fatalf("Close: %v", err)
	}
	if _, err := c.Call(ctx, "pool.get_all"); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close = %v, want ErrClosed", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := f.logins.Load(); n != 2 {
		t.Fatalf("logins = %d, want 2", n)
	}
}

func TestSlaveLocalClient(t *testing.T) {
	f := newFakeHost(t, "")
	f.setEmergency(CodeHostStillBooting)
	f.handle("pool.emergency_transition_to_master", func(p []json.RawMessage) (any, error) { return "", nil })
	ctx := context.Background()

	normal := newTestClient(t, f)
	if err := normal.PoolEmergencyTransitionToMaster(ctx); !IsEmergency(err) {
		t.Fatalf("normal login on an emergency slave = %v, want emergency error", err)
	}

	c, err := NewSlaveLocalClient(f.URL(), testCreds(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PoolEmergencyTransitionToMaster(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	login := f.callsTo("session.slave_local_login_with_password")
	if len(login) != 1 || len(login[0].Params) != 2 || str(login[0].Params[1]) != testPass {
		t.Fatalf("slave-local login calls %+v", login)
	}
	if len(f.callsTo("session.local_logout")) != 1 || len(f.callsTo("session.logout")) != 0 {
		t.Fatal("slave-local client must log out with session.local_logout")
	}
	if f.liveSessions() != 0 {
		t.Fatal("session left open")
	}
}
