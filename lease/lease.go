// Package lease keeps one captain per pool when several bridges (one per
// CloudStack management server) watch the same pools: only the bridge
// holding a pool's lease may elect, fence, reset VMs, join or eject hosts,
// or switch XenHA for it.
//
// A lease lives in a shared store (the mysqlstore package: CloudStack's
// MySQL). Its expiry is computed on the store's clock alone, so the
// bridges' clocks never have to agree. The holder's own deadline is
// computed on its boot-time clock (which keeps counting through a suspend
// or a frozen VM, unlike Go's monotonic clock) from the moment it sent its
// last successful renewal, and ends Margin before the store's expiry: a
// holder that loses the store, or is paused, has stopped acting before any
// other bridge can take the lease.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults. As client-go's leader election: a 15 s lease, given up 10 s
// after the last renewal (the 5 s margin), renewed every 2 s.
const (
	DefaultDuration = 15 * time.Second
	DefaultRenew    = 2 * time.Second
	DefaultMargin   = 5 * time.Second
)

// Pool is a pool to hold: its XenServer UUID (the lease's key) and the
// name it is attached under (the key of its journal and epoch, which must
// be the same on every bridge).
type Pool struct {
	UUID string
	Name string
}

// Claim is one bridge asking for a pool's lease.
type Claim struct {
	Pool     Pool
	ID       string // the bridge's id
	Instance string // this run of the bridge: two processes with one id never share a lease
	Address  string // where it serves gRPC
}

// Record is a lease as the store has it.
type Record struct {
	Pool     string // the pool's XenServer UUID
	Holder   string // the holding bridge's id
	Instance string // the holding run
	Address  string // where the holder serves gRPC, for callers sent elsewhere
	Term     uint64 // rises each time the lease changes hands
	// Remaining is how long the lease had to run, on the store's clock,
	// when the store answered (negative: expired).
	Remaining time.Duration
}

// Backend is the shared store of leases.
type Backend interface {
	// Acquire takes the pool's lease for the claim when it is free or
	// expired, or renews it when the claim's bridge run has it, for d on
	// the store's clock; either way it returns the lease as it now is. A
	// pool the store knows under another name is refused with
	// ErrNameConflict, and nothing is taken.
	Acquire(ctx context.Context, c Claim, d time.Duration) (Record, error)
	// Release ends the claim's lease on the pool now, if its run has it.
	Release(ctx context.Context, c Claim) error
}

// Guard tells whether this bridge may act on a pool now. The elector, the
// fencer and membership ask it before every destructive step; nil (one
// management server) always may.
type Guard interface {
	Check(ctx context.Context, pool string) error
}

// Config tunes a Keeper.
type Config struct {
	ID      string // this bridge, unique among the bridges sharing the store
	Address string // where it serves gRPC (told to callers of other bridges)
	// Duration is how long a lease lasts after a renewal, on the store's
	// clock; another bridge can take it once that has passed.
	Duration time.Duration
	// Renew is the interval between renewals (and between attempts by
	// the other bridges to take an expired lease).
	Renew time.Duration
	// Margin: the holder stops acting Margin before its lease can expire
	// in the store (against pauses and clock-rate drift).
	Margin time.Duration
	Logger hclog.Logger
}

// Validate checks the relation client-go requires: the lease outlasts the
// holder's own deadline, which outlasts the renew interval.
func (c Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("lease: the bridge needs an id")
	case c.Duration <= 0 || c.Renew <= 0 || c.Margin <= 0:
		return fmt.Errorf("lease: duration (%s), renew (%s) and margin (%s) must be positive", c.Duration, c.Renew, c.Margin)
	case c.Duration-c.Margin <= c.Renew:
		return fmt.Errorf("lease: duration minus margin (%s) must exceed the renew interval (%s), or the holder gives up before it can renew",
			c.Duration-c.Margin, c.Renew)
	}
	return nil
}

