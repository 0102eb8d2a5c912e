package xapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults for Options.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultProbeTimeout = 3 * time.Second
	DefaultOriginator   = "xenha-bridge"
)

// apiVersion is the version argument of login_with_password; xapi ignores it.
const apiVersion = "1.0"

// Options tune a Client or a Pool. The zero value is usable.
type Options struct {
	// Timeout bounds a call whose context has no deadline (default 30s).
	Timeout time.Duration
	// ProbeTimeout bounds each login attempt a Pool makes while looking
	// for the master (default 3s). Note that xapi delays a failed login
	// by ~5s, so with a shorter timeout bad credentials look unreachable
	// to a probe; Master reports them properly through the last master.
	ProbeTimeout time.Duration
	TLS          TLSOptions
	// Logger receives debug lines for calls; nil discards them.
	Logger hclog.Logger
	// Originator is sent at login; xapi counts sessions per originator.
	Originator string
	// HTTPClient replaces the client built from TLS (tests).
	HTTPClient *http.Client
	// Observe, when set, is told about every request a Client sends
	// (logins, logouts and probes included): the method, how long it took
	// and its error (nil on success; see ErrorKind). It runs on the
	// caller's goroutine and must be quick and safe for concurrent use.
	// The bridge's metrics use it.
	Observe func(method string, took time.Duration, err error)
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = DefaultProbeTimeout
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Originator == "" {
		o.Originator = DefaultOriginator
	}
	return o
}

// Client talks to one XAPI host with one session. It is safe for
// concurrent use; the session is created on first use and recreated
// transparently when it expires.
type Client struct {
	base       *url.URL // without userinfo or trailing slash
	t          *transport
	creds      Credentials
	opts       Options
	log        hclog.Logger
	slaveLocal bool
	ownHTTP    bool // the http.Client is ours to clean up

	mu       sync.Mutex
	session  SessionRef
	inflight *loginCall // the login in progress, shared by all waiters
	closed   bool
}

// loginCall is one login shared by every caller that needs a session while
// it runs, so a burst of calls after an expiry makes one login, not many.
type loginCall struct {
	done chan struct{}
	sess SessionRef
	err  error
}

// NewClient returns a client for the host at rawURL (e.g.
// "https://10.0.0.1"). It does not connect; the first call logs in.
func NewClient(rawURL string, creds Credentials, opts Options) (*Client, error) {
	return newClient(rawURL, creds, opts, false)
}

// NewSlaveLocalClient returns a client that logs in with
// session.slave_local_login_with_password, which a slave in emergency mode
// still accepts. Use it for the emergency calls
// (PoolEmergencyTransitionToMaster, PoolEmergencyResetMaster,
// HostEmergencyHADisable).
func NewSlaveLocalClient(rawURL string, creds Credentials, opts Options) (*Client, error) {
	return newClient(rawURL, creds, opts, true)
}

func newClient(rawURL string, creds Credentials, opts Options, slaveLocal bool) (*Client, error) {
	opts = opts.withDefaults()
	base, err := parseBaseURL(rawURL, opts.TLS.AllowPlainHTTP)
	if err != nil {
		return nil, err
	}
	hc := opts.HTTPClient
	if hc == nil {
		cfg, err := opts.TLS.tlsConfig()
		if err != nil {
			return nil, err
		}
		hc = newHTTPClient(cfg)
	}
	c := &Client{
		base:       base,
		t:          &transport{endpoint: base.String() + "/jsonrpc", http: hc},
		creds:      creds,
		opts:       opts,
		slaveLocal: slaveLocal,
	}
	c.ownHTTP = opts.HTTPClient == nil
	c.log = opts.Logger.Named("xapi").With("address", base.Hostname())
	return c, nil
}

