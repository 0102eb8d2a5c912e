package journaltest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/cloudstack-xenha/xenha-bridge/journal"
)

// Conformance checks what every journal.Store promises. open returns two
// handles on one store: two bridges on a shared store, or the same handle
// twice for an embedded one.
func Conformance(t *testing.T, open func(t *testing.T) (a, b journal.Store)) {
	t.Run("entries in order per pool", func(t *testing.T) {
		a, _ := open(t)
		for i := range 5 {
			if _, err := a.Append(journal.Entry{Pool: "p", Kind: "fence", Step: "witness", Host: "h", Epoch: 3, OK: i%2 == 0,
				RequestID: "r", Detail: string(rune('a' + i))}); err != nil {
				t.Fatal(err)
			}
		}
		if e, err := a.Append(journal.Entry{Pool: "other", Kind: "elect"}); err != nil || e.Seq != 1 {
			t.Fatalf("another pool's first entry: %+v %v", e, err)
		}
		if _, err := a.Append(journal.Entry{Kind: "fence"}); err == nil {
			t.Fatal("an entry without a pool was accepted")
		}
		es, err := a.Entries("p", 2, 2)
		if err != nil || len(es) != 2 || es[0].Seq != 3 || es[1].Detail != "d" || es[0].Time.IsZero() {
			t.Fatalf("entries %+v %v", es, err)
		}
		e := es[0]
		if e.Pool != "p" || e.Kind != "fence" || e.Step != "witness" || e.Host != "h" || e.Epoch != 3 || !e.OK || e.RequestID != "r" {
			t.Fatalf("an entry came back changed: %+v", e)
		}
		if all, _ := a.Entries("p", 0, 0); len(all) != 5 {
			t.Fatalf("%d entries", len(all))
		}
		if none, err := a.Entries("nobody", 0, 0); err != nil || len(none) != 0 {
			t.Fatalf("entries of an unknown pool: %v %v", none, err)
		}
	})
	t.Run("concurrent appends get distinct gap-free sequences", func(t *testing.T) {
		a, b := open(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var seqs []uint64
		for i := range 40 {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, err := s.Append(journal.Entry{Pool: "p", Kind: "fence", Step: fmt.Sprint(i)})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seqs = append(seqs, e.Seq)
				mu.Unlock()
			}()
		}
		wg.Wait()
		slices.Sort(seqs)
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("sequences %v", seqs)
			}
		}
		if all, _ := b.Entries("p", 0, 0); len(all) != 40 {
			t.Fatalf("the other handle sees %d entries", len(all))
		}
	})
	t.Run("the last entry of a step", func(t *testing.T) {
		a, b := open(t)
		if _, ok, err := a.Last("p", "elect", "promote", false); ok || err != nil {
			t.Fatalf("an empty journal: %v %v", ok, err)
		}
		for _, e := range []journal.Entry{
			{Pool: "p", Kind: "elect", Step: "promote", Host: "h1", OK: true},
			{Pool: "p", Kind: "elect", Step: "result", Host: "h1", OK: true},
			{Pool: "p", Kind: "fence", Step: "promote", Host: "other-kind", OK: true},
			{Pool: "p", Kind: "elect", Step: "promote", Host: "h2", OK: true},
			{Pool: "p", Kind: "elect", Step: "result", Host: "", OK: false, Detail: "failed"},
			{Pool: "q", Kind: "elect", Step: "promote", Host: "other-pool", OK: true},
		} {
			if _, err := a.Append(e); err != nil {
				t.Fatal(err)
			}
		}
		if e, ok, err := b.Last("p", "elect", "promote", false); err != nil || !ok || e.Host != "h2" || e.Seq != 4 {
			t.Fatalf("last promote: %+v %v %v", e, ok, err)
		}
		if e, ok, _ := b.Last("p", "elect", "result", false); !ok || e.Detail != "failed" || e.OK {
			t.Fatalf("last result: %+v", e)
		}
		if e, ok, _ := b.Last("p", "elect", "result", true); !ok || e.Host != "h1" || e.Seq != 2 {
			t.Fatalf("last successful result: %+v", e)
		}
	})
	t.Run("the first result wins", func(t *testing.T) {
		a, b := open(t)
		if _, ok, _ := a.Result("fence", "p", "r1"); ok {
			t.Fatal("a result before any was saved")
		}
		var wg sync.WaitGroup
		for i := range 10 {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.SaveResult("fence", "p", "r1", []byte{byte(i)}) }()
		}
		wg.Wait()
		first, ok, err := b.Result("fence", "p", "r1")
		if err != nil || !ok || len(first) != 1 {
			t.Fatalf("%v %v %v", first, ok, err)
		}
		a.SaveResult("fence", "p", "r1", []byte("later"))
		if again, _, _ := a.Result("fence", "p", "r1"); string(again) != string(first) {
			t.Fatal("a later result replaced the first")
		}
		if _, ok, _ := a.Result("elect", "p", "r1"); ok {
			t.Fatal("kinds share request ids")
		}
	})
	t.Run("an epoch rises once per change and never goes down", func(t *testing.T) {
		a, b := open(t)
		if n, err := a.Epoch("p"); err != nil || n != 0 {
			t.Fatalf("fresh epoch %d %v", n, err)
		}
		// A bridge at 6 sees a change: 7.
		if n, err := a.AdvanceEpoch("p", "cloudstack/m1", 6); err != nil || n != 7 {
			t.Fatalf("a new state from 6: %d %v", n, err)
		}
		// Another bridge, at 6 too, sees the same change: still 7.
		if n, err := b.AdvanceEpoch("p", "cloudstack/m1", 6); err != nil || n != 7 {
			t.Fatalf("the same state again: %d %v", n, err)
		}
		// One that missed it, at 3, sees the next change: 8, never below.
		if n, err := b.AdvanceEpoch("p", "cloudstack/m2", 3); err != nil || n != 8 {
			t.Fatalf("the next state from 3: %d %v", n, err)
		}
		// One ahead of the store (it could not write) stays ahead.
		if n, err := a.AdvanceEpoch("p", "cloudstack/m2", 11); err != nil || n != 11 {
			t.Fatalf("the same state from 11: %d %v", n, err)
		}
		if n, _ := b.Epoch("p"); n != 11 {
			t.Fatalf("epoch %d", n)
		}
		if _, err := a.Append(journal.Entry{Pool: "p", Kind: "fence"}); err != nil {
			t.Fatal(err)
		}
		if n, _ := a.Epoch("p"); n != 11 {
			t.Fatalf("an append moved the epoch to %d", n)
		}
	})
}
