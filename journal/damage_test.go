package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// filled writes a journal with enough entries, results and epochs to span
// a dozen pages, closes it and returns its path.
func filled(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal.db")
	j := open(t, path)
	for i := range 300 {
		pool := []string{"sim", "cluster-a", "cluster-b"}[i%3]
		if _, err := j.Append(Entry{Pool: pool, Kind: "elect", Step: "witness", Host: "9566c74d-b37c-4821-b6d9-5526a41a9504",
			RequestID: fmt.Sprintf("req-%d", i), Epoch: uint64(i), OK: true, Detail: strings.Repeat("probe answered ", 8)}); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := j.SaveResult("elect", pool, fmt.Sprintf("req-%d", i), []byte(`{"master":"host-1"}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := j.AdvanceEpoch("sim", "cloudstack/host-1", 1); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// pageTypes reads which page holds what, through bbolt itself.
func pageTypes(t *testing.T, path string) (pageSize int, types map[int]string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	types = map[int]string{}
	err = db.View(func(tx *bolt.Tx) error {
		for id := 0; ; id++ {
			p, err := tx.Page(id)
			if err != nil {
				return err
			}
			if p == nil {
				return nil
			}
			types[id] = p.Type
			for k := 1; k <= p.OverflowCount; k++ {
				types[id+k] = p.Type + " (overflow)"
			}
			id += p.OverflowCount
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return db.Info().PageSize, types
}

// spoil overwrites n bytes at off with 0xff, as `dd if=<(yes $'\xff')` would.
func spoil(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := make([]byte, n)
	if _, err := f.ReadAt(old, off); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xff}, n), off); err != nil {
		t.Fatal(err)
	}
	return old
}

// wantDamaged checks the refusal an operator reads: the file, what is
// wrong, and the two ways out.
func wantDamaged(t *testing.T, err error, path string) {
	t.Helper()
	if err == nil {
		t.Fatal("a damaged journal was opened")
	}
	var d *DamagedError
	if !errors.As(err, &d) {
		t.Fatalf("not a *DamagedError: %T %v", err, err)
	}
	msg := err.Error()
	for _, want := range []string{path, "damaged", "backup", "--new-journal", "epochs"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the message does not say %q:\n%s", want, msg)
		}
	}
}

// openNoPanic opens path and turns a panic into a test failure.
func openNoPanic(t *testing.T, path string) (j *Bolt, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Open panicked: %v", r)
		}
	}()
	return Open(path)
}

func TestADamagedJournalIsRefusedAtOpen(t *testing.T) {
	clean := filled(t)
	pageSize, types := pageTypes(t, clean)
	orig, err := os.ReadFile(clean)
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	for id := 2; id*pageSize < len(orig); id++ {
		typ := types[id]
		if typ == "free" || typ == "" {
			continue // garbage in a free page harms nothing
		}
		tried++
		t.Run(fmt.Sprintf("page %d (%s)", id, typ), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			if err := os.WriteFile(path, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			spoil(t, path, int64(id*pageSize), pageSize)
			j, err := openNoPanic(t, path)
			if err == nil {
				j.Close()
			}
			wantDamaged(t, err, path)
		})
	}
	if tried < 6 {
		t.Fatalf("only %d pages in use: the journal is too small to test with (%v)", tried, types)
	}
	t.Run("both meta pages", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "journal.db")
		os.WriteFile(path, orig, 0o600)
		spoil(t, path, 0, 2*pageSize)
		_, err := openNoPanic(t, path)
		wantDamaged(t, err, path)
	})
	t.Run("cut short", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "journal.db")
		os.WriteFile(path, orig[:len(orig)/2], 0o600)
		_, err := openNoPanic(t, path)
		wantDamaged(t, err, path)
	})
	t.Run("not a journal", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "journal.db")
		os.WriteFile(path, bytes.Repeat([]byte("not bbolt "), 2000), 0o600)
		_, err := openNoPanic(t, path)
		wantDamaged(t, err, path)
	})
	t.Run("one meta page is recovered by bbolt", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "journal.db")
		os.WriteFile(path, orig, 0o600)
		spoil(t, path, 0, pageSize)
		j, err := openNoPanic(t, path)
		if err != nil {
			t.Fatalf("bbolt keeps two meta pages so that one can be lost: %v", err)
		}
		defer j.Close()
		if !j.Opened().HealedMeta {
			t.Errorf("the torn meta page was not reported rewritten")
		}
		if es, err := j.Entries("sim", 0, 0); err != nil || len(es) != 100 {
			t.Fatalf("entries after losing a meta page: %d %v", len(es), err)
		}
	})
}

func TestAnEmptyOrMissingJournalIsNotReplacedSilently(t *testing.T) {
	for _, how := range []string{"emptied", "removed"} {
		t.Run(how, func(t *testing.T) {
			path := filled(t)
			if how == "emptied" {
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			j, err := openNoPanic(t, path)
			if err == nil {
				e, _ := j.Epoch("sim")
				j.Close()
				t.Fatalf("a %s journal was replaced by a new one (epoch of sim now %d)", how, e)
			}
			if !errors.Is(err, ErrJournalGone) {
				t.Fatalf("not ErrJournalGone: %v", err)
			}
			for _, want := range []string{path, how, "backup", "--new-journal", "epochs"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the message does not say %q:\n%s", want, err)
				}
			}
		})
	}
}
