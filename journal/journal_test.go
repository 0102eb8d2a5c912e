package journal

import (
	"path/filepath"
	"sync"
	"testing"
)

func open(t *testing.T, path string) *Bolt {
	t.Helper()
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestEntriesSurviveARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j := open(t, path)
	for i := range 5 {
		if _, err := j.Append(Entry{Pool: "p", Kind: "fence", Step: "witness", Detail: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	j.Append(Entry{Pool: "other", Kind: "fence"})
	if _, err := j.Append(Entry{Kind: "fence"}); err == nil {
		t.Fatal("an entry without a pool was accepted")
	}
	j.Close()

	j = open(t, path)
	defer j.Close()
	es, err := j.Entries("p", 2, 2)
	if err != nil || len(es) != 2 || es[0].Seq != 3 || es[1].Detail != "d" || es[0].Time.IsZero() {
		t.Fatalf("entries %+v %v", es, err)
	}
	if all, _ := j.Entries("p", 0, 0); len(all) != 5 {
		t.Fatalf("%d entries", len(all))
	}
	if e, _ := j.Append(Entry{Pool: "p"}); e.Seq != 6 {
		t.Fatalf("sequence after restart %d", e.Seq)
	}
}

func TestFirstResultWins(t *testing.T) {
	j := open(t, filepath.Join(t.TempDir(), "j.db"))
	defer j.Close()
	if _, ok, _ := j.Result("fence", "p", "r1"); ok {
		t.Fatal("a result before any was saved")
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); j.SaveResult("fence", "p", "r1", []byte{byte(i)}) }()
	}
	wg.Wait()
	first, ok, err := j.Result("fence", "p", "r1")
	if err != nil || !ok || len(first) != 1 {
		t.Fatalf("%v %v %v", first, ok, err)
	}
	j.SaveResult("fence", "p", "r1", []byte("later"))
	if again, _, _ := j.Result("fence", "p", "r1"); string(again) != string(first) {
		t.Fatal("a later result replaced the first")
	}
	if _, ok, _ := j.Result("elect", "p", "r1"); ok {
		t.Fatal("kinds share request ids")
	}
}

func TestEpochNeverGoesBackwards(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j := open(t, path)
	if n, _ := j.Epoch("p"); n != 0 {
		t.Fatalf("fresh epoch %d", n)
	}
	if n, err := j.AdvanceEpoch("p", "a", 6); err != nil || n != 7 {
		t.Fatalf("advance from 6: %d, %v", n, err)
	}
	if n, err := j.AdvanceEpoch("p", "a", 3); err != nil || n != 7 {
		t.Fatalf("the same state from 3: %d, %v", n, err)
	}
	j.Close()
	j = open(t, path)
	defer j.Close()
	if n, _ := j.Epoch("p"); n != 7 {
		t.Fatalf("epoch after restart %d", n)
	}
}

func TestOnlyOneProcessHoldsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j := open(t, path)
	defer j.Close()
	if _, err := Open(path); err == nil {
		t.Fatal("a second open of a held journal succeeded")
	}
}