// Errors a Check returns, besides *NotHolderError.
var (
	// ErrLost: this bridge held the lease but could not renew it in time
	// (the store is unreachable or slow, or the bridge was paused).
	ErrLost = errors.New("this bridge's lease has run out: it could not renew it in time")
	// ErrUnknown: the store could not be asked who holds the lease, or
	// the pool is not observed yet.
	ErrUnknown = errors.New("who holds the lease is unknown")
	// ErrNameConflict: the store knows the pool under another name, from
	// another bridge: journal and epoch would split, so nobody here acts.
	ErrNameConflict = errors.New("the pool is attached under another name on another bridge")
)

// NotHolderError says which bridge holds a pool's lease.
type NotHolderError struct {
	Pool    string
	Holder  string
	Address string
}

func (e *NotHolderError) Error() string {
	at := ""
	if e.Address != "" {
		at = " at " + e.Address
	}
	return fmt.Sprintf("bridge %s%s holds the lease of pool %s: only it may act on the pool; send the call there", e.Holder, at, e.Pool)
}

// Status is what this bridge knows of one pool's lease.
type Status struct {
	Pool    string
	Known   bool // the store answered at least once
	Mine    bool // this bridge may act now
	Holder  string
	Address string
	Term    uint64
	// Since is when this bridge last became the holder (the store had
	// answered), and Until when it stops acting unless it renews; both on
	// the wall clock, for people.
	Since, Until time.Time
	Err          error // the last failure to reach the store
}

type poolState struct {
	name    string
	created time.Duration // boot clock: when this state was made
	known   bool
	rec     Record
	mine    bool          // the store said so at the last successful attempt
	since   time.Duration // boot clock: when it became mine
	until   time.Duration // boot clock: valid while now < until
	err     error
	twinned bool // another run with this bridge's id was seen (logged once)
}

// Keeper holds and renews this bridge's leases.
type Keeper struct {
	cfg      Config
	instance string
	b        Backend
	pools    func() []Pool
	log      hclog.Logger
	now      func() time.Duration // boot-time clock

	mu      sync.Mutex
	state   map[string]*poolState
	stopped bool // Stop was called: nothing is held any more
}

// New returns a Keeper that contends for the pools that pools lists each
// time Run ticks.
func New(b Backend, cfg Config, pools func() []Pool) (*Keeper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	inst := make([]byte, 8)
	if _, err := rand.Read(inst); err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	return &Keeper{cfg: cfg, instance: hex.EncodeToString(inst), b: b, pools: pools, log: cfg.Logger,
		now: bootClock, state: map[string]*poolState{}}, nil
}

// ID is this bridge's id.
func (k *Keeper) ID() string { return k.cfg.ID }

func (k *Keeper) claim(p Pool) Claim {
	return Claim{Pool: p, ID: k.cfg.ID, Instance: k.instance, Address: k.cfg.Address}
}

// Run renews held leases and tries to take free ones every Renew until
// ctx ends; then it stops acting and releases what it holds (see Stop).
func (k *Keeper) Run(ctx context.Context) {
	t := time.NewTicker(k.cfg.Renew)
	defer t.Stop()
	for {
		k.Tick(ctx)
		select {
		case <-ctx.Done():
			k.Stop()
			return
		case <-t.C:
		}
	}
}

// Tick makes one attempt for every pool, concurrently.
func (k *Keeper) Tick(ctx context.Context) {
	started := k.now()
	pools := k.pools()
	var wg sync.WaitGroup
	for _, p := range pools {
		if p.UUID == "" {
			continue // not observed yet: nobody acts on it
		}
		wg.Add(1)
		go func() { defer wg.Done(); k.attempt(ctx, p) }()
	}
	wg.Wait()
	k.forget(pools, started)
}

// attemptTimeout bounds one store round: long enough for a loaded store,
// short enough to come back before the holder's deadline matters.
func (k *Keeper) attemptTimeout() time.Duration {
	return max(k.cfg.Renew, (k.cfg.Duration-k.cfg.Margin)/2)
}

