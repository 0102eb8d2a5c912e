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
	k, err := lease.New(b, c, func() []string { return []string{pool} })
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
	for b.Check(context.Background(), pool) != nil {
		if time.Since(died) > 10*cfg.Duration {
			t.Fatal("b never took the lease over")
		}
		b.Tick(context.Background())
		time.Sleep(50 * time.Millisecond)
	}
	if took := time.Since(died); took < cfg.Duration-100*time.Millisecond {
		t.Fatalf("b took the lease %s after a's last renewal, before the lease (%s) ran out", took, cfg.Duration)
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
	t.Logf("cut at 0: a stopped acting at %s, b took over at %s", aStopped, bStarted)
	if bStarted-aStopped < cfg.Margin/2 {
		t.Fatalf("a stopped at %s, b started at %s: less than the margin apart", aStopped, bStarted)
	}
	if err := a.Check(ctx, pool); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("a while cut off: %v", err)
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
	cancel()
	<-done
	stopped := time.Now()
	b.Tick(context.Background())
	if err := b.Check(context.Background(), pool); err != nil {
		t.Fatalf("b right after a stopped: %v", err)
	}
	if time.Since(stopped) > cfg.Duration/2 {
		t.Fatal("b waited for the lease to run out")
	}
	if err := a.Check(context.Background(), pool); err == nil {
		t.Fatal("a still acts after it stopped")
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
