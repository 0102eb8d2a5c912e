package xapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// ErrMasterLost: no member answers as master.
var ErrMasterLost = errors.New("xapi: no pool member answers as master")

// ErrMultipleMasters: more than one member answers as master.
var ErrMultipleMasters = errors.New("xapi: several pool members answer as master")

// MasterLostError is ErrMasterLost with what each member said.
type MasterLostError struct{ Probes []Probe }

func (e *MasterLostError) Error() string {
	return ErrMasterLost.Error() + " (" + joinProbes(e.Probes) + ")"
}

func (e *MasterLostError) Is(target error) bool { return target == ErrMasterLost }

// MultipleMastersError is ErrMultipleMasters with the members claiming to
// be master (their URLs) and every probe.
type MultipleMastersError struct {
	Masters []string
	Probes  []Probe
}

func (e *MultipleMastersError) Error() string {
	return ErrMultipleMasters.Error() + ": " + strings.Join(e.Masters, ", ") + " (" + joinProbes(e.Probes) + ")"
}

func (e *MultipleMastersError) Is(target error) bool { return target == ErrMultipleMasters }

func joinProbes(ps []Probe) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

// Pool follows the master of a pool. It knows every member's address, so
// it can find the new master after a failover even when the old one is
// dead. It is safe for concurrent use.
type Pool struct {
	members []string // normalised URLs, in the order given
	creds   Credentials
	opts    Options
	log     hclog.Logger

	search chan struct{} // one master search at a time

	mu         sync.Mutex
	clients    map[string]*Client // by URL: members, and masters found by redirect
	master     *Client
	lastMaster string
	searchGen  uint64 // bumped by each search that ran to a verdict
	searchErr  error  // that verdict, shared with callers who waited for it
	// hintGen is bumped by Expect: a verdict reached by a search that
	// started before the hint is not shared (a master was just made).
	hintGen, searchHint uint64
	closed              bool
}

// NewPool returns a Pool over members, the XAPI URLs of every pool member.
// It does not connect.
func NewPool(members []string, creds Credentials, opts Options) (*Pool, error) {
	opts = opts.withDefaults()
	p := &Pool{
		creds:   creds,
		opts:    opts,
		log:     opts.Logger.Named("xapi").Named("pool"),
		search:  make(chan struct{}, 1),
		clients: make(map[string]*Client),
	}
	for _, m := range members {
		c, err := NewClient(m, creds, opts)
		if err != nil {
			return nil, fmt.Errorf("xapi: pool member: %w", err)
		}
		if _, dup := p.clients[c.URL()]; dup {
			continue
		}
		p.clients[c.URL()] = c
		p.members = append(p.members, c.URL())
	}
	if len(p.members) == 0 {
		return nil, errors.New("xapi: a pool needs at least one member URL")
	}
	return p, nil
}

// String and GoString identify the pool without printing its credentials.
func (p *Pool) String() string   { return "xapi.Pool(" + strings.Join(p.members, ", ") + ")" }
func (p *Pool) GoString() string { return p.String() }

// Members returns the member URLs (normalised).
func (p *Pool) Members() []string { return append([]string(nil), p.members...) }

// Member returns the Pool's client for one member (by URL), whatever its
// role: a master answers normal calls through it. The Pool owns it.
func (p *Pool) Member(rawURL string) (*Client, error) { return p.client(rawURL) }

// ProbeMember asks one member to log in and reports what it said, like
// Probe does for all of them.
func (p *Pool) ProbeMember(ctx context.Context, rawURL string) Probe {
	c, err := p.client(rawURL)
	if err != nil {
		return Probe{URL: rawURL, State: ProbeError, Err: err}
	}
	results := []probed{p.probeOne(ctx, c)}
	p.dropSessions(results, nil)
	return results[0].Probe
}

// Probe asks every member, concurrently, to log in and reports what each
// said. Sessions opened by the probes are logged out.
func (p *Pool) Probe(ctx context.Context) []Probe {
	results := p.probeClients(ctx, p.memberClients())
	p.dropSessions(results, nil)
	return probes(results)
}

