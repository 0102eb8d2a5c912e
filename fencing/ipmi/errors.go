package ipmi

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/cloudstack-xenha/xenha-bridge/fencing"
)

// watch is the UDP dialer handed to go-ipmi (as its "proxy"): it gives the
// operation the socket to close when the context ends, and it sees whether
// the BMC answered the last request, which is how do tells a BMC that is not
// there from one that answered with an error.
type watch struct {
	ctx  context.Context // bounds the dial (a name lookup may hang)
	addr string          // host:port, bracketed for IPv6

	mu     sync.Mutex
	conn   net.Conn
	closed bool

	wrote   atomic.Bool // a request went out
	waiting atomic.Bool // the last request got no datagram back (yet)
}

// Dial implements golang.org/x/net/proxy.Dialer. It dials w.addr, not
// addr: go-ipmi formats addr as "%s:%d", which breaks IPv6 addresses.
func (w *watch) Dial(network, _ string) (net.Conn, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, net.ErrClosed
	}
	var d net.Dialer
	conn, err := d.DialContext(w.ctx, network, w.addr)
	if err != nil {
		return nil, err
	}
	w.conn = conn
	return &watchedConn{Conn: conn, w: w}, nil
}

func (w *watch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.conn != nil {
		w.conn.Close()
	}
}

// silent reports whether the BMC left the operation's last request
// unanswered, or no request could be sent at all.
func (w *watch) silent() bool { return !w.wrote.Load() || w.waiting.Load() }

type watchedConn struct {
	net.Conn
	w *watch
}

func (c *watchedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err == nil {
		c.w.wrote.Store(true)
		c.w.waiting.Store(true)
	}
	return n, err
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.w.waiting.Store(false)
	}
	return n, err
}

// opError is what every failed operation returns. Its message names the
// BMC, the operation and the cause, with the password cut out.
type opError struct {
	msg  string
	errs []error // kind (ErrUnreachable, ErrAuth), context error, cause
}

func (e *opError) Error() string   { return e.msg }
func (e *opError) Unwrap() []error { return e.errs }

// fail classifies err, the failure of operation op, into an *opError. ctx
// is the caller's context; w, when not nil, watched the operation's socket.
func (b *BMC) fail(ctx context.Context, op string, w *watch, err error) error {
	var kind, ctxErr error
	switch {
	case isAuth(err):
		kind = fencing.ErrAuth
	case errors.Is(ctx.Err(), context.Canceled):
		// The caller gave up: that says nothing about the BMC.
		ctxErr = ctx.Err()
	case w == nil && ctx.Err() != nil:
		ctxErr = ctx.Err() // never started
	case w != nil && (w.silent() || isTimeout(err)):
		kind = fencing.ErrUnreachable
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || isTimeout(err) {
			ctxErr = context.DeadlineExceeded
		}
	}
	msg := b.String() + ": " + op
	if kind != nil {
		msg += ": " + kind.Error()
	}
	msg += ": " + b.redact(flatten(err.Error()))
	e := &opError{msg: msg}
	for _, x := range []error{kind, ctxErr, err} {
		if x != nil {
			e.errs = append(e.errs, x)
		}
	}
	return e
}

// redact cuts the password out of s.
func (b *BMC) redact(s string) string {
	if b.password == "" {
		return s
	}
	return strings.ReplaceAll(s, b.password, "********")
}

// flatten puts go-ipmi's multi-line messages (one line per cipher suite
// tried) on one line.
func flatten(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// authStatus are the RMCP+ session-setup status codes with which a BMC
// refuses a user: unknown name, wrong key, or a role the user may not have.
var authStatus = []types.RmcpStatusCode{
	types.RmcpStatusCodeUnauthorizedName,
	types.RmcpStatusCodeInvalidIntegrityCheckValue,
	types.RmcpStatusCodeInvalidRole,
	types.RmcpStatusCodeUnauthorizedRoleOfPriLevel,
}

// authMarkers are those refusals as go-ipmi words them. Connect joins the
// errors of the cipher suites it tried with %v, not %w, so the chain is
// broken there and only the text is left; the markers come from go-ipmi's
// own Error methods so that they cannot drift from it.
var authMarkers = func() []string {
	m := []string{client.ErrRAKPAuthentication.Error()}
	for _, code := range authStatus {
		m = append(m, types.NewRmcpStatusError(code).Error())
	}
	return m
}()

// Completion codes that mean the user may not do this.
const (
	ccInsufficientPrivilege = 0xd4 // any command
	ccPrivilegeNotAvailable = 0x80 // Set Session Privilege Level: over the user's or channel's limit
	ccPrivilegeExceedsLimit = 0x81 // Set Session Privilege Level: not available for this user
)

func isAuth(err error) bool {
	if errors.Is(err, client.ErrRAKPAuthentication) {
		return true
	}
	var rs *types.RmcpStatusError
	if errors.As(err, &rs) {
		for _, code := range authStatus {
			if rs.StatusCode() == code {
				return true
			}
		}
	}
	var re *types.ResponseError
	if errors.As(err, &re) {
		switch re.CompletionCode() {
		case ccInsufficientPrivilege:
			return true
		case ccPrivilegeNotAvailable, ccPrivilegeExceedsLimit:
			if strings.Contains(err.Error(), "SetSessionPrivilegeLevel") {
				return true
			}
		}
	}
	msg := err.Error()
	for _, m := range authMarkers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// isTimeout reports a wait for the BMC that ran out. (Most such failures
// are also seen by watch.silent; this catches the rest, such as a BMC that
// answered with packets go-ipmi could not match to its request.)
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	msg := err.Error()
	for _, m := range []string{"deadline exceeded", "timed out", "no matching IPMI response", "no UDP datagram matched"} {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}