// attempt acquires or renews one pool's lease. The local deadline is
// counted from before the request was sent, so it ends no later than
// Margin before the store's expiry.
func (k *Keeper) attempt(ctx context.Context, p Pool) {
	ctx, cancel := context.WithTimeout(ctx, k.attemptTimeout())
	defer cancel()
	sent := k.now()
	rec, err := k.b.Acquire(ctx, k.claim(p), k.cfg.Duration)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return // a lease taken now runs out by itself
	}
	st := k.state[p.UUID]
	if st == nil {
		st = &poolState{created: sent}
		k.state[p.UUID] = st
	}
	st.name = p.Name
	if err != nil {
		if st.err == nil {
			k.log.Warn("cannot renew or take the pool's lease", "pool", p.Name, "pool_uuid", p.UUID, "held", st.mine, "error", err)
		}
		st.err = err
		return
	}
	was := st.mine
	st.known, st.rec, st.err = true, rec, nil
	st.mine = rec.Holder == k.cfg.ID && rec.Instance == k.instance
	if st.mine {
		st.until = sent + k.cfg.Duration - k.cfg.Margin
		if !was {
			st.since = k.now()
		}
	} else {
		st.until = 0
	}
	if rec.Holder == k.cfg.ID && !st.mine && rec.Remaining > 0 && !st.twinned {
		st.twinned = true
		k.log.Error("another process runs as this bridge's id and holds the pool's lease: give every bridge its own lease.id",
			"pool", p.Name, "id", k.cfg.ID)
	}
	switch {
	case st.mine && !was:
		k.log.Info("acquired the pool's lease", "pool", p.Name, "pool_uuid", p.UUID, "term", rec.Term)
	case !st.mine && was:
		k.log.Warn("the pool's lease went to another bridge", "pool", p.Name, "pool_uuid", p.UUID, "holder", rec.Holder, "term", rec.Term)
	}
}

// forget drops the state of pools no longer listed (detached) and
// releases their leases. A state made after the tick began is kept: its
// pool was attached meanwhile, and a Check may have relied on it.
func (k *Keeper) forget(pools []Pool, tickStarted time.Duration) {
	keep := map[string]bool{}
	for _, p := range pools {
		keep[p.UUID] = true
	}
	k.mu.Lock()
	var drop []Claim
	for uuid, st := range k.state {
		if keep[uuid] || st.created >= tickStarted {
			continue
		}
		if st.mine {
			drop = append(drop, k.claim(Pool{UUID: uuid, Name: st.name}))
		}
		delete(k.state, uuid)
	}
	k.mu.Unlock()
	if len(drop) > 0 {
		go k.releaseLater(drop)
	}
}

// Stop makes this bridge stop acting at once, then releases its leases
// Margin later, so that a step which passed its last check just before
// has been sent before another bridge can start. That is still far
// sooner than the lease running out.
func (k *Keeper) Stop() {
	k.mu.Lock()
	k.stopped = true
	var held []Claim
	for uuid, st := range k.state {
		if st.mine {
			held = append(held, k.claim(Pool{UUID: uuid, Name: st.name}))
		}
		st.mine, st.until = false, 0
	}
	k.mu.Unlock()
	k.releaseLater(held)
}

func (k *Keeper) releaseLater(claims []Claim) {
	if len(claims) == 0 {
		return
	}
	time.Sleep(k.cfg.Margin)
	for _, c := range claims {
		ctx, cancel := context.WithTimeout(context.Background(), k.attemptTimeout())
		err := k.b.Release(ctx, c)
		cancel()
		if err != nil {
			k.log.Warn("cannot release the pool's lease; it runs out by itself", "pool", c.Pool.Name, "error", err)
			continue
		}
		k.log.Info("released the pool's lease", "pool", c.Pool.Name, "pool_uuid", c.Pool.UUID)
	}
}

