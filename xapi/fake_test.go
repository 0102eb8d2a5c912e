package xapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeHost is a minimal XAPI host speaking JSON-RPC as xapi.md describes:
// enough for the client and pool tests, nothing more.
type fakeHost struct {
	t   testing.TB
	srv *httptest.Server

	logins      atomic.Int32 // successful login_with_password
	loginTries  atomic.Int32 // every login_with_password
	localLogins atomic.Int32 // successful slave_local_login_with_password

	mu         sync.Mutex
	user, pass string
	role       string // "master", "slave" or "emergency"
	masterAddr string // for slaves
	emergency  string // the emergency error code
	sessions   map[string]bool
	nextSess   int
	loginDelay time.Duration
	handlers   map[string]handler
	calls      []fakeCall
}

type handler func(params []json.RawMessage) (any, error)

type fakeCall struct {
	Method string
	Params []json.RawMessage
}

const (
	testUser = "root"
	testPass = "hunter2-Zq9!x"
)

// newFakeHost starts a master on ip (e.g. "127.10.0.1"); "" means 127.0.0.1.
func newFakeHost(t testing.TB, ip string) *fakeHost {
	return newFakeHostAt(t, ip, 0)
}

func newFakeHostAt(t testing.TB, ip string, port int) *fakeHost {
	t.Helper()
	if ip == "" {
		ip = "127.0.0.1"
	}
	f := newFakeState(t)
	l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Listener.Close()
	f.srv.Listener = l
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

// newFakeTLSHost starts a master behind httptest's self-signed certificate.
func newFakeTLSHost(t testing.TB) *fakeHost {
	t.Helper()
	f := newFakeState(t)
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func newFakeState(t testing.TB) *fakeHost {
	return &fakeHost{
		t: t, user: testUser, pass: testPass, role: "master",
		sessions: map[string]bool{}, handlers: map[string]handler{},
	}
}

func (f *fakeHost) URL() string  { return f.srv.URL }
func (f *fakeHost) Addr() string { return f.srv.Listener.Addr().(*net.TCPAddr).IP.String() }
func (f *fakeHost) Port() int    { return f.srv.Listener.Addr().(*net.TCPAddr).Port }

func (f *fakeHost) setMaster() {
	f.mu.Lock()
	f.role, f.masterAddr = "master", ""
	f.mu.Unlock()
}

func (f *fakeHost) setSlave(masterAddr string) {
	f.mu.Lock()
	f.role, f.masterAddr = "slave", masterAddr
	f.mu.Unlock()
}

func (f *fakeHost) setEmergency(code string) {
	f.mu.Lock()
	f.role, f.emergency = "emergency", code
	f.mu.Unlock()
}

func (f *fakeHost) handle(method string, h handler) {
	f.mu.Lock()
	f.handlers[method] = h
	f.mu.Unlock()
}

// expireSessions forgets every session, as xapi does after a restart.
func (f *fakeHost) expireSessions() {
	f.mu.Lock()
	f.sessions = map[string]bool{}
	f.mu.Unlock()
}

func (f *fakeHost) liveSessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sessions)
}

func (f *fakeHost) issuedSessions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for i := 1; i <= f.nextSess; i++ {
		out = append(out, fakeSessionRef(f.srv.URL, i))
	}
	return out
}

