package xapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	leakPass     = "Pw-LEAKCANARY-9f3K"
	leakWrong    = "Wrong-LEAKCANARY-2b"
	leakJoinPass = "Join-LEAKCANARY-7c"
	leakSession  = "OpaqueRef:LEAKSESSION-0001"
)

// echoServer is a careless host that puts whatever it was sent, passwords
// and session refs included, into its error params.
func echoServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Method string   `json:"method"`
			Params []string `json:"params"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &req) // non-string params are dropped: fine here
		reply := func(code string, params []string) {
			json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": 1,
				"error": map[string]any{"code": 1, "message": code, "data": params}})
		}
		switch {
		case req.Method == "session.login_with_password" && len(req.Params) > 1 && req.Params[1] == leakPass:
			io.WriteString(w, `{"jsonrpc":"2.0","result":"`+leakSession+`","id":1}`)
		case req.Method == "session.login_with_password":
			reply(CodeSessionAuthenticationFailed, req.Params)
		case req.Method == "pool.join":
			reply(CodeJoiningHostCannotContainSharedSRs, req.Params)
		case req.Method == "host.get_all_records":
			reply("INTERNAL_ERROR", []string{"session " + req.Params[0] + " was bad"})
		default:
			reply(CodeSessionInvalid, req.Params[:1])
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestNoSecretsInLogsOrErrors(t *testing.T) {
	var logBuf bytes.Buffer
	var logMu sync.Mutex
	logger := hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{w: &logBuf, mu: &logMu}, Level: hclog.Trace})
	opts := testOpts()
	opts.Logger = logger
	ctx := context.Background()

	var errs []error
	record := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	// A well-behaved host: login, expiry and re-login, failure, logout.
	f := newFakeHost(t, "")
	f.pass = leakPass
	f.handle("pool.join", func(p []json.RawMessage) (any, error) {
		return nil, &Error{Code: CodeJoiningHostCannotContainSharedSRs}
	})
	f.handle("host.get_all_records", func([]json.RawMessage) (any, error) { return map[string]any{}, nil })
	good, err := NewClient(f.URL(), Credentials{Username: "root", Password: leakPass}, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = good.HostGetAllRecords(ctx)
	record(err)
	f.expireSessions()
	_, err = good.HostGetAllRecords(ctx)
	record(err)
	record(good.PoolJoin(ctx, "10.0.0.1", "root", Secret(leakJoinPass)))
	_, err = good.Call(ctx, "no.such_method", Secret(leakJoinPass))
	record(err)
	record(good.Logout(ctx))

	bad, _ := NewClient(f.URL(), Credentials{Username: "root", Password: leakWrong}, opts)
	record(bad.Login(ctx))

	// A careless host echoing secrets back.
	echo := echoServer(t)
	e1, _ := NewClient(echo, Credentials{Username: "root", Password: leakPass}, opts)
	record(e1.PoolJoin(ctx, "10.0.0.1", "root", Secret(leakJoinPass)))
	_, err = e1.HostGetAllRecords(ctx)
	record(err)
	_, err = e1.Call(ctx, "VM.get_all")
	record(err)
	e2, _ := NewClient(echo, Credentials{Username: "root", Password: leakWrong}, opts)
	record(e2.Login(ctx))

	// Transport failures, with credentials in the URL's userinfo.
	userinfo := strings.Replace(cannedServer(t, 500, "<html>500</html>"), "http://", "http://root:"+leakPass+"@", 1)
	h, err := NewClient(userinfo, Credentials{Username: "root", Password: leakPass}, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Call(ctx, "pool.get_all")
	record(err)
	_, err = NewClient("https://root:"+leakPass+"@[::1", Credentials{}, opts)
	record(err)
	hang := strings.Replace(hangingListener(t), "http://", "http://root:"+leakPass+"@", 1)
	hc, _ := NewClient(hang, Credentials{Username: "root", Password: leakPass}, opts)
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	record(hc.Login(tctx))
	cancel()

	// A pool: probes, master lost, and printing the objects themselves.
	f.setEmergency(CodeHostStillBooting)
	p, err := NewPool([]string{strings.Replace(f.URL(), "http://", "http://root:"+leakPass+"@", 1), echo}, Credentials{Username: "root", Password: leakWrong}, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Master(ctx)
	record(err)
	var printed []string
	for _, pr := range p.Probe(ctx) {
		printed = append(printed, pr.String(), fmt.Sprintf("%+v", pr))
	}
	record(p.Close(ctx))
	for _, v := range []any{good, e1, p, opts, good.creds} {
		printed = append(printed, fmt.Sprintf("%v %+v %#v", v, v, v))
	}

	if len(errs) < 10 {
		t.Fatalf("only %d errors collected; the scenario did not run", len(errs))
	}
	for _, e := range errs {
		printed = append(printed, e.Error(), fmt.Sprintf("%v|%+v|%#v", e, e, e))
		if apiErr, ok := AsError(e); ok {
			printed = append(printed, strings.Join(apiErr.Params, " "))
		}
		var te *TransportError
		if errors.As(e, &te) {
			printed = append(printed, te.URL)
		}
	}
	logMu.Lock()
	logs := logBuf.String()
	logMu.Unlock()
	if !strings.Contains(logs, "session.login_with_password") {
		t.Fatalf("log capture is not working:\n%s", logs)
	}
	printed = append(printed, logs)

	secrets := append([]string{leakPass, leakWrong, leakJoinPass, leakSession, "LEAKCANARY", "LEAKSESSION"}, f.issuedSessions()...)
	for _, out := range printed {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%q leaked in:\n%s", s, out)
			}
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
