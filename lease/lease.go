// Package lease keeps one captain per pool when several bridges (one per
// CloudStack management server) watch the same pools: only the bridge
// holding a pool's lease may elect, fence, reset VMs, join or eject hosts,
// or switch XenHA for it.
//
// A lease lives in a shared store (the mysqlstore package: CloudStack's
// MySQL). Its expiry is computed on the store's clock alone, so the
// bridges' clocks never have to agree. The holder's own deadline is
// computed on its monotonic clock from the moment it sent its last
// successful renewal, and ends Margin before the store's expiry: a holder
// that loses the store, or is paused, has stopped acting before any other
// bridge can take the lease.
package lease

import (
	"context"
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

// Record is a lease as the store has it.
type Record struct {
	Pool    string // the pool's XenServer UUID
	Holder  string // the holding bridge's id
	Address string // where the holder serves gRPC, for callers sent elsewhere
	Term    uint64 // rises each time the lease changes hands
	// Remaining is how long the lease had to run, on the store's clock,
	// when the store answered (negative: expired).
	Remaining time.Duration
}

// Backend is the shared store of leases.
type Backend interface {
	// Acquire takes the pool's lease for holder when it is free or
	// expired, or renews it when holder has it, for d on the store's
	// clock; either way it returns the lease as it now is.
	Acquire(ctx context.Context, pool, holder, address string, d time.Duration) (Record, error)
	// Release ends holder's lease on the pool now, if it has it.
	Release(ctx context.Context, pool, holder string) error
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
	// ErrUnknown: the store could not be asked who holds the lease.
	ErrUnknown = errors.New("the lease store cannot be reached: who holds the lease is unknown")
)

// NotHolderError says which bridge holds a pool's lease.
type NotHolderError struct {
	Pool    string
	Holder  string
	Address string
	// Remaining is how long the holder's lease had to run when last seen.
	Remaining time.Duration
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
	// Until is when this bridge stops acting (its own clock), if it holds.
	Until time.Time
	Err   error // the last failure to reach the store
}

type poolState struct {
	known bool
	rec   Record
	mine  bool      // the store said so at the last successful attempt
	until time.Time // local deadline: valid while now < until
	err   error
}

// Keeper holds and renews this bridge's leases.
type Keeper struct {
	cfg   Config
	b     Backend
	pools func() []string
	log   hclog.Logger
	now   func() time.Time

	mu    sync.Mutex
	state map[string]*poolState
}

// New returns a Keeper that contends for the pools that pools lists (by
// XenServer pool UUID) each time Run ticks.
func New(b Backend, cfg Config, pools func() []string) (*Keeper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Keeper{cfg: cfg, b: b, pools: pools, log: cfg.Logger, now: time.Now, state: map[string]*poolState{}}, nil
}

// ID is this bridge's id.
func (k *Keeper) ID() string { return k.cfg.ID }

// Config returns the Keeper's settings.
func (k *Keeper) Config() Config { return k.cfg }

// Run renews held leases and tries to take free ones every Renew until
// ctx ends; then it releases what it holds, so a clean shutdown hands the
// pools over at once instead of after Duration.
func (k *Keeper) Run(ctx context.Context) {
	t := time.NewTicker(k.cfg.Renew)
	defer t.Stop()
	for {
		k.Tick(ctx)
		select {
		case <-ctx.Done():
			k.releaseAll()
			return
		case <-t.C:
		}
	}
}

// Tick makes one attempt for every pool, concurrently.
func (k *Keeper) Tick(ctx context.Context) {
	pools := k.pools()
	var wg sync.WaitGroup
	for _, p := range pools {
		if p == "" {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); k.attempt(ctx, p) }()
	}
	wg.Wait()
	k.forget(pools)
}