// Master returns a client for the current master, finding it if needed.
// The client belongs to the Pool: do not Close it.
func (p *Pool) Master(ctx context.Context) (*Client, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if m := p.master; m != nil {
		p.mu.Unlock()
		return m, nil
	}
	gen := p.searchGen
	p.mu.Unlock()

	select {
	case p.search <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("xapi: waiting for the master search: %w", ctx.Err())
	}
	defer func() { <-p.search }()

	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return nil, ErrClosed
	case p.master != nil:
		m := p.master
		p.mu.Unlock()
		return m, nil
	case p.searchGen != gen && p.searchHint == p.hintGen:
		// A search finished while we waited and found nothing: its
		// verdict is fresh, so do not probe everyone again.
		err := p.searchErr
		p.mu.Unlock()
		return nil, err
	}
	hint := p.hintGen
	p.mu.Unlock()

	c, err := p.find(ctx)

	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.master, p.lastMaster = c, c.URL()
		p.log.Info("pool master found", "url", c.URL())
		return c, nil
	}
	if ctx.Err() == nil { // a verdict, not our caller giving up
		p.searchGen++
		p.searchErr = err
		p.searchHint = hint
	}
	return nil, err
}

// Expect tells the Pool that the member at rawURL was just made master:
// the next search starts there, and no verdict of a search that began
// before this call is shared with callers waiting for the master.
func (p *Pool) Expect(rawURL string) {
	c, err := p.client(rawURL)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.lastMaster = c.URL()
	p.hintGen++
	p.mu.Unlock()
}

// Invalidate forgets the master; the next Master call looks again,
// starting with the last one known.
func (p *Pool) Invalidate() {
	p.mu.Lock()
	p.master = nil
	p.mu.Unlock()
}

// forget drops c as master unless another goroutine already replaced it.
func (p *Pool) forget(c *Client) {
	p.mu.Lock()
	if p.master == c {
		p.master = nil
	}
	p.mu.Unlock()
}

// Do runs fn with the master's client. If fn fails because that host is no
// longer master (HOST_IS_SLAVE) or cannot be reached, Do finds the master
// again and runs fn once more.
func (p *Pool) Do(ctx context.Context, fn func(*Client) error) error {
	c, err := p.Master(ctx)
	if err != nil {
		return err
	}
	err = fn(c)
	if err == nil || ctx.Err() != nil || !(IsCode(err, CodeHostIsSlave) || IsUnreachable(err)) {
		return err
	}
	p.log.Info("master lost, looking again", "url", c.URL(), "error", err.Error())
	p.forget(c)
	c2, err2 := p.Master(ctx)
	if err2 != nil {
		return fmt.Errorf("xapi: after %v: %w", err, err2)
	}
	return fn(c2)
}

// SlaveLocal returns a new slave-local client for the host at url (usually
// a member), for emergency calls. The caller owns it and must Close it.
func (p *Pool) SlaveLocal(url string) (*Client, error) {
	return NewSlaveLocalClient(url, p.creds, p.opts)
}

