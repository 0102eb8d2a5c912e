package xapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// observed records what Options.Observe is told.
type observed struct {
	mu    sync.Mutex
	calls []string // "method kind"
}

func (o *observed) observe(method string, took time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if took < 0 {
		panic("negative duration")
	}
	o.calls = append(o.calls, method+" "+ErrorKind(err))
}

func (o *observed) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.calls...)
}

func TestObserveSeesEveryRequest(t *testing.T) {
	f := newFakeHost(t, "")
	var obs observed
	opts := testOpts()
	opts.Observe = obs.observe
	c, err := NewClient(f.URL(), testCreds(), opts)
	if err != nil {
		t.Fatal(err)
	}
	f.handle("pool.get_all", func([]json.RawMessage) (any, error) { return []string{"OpaqueRef:p"}, nil })
	ctx := context.Background()
	if _, err := c.Call(ctx, "pool.get_all"); err != nil {
		t.Fatal(err)
	}
	c.Logout(ctx)
	f.setSlave("127.0.0.9")
	if err := c.Login(ctx); !IsCode(err, CodeHostIsSlave) {
		t.Fatalf("login on a slave: %v", err)
	}
	want := []string{
		"session.login_with_password ", "pool.get_all ", "session.logout ",
		"session.login_with_password HOST_IS_SLAVE",
	}
	if got := obs.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("observed %q, want %q", got, want)
	}
}

func TestObserveTimeout(t *testing.T) {
	var obs observed
	opts := testOpts()
	opts.Observe = obs.observe
	opts.Timeout = 300 * time.Millisecond // bounds the shared login
	c, err := NewClient(hangingListener(t), testCreds(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Login(ctx); err == nil {
		t.Fatal("login on a hanging host succeeded")
	}
	// The shared login runs on past the caller's deadline, up to Timeout:
	// wait for it to be observed.
	deadline := time.Now().Add(10 * time.Second)
	for len(obs.list()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := obs.list(); len(got) != 1 || got[0] != "session.login_with_password timeout" {
		t.Fatalf("observed %q", got)
	}
}

func TestErrorKind(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		want string
	}{
		"nil":         {nil, ""},
		"api":         {fmt.Errorf("wrapped: %w", &Error{Code: CodeHostOffline}), "HOST_OFFLINE"},
		"odd code":    {&Error{Code: "not a code {}"}, "OTHER_API_ERROR"},
		"long code":   {&Error{Code: string(make([]byte, 65))}, "OTHER_API_ERROR"},
		"canceled":    {&TransportError{Err: context.Canceled}, "canceled"},
		"deadline":    {&TransportError{Err: context.DeadlineExceeded}, "timeout"},
		"malformed":   {&TransportError{Err: fmt.Errorf("%w: x", ErrMalformedResponse)}, "malformed"},
		"closed":      {ErrClosed, "closed"},
		"unreachable": {&TransportError{Err: errors.New("connection refused")}, "unreachable"},
		"other":       {errors.New("boom"), "error"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := ErrorKind(tc.err); got != tc.want {
				t.Fatalf("ErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
