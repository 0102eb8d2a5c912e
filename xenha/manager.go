package xenha

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
)

// PoolSpec is what the bridge needs to watch a pool.
type PoolSpec struct {
	Name           string
	Members        []string // XAPI URLs of every member
	Credentials    xapi.Credentials
	Policy         Policy
	StorageTimeout time.Duration // default 120 s (open-iscsi's replacement_timeout)
	ProbeInterval  time.Duration // every member, default 30 s
	// MasterProbeInterval is how often the followed master is asked a
	// cheap question (default 2 s, never more than ProbeInterval): a dead
	// master is silent, and this is what notices it.
	MasterProbeInterval time.Duration
	TLS                 xapi.TLSOptions
	Source              string // "config" or "api"
}

// Defaults for PoolSpec.
const (
	DefaultStorageTimeout      = 120 * time.Second
	DefaultProbeInterval       = 30 * time.Second
	DefaultMasterProbeInterval = 2 * time.Second
)

var poolName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

// validate checks a spec and fills its defaults.
func (s *PoolSpec) validate() error {
	if !poolName.MatchString(s.Name) {
		return invalid("name", "want 1 to 63 letters, digits, '.', '_' or '-', got %q", s.Name)
	}
	if len(s.Members) == 0 {
		return invalid("members", "list the XAPI URL of every pool member")
	}
	seen := map[string]bool{}
	for i, m := range s.Members {
		u, err := url.Parse(m)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return invalid("members", "member %d: want an http(s) URL without credentials, got %q", i, redactURL(m))
		}
		if u.Scheme == "http" && !s.TLS.AllowPlainHTTP {
			return invalid("members", "member %d: %s is plain http; set allow_plain_http for a test pool", i, redactURL(m))
		}
		if seen[m] {
			return invalid("members", "member %d: %s is listed twice", i, m)
		}
		seen[m] = true
	}
	if s.Credentials.Username == "" {
		return invalid("username", "required")
	}
	if s.Credentials.Password == "" {
		return invalid("password", "required")
	}
	p, err := ParsePolicy(string(s.Policy))
	if err != nil {
		return invalid("policy", "%v", err)
	}
	s.Policy = p
	switch {
	case s.StorageTimeout < 0:
		return invalid("storage_timeout", "must not be negative")
	case s.StorageTimeout == 0:
		s.StorageTimeout = DefaultStorageTimeout
	}
	switch {
	case s.ProbeInterval < 0:
		return invalid("probe_interval", "must not be negative")
	case s.ProbeInterval == 0:
		s.ProbeInterval = DefaultProbeInterval
	}
	switch {
	case s.MasterProbeInterval < 0:
		return invalid("master_probe_interval", "must not be negative")
	case s.MasterProbeInterval == 0:
		s.MasterProbeInterval = DefaultMasterProbeInterval
	}
	s.MasterProbeInterval = min(s.MasterProbeInterval, s.ProbeInterval)
	return nil
}

// probeTimeout bounds the watchers' master checks as the probes are bounded.
func (m *Manager) probeTimeout() time.Duration {
	if d := m.opts.XAPI.ProbeTimeout; d > 0 {
		return d
	}
	return xapi.DefaultProbeTimeout
}

// redactURL keeps user info out of error messages.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = url.User("[redacted]")
		return u.String()
	}
	return raw
}

// sameSpec tells whether attaching again is a no-op.
func sameSpec(a, b PoolSpec) bool {
	return a.Name == b.Name && sameMembers(a.Members, b.Members) && a.Credentials == b.Credentials &&
		a.Policy == b.Policy && a.StorageTimeout == b.StorageTimeout && a.ProbeInterval == b.ProbeInterval &&
		a.MasterProbeInterval == b.MasterProbeInterval &&
		a.TLS.CAFile == b.TLS.CAFile && string(a.TLS.CAPEM) == string(b.TLS.CAPEM) &&
		a.TLS.PinSHA256 == b.TLS.PinSHA256 && a.TLS.AllowPlainHTTP == b.TLS.AllowPlainHTTP
}