// parseBaseURL validates a host URL and strips what must not be reused:
// userinfo (credentials travel in the login call only), query, fragment,
// a trailing slash or /jsonrpc.
func parseBaseURL(rawURL string, allowHTTP bool) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil {
		// url.Parse quotes the input, which may hold userinfo.
		return nil, fmt.Errorf("xapi: invalid host URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP {
			return nil, fmt.Errorf("xapi: refusing plain http URL for %s (the login would send the password in clear; set TLS.AllowPlainHTTP to allow)", u.Host)
		}
	default:
		return nil, fmt.Errorf("xapi: host URL for %q must be https:// (got scheme %q)", u.Host, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("xapi: host URL has no host")
	}
	path := strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/jsonrpc")
	return &url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimRight(path, "/")}, nil
}

// String and GoString identify the client without printing its session.
func (c *Client) String() string   { return "xapi.Client(" + c.URL() + ")" }
func (c *Client) GoString() string { return c.String() }

// URL returns the host's base URL, without credentials.
func (c *Client) URL() string { return c.base.String() }

// Address returns the host part of the URL (an IP or a name, no port): what
// xapi puts in HOST_IS_SLAVE.
func (c *Client) Address() string { return c.base.Hostname() }

// Login makes sure the client has a session, logging in if it has none.
// Calls log in by themselves; Login reports bad credentials early.
func (c *Client) Login(ctx context.Context) error {
	_, err := c.sessionRef(ctx, "")
	return err
}

// Logout ends the session, if any. A later call logs in again.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	sess := c.session
	c.session = ""
	c.mu.Unlock()
	if sess == "" {
		return nil
	}
	return c.logoutSession(ctx, sess)
}

// Close logs out and makes every later call fail with ErrClosed.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	err := c.Logout(ctx)
	if c.ownHTTP {
		c.t.http.CloseIdleConnections()
	}
	return err
}

// Call invokes a XenAPI method with the session ref prepended to args and
// returns the raw result. Secret args are revealed on the wire only. If the
// session has expired it logs in again and retries once.
func (c *Client) Call(ctx context.Context, method string, args ...any) (json.RawMessage, error) {
	return c.call(ctx, 0, method, args)
}

// call is Call with an optional timeout overriding Options.Timeout when ctx
// has no deadline.
func (c *Client) call(ctx context.Context, timeout time.Duration, method string, args []any) (json.RawMessage, error) {
	if err := ctx.Err(); err != nil { // do not start a login for nobody
		return nil, err
	}
	params, secrets := wireArgs(args)
	var stale SessionRef
	for attempt := 0; ; attempt++ {
		sess, err := c.sessionRef(ctx, stale)
		if err != nil {
			return nil, err
		}
		res, err := c.rpc(ctx, timeout, method, append([]any{sess}, params...), append(secrets, string(sess)))
		if err == nil || !IsSessionInvalid(err) || attempt > 0 {
			return res, err
		}
		c.log.Debug("session invalid, logging in again", "method", method)
		stale = sess
	}
}

// wireArgs reveals Secret arguments for the wire and remembers them so they
// can be scrubbed from whatever comes back.
func wireArgs(args []any) (params []any, secrets []string) {
	params = make([]any, len(args))
	for i, a := range args {
		if s, ok := a.(Secret); ok {
			params[i] = s.Reveal()
			secrets = append(secrets, s.Reveal())
			continue
		}
		params[i] = a
	}
	return params, secrets
}

// sessionRef returns a usable session. stale is a session the caller saw
// rejected: if it is still the current one, a new login replaces it; if
// another goroutine already replaced it, the replacement is returned.
func (c *Client) sessionRef(ctx context.Context, stale SessionRef) (SessionRef, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", ErrClosed
	}
	if c.session != "" && c.session != stale {
		sess := c.session
		c.mu.Unlock()
		return sess, nil
	}
	c.session = ""
	lc := c.inflight
	if lc == nil {
		lc = &loginCall{done: make(chan struct{})}
		c.inflight = lc
		go c.runLogin(lc)
	}
	c.mu.Unlock()

	select {
	case <-lc.done:
		return lc.sess, lc.err
	case <-ctx.Done():
		// The host has not answered the login in the caller's time: to
		// the caller that is a transport failure, like any other call.
		return "", &TransportError{URL: c.t.endpoint, Method: c.loginMethod(),
			Err: fmt.Errorf("waiting for login: %w", ctx.Err())}
	}
}