// Check returns nil when this bridge holds the pool's lease and its own
// deadline has not passed. A pool not seen yet is tried at once, so the
// first call after an attach does not wait for the next tick.
func (k *Keeper) Check(ctx context.Context, pool string) error {
	if pool == "" {
		return fmt.Errorf("%w: the pool is not observed yet", ErrUnknown)
	}
	k.mu.Lock()
	_, seen := k.state[pool]
	stopped := k.stopped
	k.mu.Unlock()
	if stopped {
		return fmt.Errorf("pool %s: %w: this bridge is stopping", pool, ErrLost)
	}
	if !seen {
		for _, p := range k.pools() {
			if p.UUID == pool {
				k.attempt(ctx, p)
			}
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.state[pool]
	switch {
	case st == nil:
		return fmt.Errorf("pool %s: %w: it is not attached here", pool, ErrUnknown)
	case st.mine && k.now() < st.until:
		return nil
	case st.mine:
		return fmt.Errorf("pool %s: %w (last error: %v)", pool, ErrLost, st.err)
	case errors.Is(st.err, ErrNameConflict):
		return fmt.Errorf("pool %s: %w", pool, st.err)
	case !st.known:
		return fmt.Errorf("pool %s: %w: %v", pool, ErrUnknown, st.err)
	case st.err != nil:
		return fmt.Errorf("pool %s: %w (last seen held by %s): %v", pool, ErrUnknown, st.rec.Holder, st.err)
	}
	return &NotHolderError{Pool: pool, Holder: st.rec.Holder, Address: st.rec.Address}
}

// Status reports what this bridge knows of a pool's lease.
func (k *Keeper) Status(pool string) Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.state[pool]
	if st == nil {
		return Status{Pool: pool}
	}
	now, wall := k.now(), time.Now()
	out := Status{Pool: pool, Known: st.known, Mine: st.mine && now < st.until, Holder: st.rec.Holder, Address: st.rec.Address,
		Term: st.rec.Term, Err: st.err}
	if st.mine {
		out.Since, out.Until = wall.Add(st.since-now), wall.Add(st.until-now)
	}
	return out
}

// Until is when this bridge stops acting on the pool unless it renews,
// and whether it holds the pool's lease now.
func (k *Keeper) Until(pool string) (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.state[pool]
	if st == nil || !st.mine {
		return time.Time{}, false
	}
	now := k.now()
	if now >= st.until {
		return time.Time{}, false
	}
	return time.Now().Add(st.until - now), true
}

// Bound checks the lease, then returns a context that also ends when this
// bridge's right to act on the pool does: a destructive call made with it
// is abandoned, not sent late, if its own preliminaries (a login, a BMC's
// discovery request) outlast the lease. With a nil Guard (one management
// server) it returns ctx unchanged.
func Bound(ctx context.Context, g Guard, pool string) (context.Context, context.CancelFunc, error) {
	if g == nil {
		return ctx, func() {}, nil
	}
	if err := g.Check(ctx, pool); err != nil {
		return ctx, func() {}, err
	}
	if u, ok := g.(interface {
		Until(pool string) (time.Time, bool)
	}); ok {
		if until, held := u.Until(pool); held {
			bctx, cancel := context.WithDeadline(ctx, until)
			return bctx, cancel, nil
		}
		return ctx, func() {}, fmt.Errorf("pool %s: %w", pool, ErrLost)
	}
	return ctx, func() {}, nil
}

// IsRefusal tells whether err is the lease's refusal (another holder, a
// lost or unknown lease, a name conflict), as opposed to a failure of
// the step itself.
func IsRefusal(err error) bool {
	var nh *NotHolderError
	return errors.As(err, &nh) || errors.Is(err, ErrLost) || errors.Is(err, ErrUnknown) || errors.Is(err, ErrNameConflict)
}