// sameMembers compares member lists as sets: the order carries no meaning.
func sameMembers(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// followsHosts reports whether next may replace cur in place: both were
// attached through the API (CloudStack hands its cluster over again when
// its hosts change or a password is rotated), only the members or the
// credentials differ, and at least one member stays: hosts come and go one
// at a time, while a list with none in common is another pool under a
// taken name (two clusters named alike), which must not take this one's
// place. A pool from the configuration file changes only there; any other
// difference needs a detach first.
func followsHosts(cur, next PoolSpec) bool {
	if cur.Source != "api" || next.Source != "api" ||
		!slices.ContainsFunc(next.Members, func(m string) bool { return slices.Contains(cur.Members, m) }) {
		return false
	}
	next.Members, next.Credentials = cur.Members, cur.Credentials
	return sameSpec(cur, next)
}

// Options tune a Manager.
type Options struct {
	Logger           hclog.Logger
	Retention        int           // events kept for resuming (default 10000)
	SubscriberBuffer int           // per-stream queue (default 1024)
	PollTimeout      time.Duration // event.from long-poll (default 30 s)
	XAPI             xapi.Options  // timeouts for the XAPI clients (TLS comes per pool)
	// AttachWait bounds how long Attach waits for the first observation.
	AttachWait time.Duration // default 5 s
	// Epochs keeps each pool's epoch across restarts (nil: memory only).
	Epochs EpochStore
}

// EpochStore keeps epochs durable, and shares them between the bridges
// of several management servers; journal.Store is one.
type EpochStore interface {
	Epoch(pool string) (uint64, error)
	AdvanceEpoch(pool, state string, current uint64) (uint64, error)
}

// Manager owns the attached pools.
type Manager struct {
	opts Options
	log  hclog.Logger
	hub  *Hub

	mu     sync.RWMutex
	pools  map[string]*watcher
	byUUID map[string]string
	closed bool

	replacing sync.Mutex    // one watcher replacement at a time (never held with mu)
	lineages  atomic.Uint64 // numbers each attach; a replacement keeps its number
}

// NewManager starts with no pool.
func NewManager(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Retention <= 0 {
		opts.Retention = 10000
	}
	if opts.SubscriberBuffer <= 0 {
		opts.SubscriberBuffer = 1024
	}
	if opts.PollTimeout <= 0 {
		opts.PollTimeout = 30 * time.Second
	}
	if opts.AttachWait <= 0 {
		opts.AttachWait = 5 * time.Second
	}
	return &Manager{
		opts: opts, log: opts.Logger, hub: NewHub(opts.Retention, opts.SubscriberBuffer),
		pools: map[string]*watcher{}, byUUID: map[string]string{},
	}
}

// Hub is where the pools' events are published.
func (m *Manager) Hub() *Hub { return m.hub }

// Attach starts watching a pool and waits (up to AttachWait or ctx) for
// its first observation. Attaching the same spec again is a no-op
// (created false); so is one that only changes the members or credentials
// of a pool attached through the API, except that its watcher restarts
// with them (as after a join). Any other spec under a taken name is
// ErrPoolExists.
func (m *Manager) Attach(ctx context.Context, spec PoolSpec) (*PoolView, bool, error) {
	if err := spec.validate(); err != nil {
		return nil, false, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, false, ErrClosed
	}
	if w, ok := m.pools[spec.Name]; ok {
		switch {
		case sameSpec(w.spec, spec):
			m.mu.Unlock()
			return w.view.Load(), false, nil
		case followsHosts(w.spec, spec):
			m.mu.Unlock()
			nw, err := m.replace(spec.Name, func(cur *watcher) (PoolSpec, error) {
				if !followsHosts(cur.spec, spec) {
					return PoolSpec{}, ErrPoolExists // changed meanwhile
				}
				return spec, keepsTheMaster(cur, spec)
			})
			if err != nil {
				return nil, false, err
			}
			m.log.Info("pool attached again with other members or credentials", "pool", spec.Name,
				"members", len(spec.Members), "before", len(w.spec.Members))
			return nw.view.Load(), false, nil
		default:
			m.mu.Unlock()
			return nil, false, ErrPoolExists
		}
	}
	xo := m.opts.XAPI
	xo.TLS = spec.TLS
	xo.Logger = m.log.With("pool", spec.Name)
	pool, err := xapi.NewPool(spec.Members, spec.Credentials, xo)
	if err != nil {
		m.mu.Unlock()
		return nil, false, invalid("members", "%v", err)
	}
	var epoch uint64
	if m.opts.Epochs != nil {
		if epoch, err = m.opts.Epochs.Epoch(spec.Name); err != nil {
			m.mu.Unlock()
			return nil, false, fmt.Errorf("pool %s: reading its epoch: %w", spec.Name, err)
		}
	}
	w := newWatcher(spec, pool, m.hub, m.log.Named("pool").With("pool", spec.Name), m.opts.PollTimeout, m.setUUID)
	w.epoch, w.epochs = epoch, m.opts.Epochs
	w.lineage = m.lineages.Add(1)
	w.probeTimeout = m.probeTimeout()
	m.pools[spec.Name] = w
	m.mu.Unlock()
	w.start()
	m.log.Info("pool attached", "pool", spec.Name, "members", len(spec.Members), "policy", spec.Policy, "source", spec.Source)

	wait, cancel := context.WithTimeout(ctx, m.opts.AttachWait)
	defer cancel()
	select {
	case <-w.observed:
	case <-wait.Done():
	}
	return w.view.Load(), true, nil
}

func (m *Manager) setUUID(name, uuid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.pools[name]; ok && uuid != "" {
		m.byUUID[uuid] = name
	}
}

// Detach stops watching a pool.
func (m *Manager) Detach(id string) error {
	m.mu.Lock()
	name, ok := m.resolve(id)
	if !ok {
		m.mu.Unlock()
		return unknownPool(id)
	}
	w := m.pools[name]
	delete(m.pools, name)
	for uuid, n := range m.byUUID {
		if n == name {
			delete(m.byUUID, uuid)
		}
	}
	m.mu.Unlock()
	w.stop()
	w.retire()
	m.log.Info("pool detached", "pool", name)
	return nil
}

// resolve maps a name or pool UUID to the name. Call with m.mu held.
func (m *Manager) resolve(id string) (string, bool) {
	if _, ok := m.pools[id]; ok {
		return id, true
	}
	name, ok := m.byUUID[id]
	return name, ok
}

// Resolve maps a pool name or UUID to the attached name.
func (m *Manager) Resolve(id string) (string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if name, ok := m.resolve(id); ok {
		return name, nil
	}
	return "", unknownPool(id)
}

// Pool returns the current view of a pool, by name or UUID.
func (m *Manager) Pool(id string) (*PoolView, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	name, ok := m.resolve(id)
	if !ok {
		return nil, unknownPool(id)
	}
	return m.pools[name].view.Load(), nil
}

// Pools returns every pool's view, sorted by name.
func (m *Manager) Pools() []*PoolView {
	m.mu.RLock()
	out := make([]*PoolView, 0, len(m.pools))
	for _, w := range m.pools {
		out = append(out, w.view.Load())
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Subscribe streams one pool's events (id "" for all pools).
func (m *Manager) Subscribe(id string, after uint64, incarnation string) (*Subscription, error) {
	name := ""
	if id != "" {
		var err error
		if name, err = m.Resolve(id); err != nil {
			return nil, err
		}
	}
	return m.hub.Subscribe(name, after, incarnation)
}

// Close detaches every pool, then ends every event subscription (its
// Err is ErrClosed) and refuses new ones: a stream of a closed manager
// would otherwise wait forever, holding its queue.
func (m *Manager) Close() {
	defer m.hub.Close() // after the watchers stopped: their last events are delivered first
	m.mu.Lock()
	m.closed = true
	ws := make([]*watcher, 0, len(m.pools))
	for _, w := range m.pools {
		ws = append(ws, w)
	}
	m.pools = map[string]*watcher{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); w.stop(); w.retire() }()
	}
	wg.Wait()
}

// Handle is what decisions (fencing, election) need of one pool: its
// current view, XAPI on its master and on each member, and its events.
type Handle struct {
	m     *Manager
	name  string
	first *watcher
}

// w is the pool's current watcher: a replacement (new members or
// credentials) is followed; a detached pool, or another pool attached
// since under the same name, is not.
func (h *Handle) w() *watcher {
	h.m.mu.RLock()
	cur, ok := h.m.pools[h.name]
	h.m.mu.RUnlock()
	if ok && cur.lineage == h.first.lineage {
		return cur
	}
	return h.first
}

// Handle returns the handle of a pool, by name or UUID.
func (m *Manager) Handle(id string) (*Handle, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	name, ok := m.resolve(id)
	if !ok {
		return nil, unknownPool(id)
	}
	return &Handle{m: m, name: name, first: m.pools[name]}, nil
}

// View is the pool's current view.
func (h *Handle) View() *PoolView { return h.w().view.Load() }

// Spec is how the pool was attached.
func (h *Handle) Spec() PoolSpec { return h.w().spec }

// Do runs fn on the pool master's XAPI, following the master once if it moved.
func (h *Handle) Do(ctx context.Context, fn func(*xapi.Client) error) error {
	return h.w().pool.Do(ctx, fn)
}

// MemberURL finds the XAPI URL of the member with this management address.
func (h *Handle) MemberURL(address string) (string, bool) {
	for _, m := range h.w().spec.Members {
		if urlHost(m) == address {
			return m, true
		}
	}
	return "", false
}

// ProbeAll asks every member to log in, concurrently.
func (h *Handle) ProbeAll(ctx context.Context) []xapi.Probe { return h.w().pool.Probe(ctx) }

// SlaveLocal returns a slave-local client for the member with this
// management address (for emergency calls); the caller closes it.
func (h *Handle) SlaveLocal(address string) (*xapi.Client, error) {
	u, ok := h.MemberURL(address)
	if !ok {
		return nil, fmt.Errorf("no member with address %s", address)
	}
	return h.w().pool.SlaveLocal(u)
}

// Member returns a client for the member with this management address
// (normal calls work on it only if it is a master). The pool owns it.
func (h *Handle) Member(address string) (*xapi.Client, error) {
	u, ok := h.MemberURL(address)
	if !ok {
		return nil, fmt.Errorf("no member with address %s", address)
	}
	return h.w().pool.Member(u)
}

// Refresh forgets the cached master so the next Do looks again, and wakes
// the watcher so the view follows a master the bridge just made.
func (h *Handle) Refresh() {
	w := h.w()
	w.pool.Invalidate()
	w.wakeUp()
}

// MadeMaster tells the pool that the bridge just made the member with this
// management address master: searches start there, a search already under
// way (waiting out a dead master's timeout) starts again from it, and the
// watcher follows it at once.
func (h *Handle) MadeMaster(address string) {
	w := h.w()
	if u, ok := h.MemberURL(address); ok {
		w.pool.Expect(u)
	}
	w.pool.Invalidate()
	w.restartSearch()
	w.wakeUp()
}

// ExpectMaster tells the watcher that the bridge is promoting this host,
// so the change is reported as a CloudStack election.
func (h *Handle) ExpectMaster(uuid string) {
	w := h.w()
	w.mu.Lock()
	w.expected = uuid
	w.mu.Unlock()
}

// Probe asks one member (by management address) to log in.
func (h *Handle) Probe(ctx context.Context, address string) xapi.Probe {
	u, ok := h.MemberURL(address)
	if !ok {
		return xapi.Probe{URL: address, State: xapi.ProbeUnknown}
	}
	return h.w().pool.ProbeMember(ctx, u)
}

// ProbeSpaced probes one member n times, spacing apart, the probes
// overlapping: one failed probe is never enough, and a silent host (a dead
// one on a real network) costs one probe timeout, not one per probe. A
// probe the context ended before it started is ProbeUnknown.
func (h *Handle) ProbeSpaced(ctx context.Context, address string, n int, spacing time.Duration) []xapi.Probe {
	out := make([]xapi.Probe, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Duration(i) * spacing):
				out[i] = h.Probe(ctx, address)
			case <-ctx.Done():
				out[i] = xapi.Probe{URL: address, State: xapi.ProbeUnknown, Err: ctx.Err()}
			}
		}()
	}
	wg.Wait()
	return out
}