// runLogin performs a shared login. It is detached from any one caller's
// context (a caller giving up must not fail the others) and bounded by
// Options.Timeout instead.
func (c *Client) runLogin(lc *loginCall) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	sess, err := c.login(ctx)

	var drop SessionRef // a session nobody will use: log it out, not leak it
	c.mu.Lock()
	c.inflight = nil
	switch {
	case err != nil:
	case c.closed:
		drop, sess, err = sess, "", ErrClosed
	case c.session != "": // a Pool installed one meanwhile: keep that
		drop, sess = sess, c.session
	default:
		c.session = sess
	}
	c.mu.Unlock()

	lc.sess, lc.err = sess, err
	close(lc.done)
	if drop != "" {
		_ = c.logoutSession(ctx, drop)
	}
}

// login creates a session without installing it.
func (c *Client) login(ctx context.Context) (SessionRef, error) {
	pw := c.creds.Password.Reveal()
	params := []any{c.creds.Username, pw, apiVersion, c.opts.Originator}
	if c.slaveLocal {
		params = params[:2]
	}
	res, err := c.rpc(ctx, 0, c.loginMethod(), params, []string{pw})
	if err != nil {
		return "", err
	}
	var sess SessionRef
	if err := json.Unmarshal(res, &sess); err != nil || sess == "" {
		return "", &TransportError{URL: c.t.endpoint, Method: c.loginMethod(),
			Err: fmt.Errorf("%w: login result is not a session ref", ErrMalformedResponse)}
	}
	return sess, nil
}

func (c *Client) loginMethod() string {
	if c.slaveLocal {
		return "session.slave_local_login_with_password"
	}
	return "session.login_with_password"
}

func (c *Client) logoutSession(ctx context.Context, sess SessionRef) error {
	method := "session.logout"
	if c.slaveLocal {
		method = "session.local_logout"
	}
	_, err := c.rpc(ctx, 0, method, []any{sess}, []string{string(sess)})
	if IsSessionInvalid(err) { // already gone: that is what we wanted
		return nil
	}
	return err
}

// adoptSession installs a session obtained elsewhere (a Pool's probe). The
// session it replaces, if any, is returned for the caller to log out.
func (c *Client) adoptSession(sess SessionRef) (old SessionRef, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return "", false
	}
	old, c.session = c.session, sess
	return old, true
}

// rpc sends one request with a deadline, logs it, and returns errors with
// context and with secrets scrubbed from API failure params (a buggy or
// hostile server could echo them).
func (c *Client) rpc(ctx context.Context, timeout time.Duration, method string, params []any, secrets []string) (json.RawMessage, error) {
	if timeout <= 0 {
		timeout = c.opts.Timeout
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	res, err := c.t.roundTrip(ctx, method, params)
	elapsed := time.Since(start)
	if c.opts.Observe != nil {
		c.opts.Observe(method, elapsed, err)
	}
	if err == nil {
		c.log.Debug("call", "method", method, "duration", elapsed)
		return res, nil
	}
	if apiErr, ok := err.(*Error); ok {
		apiErr.Params = scrub(apiErr.Params, secrets)
		c.log.Debug("call failed", "method", method, "duration", elapsed, "code", apiErr.Code)
		return nil, fmt.Errorf("%s on %s: %w", method, c.base.Host, apiErr)
	}
	c.log.Debug("call failed", "method", method, "duration", elapsed, "error", err.Error())
	return nil, err
}

// scrub replaces any param that contains a secret. Short secrets are only
// matched exactly, so a one-letter password does not blank everything.
func scrub(params []string, secrets []string) []string {
	for i, p := range params {
		for _, s := range secrets {
			if s == "" {
				continue
			}
			if p == s || (len(s) >= 4 && strings.Contains(p, s)) {
				params[i] = redacted
				break
			}
		}
	}
	return params
}
