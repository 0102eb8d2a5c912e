// Package redfish fences a host through its BMC's Redfish service: it
// reads a ComputerSystem's PowerState and sends it a ForceOff reset.
//
// It speaks plain Redfish over HTTP Basic authentication (no session
// tokens: a fence is a handful of requests), one TCP connection per
// request (BMC web servers keep few connections, and fencing is rare).
//
// Failures are sorted so that the fencing orchestrator can act on them:
//
//   - a BMC that does not answer (connection refused, a timeout, a DNS
//     failure, a connection cut mid-answer) wraps fencing.ErrUnreachable,
//     so a BMC gone with its host is not retried forever (CloudStack
//     #13589). When the caller's context is cancelled (not timed out) the
//     error wraps context.Canceled instead;
//   - 401 and 403 wrap fencing.ErrAuth;
//   - a certificate that fails verification (wrong pin, unknown CA, wrong
//     name) is neither: it is a configuration or security problem;
//   - anything else the BMC answered is a plain error that carries the
//     HTTP status and the Redfish error message.
//
// Neither the password nor the Authorization header ever appears in an
// error or in String.
package redfish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/cloudstack-xenha/xenha-bridge/fencing"
)

// Config says how to reach one BMC and which system behind it to fence.
type Config struct {
	// URL is the BMC's base URL, e.g. https://10.0.0.50; the Redfish
	// service root is URL + "/redfish/v1" (a URL that already ends in
	// /redfish/v1 is taken as its base). It must not carry credentials.
	URL string
	// SystemID names the ComputerSystem (/redfish/v1/Systems/<SystemID>).
	// When empty, the only member of /redfish/v1/Systems is used, and it
	// is an error if there are several.
	SystemID string
	// Username and Password are sent with HTTP Basic authentication.
	Username, Password string
	// Timeout bounds each HTTP request (connect, TLS, answer); default 10s.
	// PowerState makes one request and PowerOff two or three (one more
	// for each the first time the system is looked up); the caller's
	// context bounds the whole.
	Timeout time.Duration
	// CAFile is a PEM bundle to trust instead of the system roots.
	CAFile string
	// PinSHA256 is the SHA-256 fingerprint of the BMC's leaf certificate
	// (hex, colons allowed, any case). When set without CAFile, the pin is
	// the verification (chain and name are not checked); with CAFile both
	// must pass.
	PinSHA256 string
	// AllowPlainHTTP permits an http:// URL (tests, a trusted management
	// link). Without it http:// is refused: Basic auth sends the password
	// with every request.
	AllowPlainHTTP bool
}

// DefaultTimeout bounds each HTTP request when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// maxBody bounds what is read of any answer: a ComputerSystem resource
// is a few KiB.
const maxBody = 1 << 20

// BMC is one Redfish ComputerSystem's power control. It is safe for
// concurrent use.
type BMC struct {
	base     *url.URL // scheme and host (and any path prefix), no trailing slash
	root     string   // the service root's path: base path + /redfish/v1
	systemID string
	user     string
	pass     string
	timeout  time.Duration
	client   *http.Client

	mu      sync.Mutex
	sysPath string // the system's escaped URL path, once known
}

var _ fencing.Device = (*BMC)(nil)