// Publish sends an event about this pool, stamped with its name, UUID and
// current epoch.
func (h *Handle) Publish(e Event) {
	v := h.View()
	e.Pool, e.PoolUUID, e.Epoch = v.Name, v.UUID, v.Epoch
	h.w().hub.Publish(e)
}

// SetMembers replaces the member URLs of a pool (after a join or an
// eject): its watcher restarts with them, keeping its epoch and events.
func (m *Manager) SetMembers(id string, members []string) error {
	m.mu.RLock()
	name, ok := m.resolve(id)
	m.mu.RUnlock()
	if !ok {
		return unknownPool(id)
	}
	if _, err := m.replace(name, func(cur *watcher) (PoolSpec, error) {
		spec := cur.spec
		spec.Members = append([]string(nil), members...)
		return spec, nil
	}); err != nil {
		return err
	}
	m.log.Info("pool members changed", "pool", name, "members", len(members))
	return nil
}

// keepsTheMaster refuses new members that leave out the pool's master of
// record: its probes and its promotion go through its member URL, so an
// election could no longer judge it. A master is replaced by an election
// or a designation, never by an attach.
func keepsTheMaster(cur *watcher, next PoolSpec) error {
	v := cur.view.Load()
	if !v.Observed || v.Master.Address == "" || slices.ContainsFunc(next.Members, func(m string) bool { return urlHost(m) == v.Master.Address }) {
		return nil
	}
	lost := ""
	if !v.Master.Reachable {
		lost = " (lost)"
	}
	return fmt.Errorf("%w: the new members leave out %s (%s), the pool's master%s; a master is replaced by ElectMaster or a designation, not by an attach: attach again once another host is master",
		ErrDropsMaster, v.Master.Name, v.Master.Address, lost)
}