// Close logs out every session the Pool holds. Later calls fail with
// ErrClosed.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.master = nil
	clients := make([]*Client, 0, len(p.clients))
	for _, c := range p.clients {
		clients = append(clients, c)
	}
	p.mu.Unlock()

	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Close(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// find looks for the master: first by following the last known master
// (and its redirects), then by probing every member.
func (p *Pool) find(ctx context.Context) (*Client, error) {
	p.mu.Lock()
	last := p.lastMaster
	p.mu.Unlock()
	var known []probed
	if last != "" {
		c, first, err := p.follow(ctx, last)
		if c != nil || err != nil {
			return c, err
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("xapi: finding the master: %w", err)
		}
		if first.State == ProbeUnreachable {
			// Just waited out its timeout: a silent host is not asked
			// twice in one search.
			known = append(known, first)
		}
	}
	return p.probeAll(ctx, known)
}

// follow probes url and follows HOST_IS_SLAVE redirects. It returns
// (nil, nil) when the trail goes cold, so that every member gets probed;
// an auth failure from a master is final. first is what url itself said.
func (p *Pool) follow(ctx context.Context, url string) (_ *Client, first probed, _ error) {
	seen := map[string]bool{}
	for hops := 0; hops <= len(p.members) && !seen[url] && ctx.Err() == nil; hops++ {
		seen[url] = true
		c, err := p.client(url)
		if err != nil {
			return nil, first, nil
		}
		r := p.probeOne(ctx, c)
		if hops == 0 {
			first = r
		}
		switch r.State {
		case ProbeMaster:
			return p.adopt(r), first, nil
		case ProbeAuthFailed:
			return nil, first, r.Err
		case ProbeSlave:
			if r.MasterAddress == "" {
				return nil, first, nil
			}
			url = p.resolve(r.MasterAddress, c)
		default:
			return nil, first, nil
		}
	}
	return nil, first, nil
}

// probeAll probes every member (but those known, whose answers it
// reuses), plus any non-member the slaves name as their master, and
// decides.
func (p *Pool) probeAll(ctx context.Context, known []probed) (*Client, error) {
	var ask []*Client
	for _, c := range p.memberClients() {
		if !slices.ContainsFunc(known, func(k probed) bool { return k.URL == c.URL() }) {
			ask = append(ask, c)
		}
	}
	results := append(known, p.probeClients(ctx, ask)...)
	if extra := p.redirectTargets(results); len(extra) > 0 {
		results = append(results, p.probeClients(ctx, extra)...)
	}

	// A member that rejects the credentials is a master too: a slave
	// answers HOST_IS_SLAVE before checking them.
	var claimants []*probed
	for i := range results {
		if s := results[i].State; s == ProbeMaster || s == ProbeAuthFailed {
			claimants = append(claimants, &results[i])
		}
	}
	switch {
	case len(claimants) == 1 && claimants[0].State == ProbeMaster:
		p.dropSessions(results, claimants[0])
		return p.adopt(*claimants[0]), nil
	case len(claimants) == 1:
		return nil, claimants[0].Err
	case len(claimants) > 1:
		p.dropSessions(results, nil)
		urls := make([]string, len(claimants))
		for i, c := range claimants {
			urls[i] = c.URL
		}
		p.log.Warn("several pool members answer as master", "masters", strings.Join(urls, ", "))
		return nil, &MultipleMastersError{Masters: urls, Probes: probes(results)}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("xapi: finding the master: %w", err)
	}
	p.log.Warn("no pool member answers as master", "probes", joinProbes(probes(results)))
	return nil, &MasterLostError{Probes: probes(results)}
}

// redirectTargets returns clients for the masters named by slaves that
// are not members (and so were not probed).
func (p *Pool) redirectTargets(results []probed) []*Client {
	probed := map[string]bool{}
	for _, r := range results {
		probed[r.URL] = true
	}
	var out []*Client
	for _, r := range results {
		if r.State != ProbeSlave || r.MasterAddress == "" {
			continue
		}
		u := p.resolve(r.MasterAddress, r.client)
		if probed[u] {
			continue
		}
		probed[u] = true
		if c, err := p.client(u); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// adopt installs a probe's session in its client and returns the client.
// The client's previous session, if any, is logged out.
func (p *Pool) adopt(r probed) *Client {
	old, ok := r.client.adoptSession(r.session)
	if !ok { // closed meanwhile
		go p.logoutQuietly(r.client, r.session)
		return r.client
	}
	if old != "" && old != r.session {
		go p.logoutQuietly(r.client, old)
	}
	return r.client
}

// resolve maps a master address from HOST_IS_SLAVE to a URL: the member
// whose host is that address, else the redirecting host's URL with the
// address swapped in (same scheme, port and path).
func (p *Pool) resolve(addr string, from *Client) string {
	for _, m := range p.members {
		if u, err := url.Parse(m); err == nil && strings.EqualFold(u.Hostname(), addr) {
			return m
		}
	}
	host := addr
	if port := from.base.Port(); port != "" {
		host = net.JoinHostPort(addr, port)
	} else if strings.Contains(addr, ":") {
		host = "[" + addr + "]"
	}
	u := url.URL{Scheme: from.base.Scheme, Host: host, Path: from.base.Path}
	return u.String()
}

// client returns the cached client for url, creating it for a non-member.
func (p *Pool) client(rawURL string) (*Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[rawURL]; ok {
		return c, nil
	}
	c, err := NewClient(rawURL, p.creds, p.opts)
	if err != nil {
		return nil, err
	}
	if existing, ok := p.clients[c.URL()]; ok {
		return existing, nil
	}
	p.clients[c.URL()] = c
	return c, nil
}

func (p *Pool) memberClients() []*Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Client, len(p.members))
	for i, m := range p.members {
		out[i] = p.clients[m]
	}
	return out
}