// New checks the configuration and builds the client. It does no I/O
// beyond reading CAFile.
func New(cfg Config) (*BMC, error) {
	raw := strings.TrimSpace(cfg.URL)
	if raw == "" {
		return nil, errors.New("redfish: no BMC URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL itself is not echoed: it might hold a password
		}
		return nil, fmt.Errorf("redfish: invalid BMC URL: %v", err)
	}
	if u.User != nil {
		return nil, errors.New("redfish: the BMC URL must not carry credentials: use Username and Password")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch u.Scheme {
	case "https":
	case "http":
		if !cfg.AllowPlainHTTP {
			return nil, fmt.Errorf("redfish: refusing plain http to %s (Basic auth would send the password in clear): use https", u.Host)
		}
		if cfg.CAFile != "" || cfg.PinSHA256 != "" {
			return nil, fmt.Errorf("redfish: a CA file or a certificate pin is given, but %s is plain http", u.Host)
		}
	default:
		return nil, fmt.Errorf("redfish: BMC URL scheme must be https or http, got %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("redfish: BMC URL has no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("redfish: BMC URL must not have a query or a fragment")
	}
	if strings.ContainsAny(cfg.SystemID, "/?#") || cfg.SystemID == "." || cfg.SystemID == ".." {
		return nil, fmt.Errorf("redfish: SystemID %q is not a single path segment", cfg.SystemID)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("redfish: negative Timeout %v", cfg.Timeout)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	prefix := strings.TrimSuffix(u.EscapedPath(), "/")
	prefix = strings.TrimSuffix(prefix, "/redfish/v1")
	base := &url.URL{Scheme: u.Scheme, Host: u.Host}
	if prefix != "" {
		p, err := url.Parse(prefix)
		if err != nil {
			return nil, fmt.Errorf("redfish: invalid BMC URL path: %v", err)
		}
		base.Path, base.RawPath = p.Path, p.RawPath
	}

	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	b := &BMC{
		base:     base,
		root:     prefix + "/redfish/v1",
		systemID: cfg.SystemID,
		user:     cfg.Username,
		pass:     cfg.Password,
		timeout:  timeout,
	}
	b.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil, // a BMC network is not behind a proxy
			DialContext:            dialer.DialContext,
			TLSClientConfig:        tc,
			TLSHandshakeTimeout:    timeout,
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 64 << 10,
		},
		// Follow redirects only within the BMC (the Authorization header
		// goes with them); any other is answered as the 3xx it is.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 || req.URL.Scheme != base.Scheme || req.URL.Host != base.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	if cfg.SystemID != "" {
		b.sysPath = b.root + "/Systems/" + url.PathEscape(cfg.SystemID)
	}
	return b, nil
}

// Driver names the protocol.
func (b *BMC) Driver() string { return "redfish" }

// String names the system, e.g. redfish://10.0.0.50/redfish/v1/Systems/1;
// "(auto)" stands for the id until the only member of the Systems
// collection has been looked up. It never holds credentials.
func (b *BMC) String() string {
	b.mu.Lock()
	p := b.sysPath
	b.mu.Unlock()
	if p == "" {
		p = b.root + "/Systems/(auto)"
	}
	return "redfish://" + b.base.Host + p
}

// PowerState reads the ComputerSystem's PowerState. "On" and "Paused" are
// PowerOn, "Off" is PowerOff. The transitional states count as on:
// "PoweringOn" is on its way up, and "PoweringOff" is on-going, not done:
// the host is PowerOn until the BMC says "Off". A missing or unknown value
// is PowerUnknown with an error.
func (b *BMC) PowerState(ctx context.Context) (fencing.PowerState, error) {
	st, err := b.powerState(ctx)
	if err != nil {
		return fencing.PowerUnknown, fmt.Errorf("redfish: power state of %s: %w", b, err)
	}
	return st, nil
}

func (b *BMC) powerState(ctx context.Context) (fencing.PowerState, error) {
	_, sys, err := b.fetchSystem(ctx)
	if err != nil {
		return fencing.PowerUnknown, err
	}
	return parsePowerState(sys.PowerState)
}

func parsePowerState(s string) (fencing.PowerState, error) {
	switch {
	case strings.EqualFold(s, "Off"):
		return fencing.PowerOff, nil
	case strings.EqualFold(s, "On"), strings.EqualFold(s, "PoweringOn"),
		strings.EqualFold(s, "PoweringOff"), strings.EqualFold(s, "Paused"):
		return fencing.PowerOn, nil
	case s == "":
		return fencing.PowerUnknown, errors.New("the system resource has no PowerState")
	}
	return fencing.PowerUnknown, fmt.Errorf("unknown PowerState %q", clip(s, 64))
}

// PowerOff sends {"ResetType":"ForceOff"} to the system's reset action:
// the target named in its "Actions" → "#ComputerSystem.Reset" → "target",
// or <system>/Actions/ComputerSystem.Reset when the resource names none.
// Any 2xx answer means the request was accepted; the power may take a
// moment to fall, so the caller verifies by reading PowerState (this
// method does not loop).
//
// A refusal other than 401/403 (many BMCs answer 409 Conflict, some 400,
// to a power-off of a host that is already off: CloudStack #13377) is
// followed by one read of PowerState: Off is success, anything else is an
// error carrying the refusal.
func (b *BMC) PowerOff(ctx context.Context) error {
	if err := b.powerOff(ctx); err != nil {
		return fmt.Errorf("redfish: power off %s: %w", b, err)
	}
	return nil
}

func (b *BMC) powerOff(ctx context.Context) error {
	path, sys, err := b.fetchSystem(ctx)
	if err != nil {
		return err
	}
	target := sys.Actions.Reset.Target
	if target == "" {
		self := sys.ODataID
		if self == "" {
			self = path
		}
		target = strings.TrimSuffix(self, "/") + "/Actions/ComputerSystem.Reset"
	}
	u, err := b.resolve(target)
	if err != nil {
		return fmt.Errorf("reset target: %w", err)
	}
	resp, err := b.do(ctx, http.MethodPost, u, []byte(`{"ResetType":"ForceOff"}`))
	if err != nil {
		return err
	}
	if resp.ok() {
		return nil
	}
	refusal := resp.err()
	st, err := b.powerState(ctx)
	if err != nil {
		return fmt.Errorf("%w; then reading the power state: %w", refusal, err)
	}
	if st == fencing.PowerOff {
		return nil // already off: what was asked for
	}
	return fmt.Errorf("%w (the system is still %s)", refusal, st)
}

// systemResource is what is read of a ComputerSystem.
type systemResource struct {
	ODataID    string `json:"@odata.id"`
	PowerState string `json:"PowerState"`
	Actions    struct {
		Reset struct {
			Target string `json:"target"`
		} `json:"#ComputerSystem.Reset"`
	} `json:"Actions"`
}

// fetchSystem GETs the ComputerSystem, looking its path up first if needed.
func (b *BMC) fetchSystem(ctx context.Context) (string, systemResource, error) {
	var sys systemResource
	path, err := b.systemPath(ctx)
	if err != nil {
		return "", sys, err
	}
	u, err := b.resolve(path)
	if err != nil {
		return "", sys, err
	}
	if err := b.getJSON(ctx, u, &sys); err != nil {
		return "", sys, err
	}
	return path, sys, nil
}

// systemPath is the configured system's path, or the only member of the
// Systems collection.
func (b *BMC) systemPath(ctx context.Context) (string, error) {
	b.mu.Lock()
	p := b.sysPath
	b.mu.Unlock()
	if p != "" {
		return p, nil
	}
	u, err := b.resolve(b.root + "/Systems")
	if err != nil {
		return "", err
	}
	var coll struct {
		Members []struct {
			ODataID string `json:"@odata.id"`
		} `json:"Members"`
	}
	if err := b.getJSON(ctx, u, &coll); err != nil {
		return "", err
	}
	switch n := len(coll.Members); {
	case n == 0:
		return "", fmt.Errorf("%s lists no ComputerSystem", u.EscapedPath())
	case n > 1:
		ids := make([]string, 0, 8)
		for i, m := range coll.Members {
			if i == 8 {
				ids = append(ids, "…")
				break
			}
			ids = append(ids, clip(m.ODataID, 128))
		}
		return "", fmt.Errorf("%s lists %d systems (%s): set SystemID", u.EscapedPath(), n, strings.Join(ids, ", "))
	}
	m, err := b.resolve(coll.Members[0].ODataID)
	if err != nil || coll.Members[0].ODataID == "" {
		return "", fmt.Errorf("%s: member with an unusable @odata.id %q", u.EscapedPath(), clip(coll.Members[0].ODataID, 128))
	}
	p = m.EscapedPath()
	b.mu.Lock()
	b.sysPath = p
	b.mu.Unlock()
	return p, nil
}

// resolve turns an @odata.id or action target into a URL on this BMC.
func (b *BMC) resolve(ref string) (*url.URL, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("unusable link %q", clip(ref, 128))
	}
	u := b.base.ResolveReference(r)
	if u.Scheme != b.base.Scheme || u.Host != b.base.Host || u.User != nil {
		return nil, fmt.Errorf("link %q leads off the BMC", clip(ref, 128))
	}
	u.Fragment = ""
	return u, nil
}