// replace restarts a pool's watcher with the spec next gives, keeping
// what it knew (its observation, view, epoch and events), so the pool
// stays observed while the new watcher reconnects. Handles taken before
// follow the new watcher. Never called with m.mu held: stopping a watcher
// waits for it, and a watcher takes m.mu (setUUID).
func (m *Manager) replace(name string, next func(cur *watcher) (PoolSpec, error)) (*watcher, error) {
	m.replacing.Lock()
	defer m.replacing.Unlock()
	m.mu.RLock()
	old, ok := m.pools[name]
	closed := m.closed
	m.mu.RUnlock()
	switch {
	case closed:
		return nil, ErrClosed
	case !ok:
		return nil, unknownPool(name)
	}
	spec, err := next(old)
	if err != nil {
		return nil, err
	}
	if err := spec.validate(); err != nil {
		return nil, err
	}
	xo := m.opts.XAPI
	xo.TLS = spec.TLS
	xo.Logger = m.log.With("pool", spec.Name)
	pool, err := xapi.NewPool(spec.Members, spec.Credentials, xo)
	if err != nil {
		return nil, invalid("members", "%v", err)
	}
	old.stop()
	w := newWatcher(spec, pool, m.hub, m.log.Named("pool").With("pool", spec.Name), m.opts.PollTimeout, m.setUUID)
	old.mu.Lock()
	w.ob, w.epoch, w.expected, w.demoted = old.ob, old.epoch, old.expected, old.demoted
	old.mu.Unlock()
	w.epochs, w.lineage = m.opts.Epochs, old.lineage
	w.probeTimeout = m.probeTimeout()
	v := *old.view.Load()
	v.Members = slices.Clone(spec.Members)
	w.view.Store(&v)
	m.mu.Lock()
	if m.closed || m.pools[name] != old { // closed or detached while it stopped
		m.mu.Unlock()
		pool.Close(context.Background())
		return nil, unknownPool(name)
	}
	m.pools[name] = w
	m.mu.Unlock()
	old.retire() // for handles of this lineage once it is detached: they fall back to their first watcher
	w.start()
	return w, nil
}