func (f *fakeHost) callsTo(method string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func fakeSessionRef(url string, n int) string {
	// Distinctive, so the leak test can look for it.
	return fmt.Sprintf("OpaqueRef:sess-%08x-%04d", len(url)*7919, n)
}

var emergencyMethods = map[string]bool{
	"session.slave_local_login_with_password": true,
	"session.local_logout":                    true,
	"pool.emergency_transition_to_master":     true,
	"pool.emergency_reset_master":             true,
	"host.emergency_ha_disable":               true,
}

type fakeRequest struct {
	JSONRPC string            `json:"jsonrpc"`
	Method  string            `json:"method"`
	Params  []json.RawMessage `json:"params"`
	ID      json.RawMessage   `json:"id"`
}

func (f *fakeHost) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req fakeRequest
	if r.Method != http.MethodPost || r.URL.Path != "/jsonrpc" || json.Unmarshal(body, &req) != nil {
		// What xapi does with a body it cannot parse.
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred.</body></html>")
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{req.Method, req.Params})
	f.mu.Unlock()

	res, err := f.dispatch(r, req)
	v2 := req.JSONRPC == "2.0"
	var out any
	switch e := err.(type) {
	case nil:
		if v2 {
			out = map[string]any{"jsonrpc": "2.0", "result": res, "id": req.ID}
		} else {
			out = map[string]any{"result": res, "error": nil, "id": req.ID}
		}
	case *Error:
		arr := append([]string{e.Code}, e.Params...)
		switch {
		case IsEmergency(e): // pre-dispatch quirk: bare array, id 0
			out = map[string]any{"jsonrpc": "2.0", "error": arr, "id": 0}
		case v2:
			out = map[string]any{"jsonrpc": "2.0", "error": map[string]any{"code": 1, "message": e.Code, "data": nonNil(e.Params)}, "id": req.ID}
		default:
			out = map[string]any{"result": nil, "error": arr, "id": req.ID}
		}
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func str(raw json.RawMessage) string {
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

func (f *fakeHost) dispatch(r *http.Request, req fakeRequest) (any, error) {
	f.mu.Lock()
	role, masterAddr, emergency, delay := f.role, f.masterAddr, f.emergency, f.loginDelay
	f.mu.Unlock()
	p := req.Params
	arg := func(i int) string {
		if i < len(p) {
			return str(p[i])
		}
		return ""
	}

	if role == "emergency" && !emergencyMethods[req.Method] {
		return nil, &Error{Code: emergency}
	}
	switch req.Method {
	case "session.login_with_password":
		f.loginTries.Add(1)
		if role == "slave" {
			return nil, &Error{Code: CodeHostIsSlave, Params: []string{masterAddr}}
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		if arg(0) != f.user || arg(1) != f.pass {
			return nil, &Error{Code: CodeSessionAuthenticationFailed, Params: []string{arg(0), "Authentication failure"}}
		}
		f.logins.Add(1)
		return f.newSession(), nil
	case "session.slave_local_login_with_password":
		if arg(0) != f.user || arg(1) != f.pass {
			return nil, &Error{Code: CodeSessionAuthenticationFailed, Params: []string{arg(0), "Authentication failure"}}
		}
		f.localLogins.Add(1)
		return f.newSession(), nil
	}
	if role == "slave" && !emergencyMethods[req.Method] {
		return nil, &Error{Code: CodeHostIsSlave, Params: []string{masterAddr}}
	}
	sess := arg(0)
	f.mu.Lock()
	ok := f.sessions[sess]
	h := f.handlers[req.Method]
	f.mu.Unlock()
	if !ok {
		return nil, &Error{Code: CodeSessionInvalid, Params: []string{sess}}
	}
	switch req.Method {
	case "session.logout", "session.local_logout":
		f.mu.Lock()
		delete(f.sessions, sess)
		f.mu.Unlock()
		return "", nil
	}
	if h == nil {
		return nil, &Error{Code: CodeMessageMethodUnknown, Params: []string{req.Method}}
	}
	if len(p) > 0 {
		p = p[1:]
	}
	return h(p)
}

func (f *fakeHost) newSession() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextSess++
	ref := fakeSessionRef(f.srv.URL, f.nextSess)
	f.sessions[ref] = true
	return ref
}

// rawJSON lets a handler return a literal body, e.g. records with fields
// the client does not know.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func testCreds() Credentials { return Credentials{Username: testUser, Password: testPass} }

func testOpts() Options {
	return Options{Timeout: 5 * time.Second, ProbeTimeout: time.Second, TLS: TLSOptions{AllowPlainHTTP: true}}
}

func newTestClient(t testing.TB, f *fakeHost) *Client {
	t.Helper()
	c, err := NewClient(f.URL(), testCreds(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hangingListener accepts connections and never answers.
func hangingListener(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c) // read, never write
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + l.Addr().String()
}
