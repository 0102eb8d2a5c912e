package lease_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/internal/mariadbtest"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/mysqlstore"
)

func TestMain(m *testing.M) { mariadbtest.Main(m) }

const pool = "6f5a1e0c-2b1d-4c1e-9d0a-000000000001"

var thePool = []lease.Pool{{UUID: pool, Name: "cluster-a"}}

// Short numbers keep the tests quick; the relations are the defaults'.
var cfg = lease.Config{Duration: 1500 * time.Millisecond, Renew: 200 * time.Millisecond, Margin: 500 * time.Millisecond}

func store(t *testing.T, dsn, password string) *mysqlstore.Store {
	t.Helper()
	s, err := mysqlstore.Open(context.Background(), mysqlstore.Config{DSN: dsn, Password: password, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func keeper(t *testing.T, b lease.Backend, id string) *lease.Keeper {
	t.Helper()
	c := cfg
	c.ID, c.Address = id, id+".example:50051"
	k, err := lease.New(b, c, func() []lease.Pool { return thePool })
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func holders(ks []*lease.Keeper) []string {
	var out []string
	for _, k := range ks {
		if k.Check(context.Background(), pool) == nil {
			out = append(out, k.ID())
		}
	}
	return out
}

func TestOnlyOneOfThreeBridgesHoldsAPool(t *testing.T) {
	db := mariadbtest.New(t)
	var ks []*lease.Keeper
	for _, id := range []string{"a", "b", "c"} {
		ks = append(ks, keeper(t, store(t, db.DSN(), db.Password), id))
	}
	for range 5 {
		var wg sync.WaitGroup
		for _, k := range ks {
			wg.Add(1)
			go func() { defer wg.Done(); k.Tick(context.Background()) }()
		}
		wg.Wait()
		if h := holders(ks); len(h) != 1 {
			t.Fatalf("holders %v", h)
		}
	}
	h := holders(ks)[0]
	for _, k := range ks {
		if k.ID() == h {
			continue
		}
		err := k.Check(context.Background(), pool)
		var nh *lease.NotHolderError
		if !errors.As(err, &nh) || nh.Holder != h || nh.Address != h+".example:50051" || !strings.Contains(err.Error(), h) {
			t.Fatalf("%s: %v", k.ID(), err)
		}
	}
}

func TestADeadHolderIsReplacedOnceItsLeaseHasRunOut(t *testing.T) {
	db := mariadbtest.New(t)
	a, b := keeper(t, store(t, db.DSN(), db.Password), "a"), keeper(t, store(t, db.DSN(), db.Password), "b")
	a.Tick(context.Background())
	died := time.Now() // a renews no more, and does not release: it died
	if a.Check(context.Background(), pool) != nil {
		t.Fatal("a does not hold the lease")
	}
	aUntil := a.Status(pool).Until
	for b.Check(context.Background(), pool) != nil {
		if time.Since(died) > 10*cfg.Duration {
			t.Fatal("b never took the lease over")
		}
		b.Tick(context.Background())
		time.Sleep(50 * time.Millisecond)
	}
	// b cannot have taken it before a's lease ran out in the store, which
	// is Margin after a stopped acting on its own clock.
	if since, until := b.Status(pool).Since, aUntil; since.Before(until.Add(cfg.Margin)) {
		t.Fatalf("b holds since %s, a acted until %s: less than the margin (%s) apart", since.Format(time.RFC3339Nano), until.Format(time.RFC3339Nano), cfg.Margin)
	}
	if took := time.Since(died); took < cfg.Duration/2 {
		t.Fatalf("b took the lease %s after a's last renewal: it did not wait for it to run out (%s)", took, cfg.Duration)
	}
	if st := b.Status(pool); st.Term != 2 {
		t.Fatalf("term %d after one handover", st.Term)
	}
	// a, even without asking the store, stopped acting Margin earlier.
	if err := a.Check(context.Background(), pool); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("a after its lease: %v", err)
	}
}

func TestABridgeCutFromTheDatabaseStopsActingBeforeAnotherCanStart(t *testing.T) {
	db := mariadbtest.New(t)
	proxy := mariadbtest.NewProxy(t, db.Addr)
	a := keeper(t, store(t, db.DSNVia(proxy.Addr), db.Password), "a")
	b := keeper(t, store(t, db.DSN(), db.Password), "b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.Tick(ctx)
	if a.Check(ctx, pool) != nil {
		t.Fatal("a does not hold the lease")
	}
	go a.Run(ctx)
	go b.Run(ctx)
	time.Sleep(3 * cfg.Renew) // a renews; b is refused
	if h := holders([]*lease.Keeper{a, b}); len(h) != 1 || h[0] != "a" {
		t.Fatalf("holders %v", h)
	}
	aUntil := a.Status(pool).Until // moves no more once cut: read it after
	proxy.Cut(true)
	cut := time.Now()
	var aStopped, bStarted time.Duration
	for aStopped == 0 || bStarted == 0 {
		if time.Since(cut) > 10*cfg.Duration {
			t.Fatalf("a stopped after %s, b started after %s", aStopped, bStarted)
		}
		if aStopped == 0 && a.Check(ctx, pool) != nil {
			aStopped = time.Since(cut)
		}
		if bStarted == 0 && b.Check(ctx, pool) == nil {
			bStarted = time.Since(cut)
			if a.Check(ctx, pool) == nil {
				t.Fatalf("two holders %s after the cut", bStarted)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("cut at 0: a seen stopped at %s, b seen holding at %s", aStopped, bStarted)
	// On the keepers' own clocks: b became the holder (the store had
	// answered) at least Margin after a stopped acting.
	if since, until := b.Status(pool).Since, aUntil; since.Before(until.Add(cfg.Margin)) {
		t.Fatalf("b holds since %s, a acted until %s: less than the margin apart", since.Format(time.RFC3339Nano), until.Format(time.RFC3339Nano))
	}
	if err := a.Check(ctx, pool); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("a while cut off: %v", err)
	}
	if u := a.Status(pool).Until; !u.IsZero() && u.After(aUntil) {
		aUntil = u // a renewal that got through just before the cut
	}
	// Back on the network, a learns that b holds the pool.
	proxy.Cut(false)
	deadline := time.Now().Add(10 * cfg.Duration)
	for {
		var nh *lease.NotHolderError
		if err := a.Check(ctx, pool); errors.As(err, &nh) && nh.Holder == "b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a after the cut: %v", a.Check(ctx, pool))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestACleanShutdownHandsThePoolOverAtOnce(t *testing.T) {
	db := mariadbtest.New(t)
	a, b := keeper(t, store(t, db.DSN(), db.Password), "a"), keeper(t, store(t, db.DSN(), db.Password), "b")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	for a.Check(context.Background(), pool) != nil {
		time.Sleep(20 * time.Millisecond)
	}
	stopping := time.Now()
	cancel()
	// a stops acting at once, and releases Margin later.
	for a.Check(context.Background(), pool) == nil {
		if time.Since(stopping) > cfg.Margin/2 {
			t.Fatal("a still acts after it was told to stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	<-done
	// A call still in flight on a stopped bridge takes no new lease.
	if err := a.Check(context.Background(), pool); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("a stopped bridge: %v", err)
	}
	if took := time.Since(stopping); took < cfg.Margin {
		t.Fatalf("a released after %s, before the margin (%s)", took, cfg.Margin)
	}
	released := time.Now()
	b.Tick(context.Background())
	if err := b.Check(context.Background(), pool); err != nil {
		t.Fatalf("b right after a released: %v", err)
	}
	if time.Since(released) > cfg.Duration/2 {
		t.Fatal("b waited for the lease to run out")
	}
}

func TestAnUnreachableStoreBeforeAnyAnswerIsUnknownNotHeld(t *testing.T) {
	db := mariadbtest.New(t)
	proxy := mariadbtest.NewProxy(t, db.Addr)
	s := store(t, db.DSNVia(proxy.Addr), db.Password)
	proxy.Cut(true)
	k := keeper(t, s, "a")
	if err := k.Check(context.Background(), pool); !errors.Is(err, lease.ErrUnknown) {
		t.Fatalf("%v", err)
	}
}

func TestConfigRelations(t *testing.T) {
	for _, c := range []struct {
		cfg  lease.Config
		want string
	}{
		{lease.Config{ID: "a", Duration: 15 * time.Second, Renew: 2 * time.Second, Margin: 5 * time.Second}, ""},
		{lease.Config{Duration: 15 * time.Second, Renew: 2 * time.Second, Margin: 5 * time.Second}, "id"},
		{lease.Config{ID: "a", Duration: 15 * time.Second, Renew: 10 * time.Second, Margin: 5 * time.Second}, "must exceed the renew interval"},
		{lease.Config{ID: "a", Duration: 5 * time.Second, Renew: time.Second, Margin: 5 * time.Second}, "must exceed the renew interval"},
		{lease.Config{ID: "a", Duration: 15 * time.Second, Renew: 2 * time.Second}, "must be positive"},
	} {
		err := c.cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestTwoRunsWithOneIDNeverShareALease(t *testing.T) {
	db := mariadbtest.New(t)
	// A cloned management server: the same lease.id, twice.
	a1, a2 := keeper(t, store(t, db.DSN(), db.Password), "mgmt-1"), keeper(t, store(t, db.DSN(), db.Password), "mgmt-1")
	upper := keeper(t, store(t, db.DSN(), db.Password), "MGMT-1") // and one that differs in case only
	for range 4 {
		for _, k := range []*lease.Keeper{a1, a2, upper} {
			k.Tick(context.Background())
		}
		if h := holders([]*lease.Keeper{a1, a2, upper}); len(h) != 1 {
			t.Fatalf("holders %v", h)
		}
	}
}

func TestAPoolNamedOtherwiseOnAnotherBridgeIsNotLeased(t *testing.T) {
	db := mariadbtest.New(t)
	a := keeper(t, store(t, db.DSN(), db.Password), "a")
	a.Tick(context.Background())
	c := cfg
	c.ID = "b"
	b, err := lease.New(store(t, db.DSN(), db.Password), c, func() []lease.Pool { return []lease.Pool{{UUID: pool, Name: "cluster-A"}} })
	if err != nil {
		t.Fatal(err)
	}
	a.Stop() // even free, the lease is not b's to take
	b.Tick(context.Background())
	if err := b.Check(context.Background(), pool); !errors.Is(err, lease.ErrNameConflict) || !strings.Contains(err.Error(), `"cluster-a" there, "cluster-A" here`) {
		t.Fatalf("%v", err)
	}
}

func TestAnUnobservedPoolIsNeverHeld(t *testing.T) {
	db := mariadbtest.New(t)
	k := keeper(t, store(t, db.DSN(), db.Password), "a")
	if err := k.Check(context.Background(), ""); !errors.Is(err, lease.ErrUnknown) {
		t.Fatalf("%v", err)
	}
}

// slowStore delays acquisitions, so a tick is still running when a pool
// is attached and checked.
type slowStore struct {
	lease.Backend
	delay    time.Duration
	released chan string
}

func (s slowStore) Acquire(ctx context.Context, c lease.Claim, d time.Duration) (lease.Record, error) {
	time.Sleep(s.delay)
	return s.Backend.Acquire(ctx, c, d)
}

func (s slowStore) Release(ctx context.Context, c lease.Claim) error {
	s.released <- c.Pool.UUID
	return s.Backend.Release(ctx, c)
}

func TestAPoolAttachedDuringATickIsKept(t *testing.T) {
	db := mariadbtest.New(t)
	s := slowStore{Backend: store(t, db.DSN(), db.Password), delay: 200 * time.Millisecond, released: make(chan string, 4)}
	var mu sync.Mutex
	var attached []lease.Pool
	c := cfg
	c.ID = "a"
	k, err := lease.New(s, c, func() []lease.Pool { mu.Lock(); defer mu.Unlock(); return append([]lease.Pool(nil), attached...) })
	if err != nil {
		t.Fatal(err)
	}
	ticked := make(chan struct{})
	go func() { k.Tick(context.Background()); close(ticked) }() // sees no pool, but takes a while
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	attached = thePool
	mu.Unlock()
	if err := k.Check(context.Background(), pool); err != nil { // the first call after the attach
		t.Fatal(err)
	}
	<-ticked
	if err := k.Check(context.Background(), pool); err != nil {
		t.Fatalf("the tick that began before the attach dropped the pool: %v", err)
	}
	select {
	case p := <-s.released:
		t.Fatalf("released %s", p)
	case <-time.After(cfg.Margin + 100*time.Millisecond):
	}
}