// attempt acquires or renews one pool's lease. The local deadline is
// counted from before the request was sent, so it ends no later than
// Margin before the store's expiry.
func (k *Keeper) attempt(ctx context.Context, pool string) {
	ctx, cancel := context.WithTimeout(ctx, k.cfg.Renew)
	defer cancel()
	sent := k.now()
	rec, err := k.b.Acquire(ctx, pool, k.cfg.ID, k.cfg.Address, k.cfg.Duration)
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.state[pool]
	if st == nil {
		st = &poolState{}
		k.state[pool] = st
	}
	if err != nil {
		if st.err == nil {
			k.log.Warn("cannot reach the lease store", "pool", pool, "held", st.mine, "until", st.until, "error", err)
		}
		st.err = err
		return
	}
	was := st.mine
	st.known, st.rec, st.err = true, rec, nil
	st.mine = rec.Holder == k.cfg.ID
	if st.mine {
		st.until = sent.Add(k.cfg.Duration - k.cfg.Margin)
	} else {
		st.until = time.Time{}
	}
	switch {
	case st.mine && !was:
		k.log.Info("acquired the pool's lease", "pool", pool, "term", rec.Term)
	case !st.mine && was:
		k.log.Warn("the pool's lease went to another bridge", "pool", pool, "holder", rec.Holder, "term", rec.Term)
	}
}

// forget drops the state of pools no longer listed, releasing their
// leases (a detached pool).
func (k *Keeper) forget(pools []string) {
	keep := map[string]bool{}
	for _, p := range pools {
		keep[p] = true
	}
	k.mu.Lock()
	var drop []string
	for p, st := range k.state {
		if !keep[p] {
			if st.mine {
				drop = append(drop, p)
			}
			delete(k.state, p)
		}
	}
	k.mu.Unlock()
	for _, p := range drop {
		k.release(p)
	}
}

func (k *Keeper) releaseAll() {
	k.mu.Lock()
	var held []string
	for p, st := range k.state {
		if st.mine {
			held = append(held, p)
		}
		st.mine, st.until = false, time.Time{}
	}
	k.mu.Unlock()
	for _, p := range held {
		k.release(p)
	}
}

func (k *Keeper) release(pool string) {
	ctx, cancel := context.WithTimeout(context.Background(), k.cfg.Renew)
	defer cancel()
	if err := k.b.Release(ctx, pool, k.cfg.ID); err != nil {
		k.log.Warn("cannot release the pool's lease; it expires by itself", "pool", pool, "error", err)
		return
	}
	k.log.Info("released the pool's lease", "pool", pool)
}

// Check returns nil when this bridge holds the pool's lease and its own
// deadline has not passed. A pool not seen yet is tried at once, so the
// first call after an attach does not wait for the next tick.
func (k *Keeper) Check(ctx context.Context, pool string) error {
	k.mu.Lock()
	_, seen := k.state[pool]
	k.mu.Unlock()
	if !seen {
		k.attempt(ctx, pool)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.state[pool]
	switch {
	case st == nil: // detached meanwhile
		return fmt.Errorf("pool %s: %w", pool, ErrUnknown)
	case st.mine && k.now().Before(st.until):
		return nil
	case st.mine:
		return fmt.Errorf("pool %s: %w (it stopped acting at %s; last error: %v)", pool, ErrLost, st.until.Format(time.RFC3339Nano), st.err)
	case !st.known:
		return fmt.Errorf("pool %s: %w: %v", pool, ErrUnknown, st.err)
	case st.err != nil:
		return fmt.Errorf("pool %s: %w (last seen held by %s): %v", pool, ErrUnknown, st.rec.Holder, st.err)
	}
	return &NotHolderError{Pool: pool, Holder: st.rec.Holder, Address: st.rec.Address, Remaining: st.rec.Remaining}
}

// Status reports what this bridge knows of a pool's lease.
func (k *Keeper) Status(pool string) Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.state[pool]
	if st == nil {
		return Status{Pool: pool}
	}
	mine := st.mine && k.now().Before(st.until)
	return Status{Pool: pool, Known: st.known, Mine: mine, Holder: st.rec.Holder, Address: st.rec.Address,
		Term: st.rec.Term, Until: st.until, Err: st.err}
}