func (b *BMC) getJSON(ctx context.Context, u *url.URL, v any) error {
	resp, err := b.do(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if !resp.ok() {
		return resp.err()
	}
	if err := json.Unmarshal(resp.body, v); err != nil {
		return fmt.Errorf("GET %s: the answer is not a Redfish resource: %v", u.EscapedPath(), err)
	}
	return nil
}

// response is a BMC's answer, read in full (bounded).
type response struct {
	method string
	path   string
	status int
	body   []byte
}

func (r *response) ok() bool { return r.status >= 200 && r.status < 300 }

func (r *response) err() error {
	return &statusError{method: r.method, path: r.path, status: r.status, msg: redfishMessage(r.body)}
}

// statusError is an answer that is not a success.
type statusError struct {
	method, path string
	status       int
	msg          string // the Redfish error message, cleaned and shortened
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d %s", e.method, e.path, e.status, http.StatusText(e.status))
	if e.msg != "" {
		s += ": " + e.msg
	}
	return s
}

// do sends one request under its own timeout and reads the whole answer.
// Transport failures wrap fencing.ErrUnreachable; 401 and 403 wrap
// fencing.ErrAuth.
func (b *BMC) do(ctx context.Context, method string, u *url.URL, body []byte) (*response, error) {
	rctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(rctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", method, u.EscapedPath(), err)
	}
	if b.user != "" || b.pass != "" {
		req.SetBasicAuth(b.user, b.pass)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hr, err := b.client.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	data, err := io.ReadAll(io.LimitReader(hr.Body, maxBody+1))
	hr.Body.Close()
	if err != nil {
		return nil, transportError(ctx, fmt.Errorf("%s %s: reading the answer: %w", method, u.EscapedPath(), err))
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("%s %s: answer larger than %d bytes", method, u.EscapedPath(), maxBody)
	}
	resp := &response{method: method, path: u.EscapedPath(), status: hr.StatusCode, body: data}
	if hr.StatusCode == http.StatusUnauthorized || hr.StatusCode == http.StatusForbidden {
		return nil, fmt.Errorf("%w: %w", fencing.ErrAuth, resp.err())
	}
	return resp, nil
}

// transportError sorts a failure to get an answer. ctx is the caller's.
func transportError(ctx context.Context, err error) error {
	if isTLSVerification(err) {
		return fmt.Errorf("TLS verification failed: %w", err)
	}
	cerr := ctx.Err()
	if cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", err, cerr)
	}
	if errors.Is(cerr, context.Canceled) {
		return err // the caller gave up; the BMC is not to blame
	}
	return fmt.Errorf("%w: %w", fencing.ErrUnreachable, err)
}

// redfishMessage extracts the message of a Redfish error answer
// ({"error":{"code":…,"message":…,"@Message.ExtendedInfo":[…]}}), or the
// start of a non-JSON body, cleaned of control characters and shortened.
func redfishMessage(body []byte) string {
	var e struct {
		Error struct {
			Code     string `json:"code"`
			Message  string `json:"message"`
			Extended []struct {
				MessageID string `json:"MessageId"`
				Message   string `json:"Message"`
			} `json:"@Message.ExtendedInfo"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil {
		parts := []string{}
		if e.Error.Code != "" {
			parts = append(parts, e.Error.Code)
		}
		if e.Error.Message != "" {
			parts = append(parts, e.Error.Message)
		}
		for _, x := range e.Error.Extended {
			if x.Message != "" && x.Message != e.Error.Message {
				parts = append(parts, x.Message)
			} else if x.MessageID != "" && x.MessageID != e.Error.Code {
				parts = append(parts, x.MessageID)
			}
		}
		if len(parts) > 0 {
			return clip(strings.Join(parts, ": "), 300)
		}
	}
	return clip(string(body), 200)
}

// clip removes control characters, collapses white space and shortens s
// to n runes.
func clip(s string, n int) string {
	var sb strings.Builder
	space := false
	count := 0
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = sb.Len() > 0
			continue
		}
		if count >= n {
			sb.WriteString("…")
			break
		}
		if space {
			sb.WriteByte(' ')
			count++
			space = false
		}
		sb.WriteRune(r)
		count++
	}
	return sb.String()
}
