package journal

import (
	"path/filepath"
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

// What every store promises (the first result wins, concurrent appends,
// epochs) is in journaltest.Conformance, run for Bolt in
// conformance_test.go; these are the embedded store's own: restarts and
// the file lock.

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
