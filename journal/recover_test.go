package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAFirstStartCreatesTheJournalAndItsMarker(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := OpenWith(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !j.Opened().Created {
		t.Errorf("a first start does not say it created the journal: %+v", j.Opened())
	}
	j.Close()
	b, err := os.ReadFile(MarkerPath(path))
	if err != nil || !strings.Contains(string(b), path) || !strings.Contains(string(b), "--new-journal") {
		t.Fatalf("marker: %q %v", b, err)
	}
	// An installation from before the marker: the journal alone is opened,
	// and the marker written.
	os.Remove(MarkerPath(path))
	j = open(t, path)
	if j.Opened().Created {
		t.Errorf("an existing journal was reported as created")
	}
	j.Close()
	if _, err := os.Stat(MarkerPath(path)); err != nil {
		t.Fatalf("the marker was not written again: %v", err)
	}
}

func TestStartNewReplacesOnlyWhatIsBroken(t *testing.T) {
	t.Run("a healthy journal is kept", func(t *testing.T) {
		path := filled(t)
		j, err := OpenWith(path, Options{StartNew: true})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		if o := j.Opened(); !o.StartNewIgnored || o.Created || o.Replaced != "" {
			t.Errorf("opened: %+v", o)
		}
		if n, _ := j.Epoch("sim"); n != 2 {
			t.Fatalf("the healthy journal's epoch is %d, want 2", n)
		}
	})
	t.Run("a damaged journal is moved aside", func(t *testing.T) {
		path := filled(t)
		pageSize, types := pageTypes(t, path)
		for id := 2; ; id++ {
			if types[id] == "leaf" {
				spoil(t, path, int64(id*pageSize), pageSize)
				break
			}
		}
		damaged, _ := os.ReadFile(path)
		j, err := OpenWith(path, Options{StartNew: true})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		o := j.Opened()
		if !o.Created || !strings.Contains(o.Replaced, "damaged") || !strings.HasPrefix(o.KeptAt, path+".damaged-") {
			t.Fatalf("opened: %+v", o)
		}
		if kept, err := os.ReadFile(o.KeptAt); err != nil || !bytes.Equal(kept, damaged) {
			t.Fatalf("the damaged journal was not kept as it was: %v", err)
		}
		if n, _ := j.Epoch("sim"); n != 0 {
			t.Fatalf("a new journal's epoch is %d", n)
		}
	})
	t.Run("a journal bbolt panics on, refused first", func(t *testing.T) {
		path := filled(t)
		pageSize, _ := pageTypes(t, path)
		fi, _ := os.Stat(path)
		spoil(t, path, int64(2*pageSize), int(fi.Size())-2*pageSize) // the freelist too: bbolt.Open panics
		if _, err := Open(path); err == nil {
			t.Fatal("opened")
		}
		// The refusal released the file: the operator's next start works.
		j, err := OpenWith(path, Options{StartNew: true, LockTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
	})
	for _, how := range []string{"emptied", "removed"} {
		t.Run("an "+how+" journal", func(t *testing.T) {
			path := filled(t)
			if how == "emptied" {
				os.Truncate(path, 0)
			} else {
				os.Remove(path)
			}
			j, err := OpenWith(path, Options{StartNew: true})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if o := j.Opened(); !o.Created || o.Replaced == "" || o.KeptAt != "" {
				t.Fatalf("opened: %+v", o)
			}
		})
	}
}

// A page of the journal spoiled while the bridge runs: reads fail, the
// journal says so once, is read again until it works, and says so.
func TestAReadFailureAtRunTimeIsReportedUntilReadsWorkAgain(t *testing.T) {
	path := filled(t)
	j, err := OpenWith(path, Options{ProbeInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var mu sync.Mutex
	var seen []error
	changed := make(chan struct{}, 10)
	j.OnHealth(func(err error) {
		mu.Lock()
		seen = append(seen, err)
		mu.Unlock()
		changed <- struct{}{}
	})
	if err := j.Health(); err != nil {
		t.Fatalf("healthy at start: %v", err)
	}

	// Spoil every page but the meta pages: whatever is read fails.
	pageSize := j.db.Info().PageSize
	orig, _ := os.ReadFile(path)
	spoil(t, path, int64(2*pageSize), len(orig)-2*pageSize)
	for _, read := range map[string]func() error{
		"entries": func() error { _, err := j.Entries("sim", 0, 0); return err },
		"last":    func() error { _, _, err := j.Last("sim", "elect", "witness", false); return err },
		"epoch":   func() error { _, err := j.Epoch("sim"); return err },
		"result":  func() error { _, _, err := j.Result("elect", "sim", "req-0"); return err },
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("a read of a damaged journal panicked: %v", r)
				}
			}()
			if err := read(); err == nil {
				t.Errorf("a read of a spoiled journal worked")
			}
		}()
	}
	if j.Health() == nil {
		t.Fatal("the journal still says it is healthy")
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("nobody was told")
	}

	// Repaired underneath (as a transient fault would clear): healthy again.
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt(orig[2*pageSize:], int64(2*pageSize))
	f.Close()
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the journal did not notice reads work again")
	}
	if err := j.Health(); err != nil {
		t.Fatalf("still unhealthy: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] == nil || seen[1] != nil {
		t.Fatalf("health changes: %v", seen)
	}
	if es, err := j.Entries("sim", 0, 0); err != nil || len(es) != 100 {
		t.Fatalf("entries after the repair: %d %v", len(es), err)
	}
}

func TestABackupTakenWhileWritingIsConsistentAndRestores(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.db")
	j := open(t, path)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a bridge at work
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := j.Append(Entry{Pool: "sim", Kind: "fence", Step: "witness", Detail: strings.Repeat("x", 200)}); err != nil {
				t.Error(err)
				return
			}
			if _, err := j.AdvanceEpoch("sim", fmt.Sprint(i), 0); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	f, size, err := j.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup.db")
	out, _ := os.Create(backup)
	if n, err := io.Copy(out, f); err != nil || n != size {
		t.Fatalf("copied %d of %d: %v", n, size, err)
	}
	out.Close()
	f.Close()
	close(stop)
	wg.Wait()
	if left, _ := filepath.Glob(filepath.Join(dir, ".journal.db.backup-*")); len(left) > 0 {
		t.Errorf("the snapshot left files behind: %v", left)
	}

	sum, err := Check(backup)
	if err != nil {
		t.Fatalf("the backup does not check: %v", err)
	}
	p := sum.Pools["sim"]
	if p.Entries == 0 || p.Epoch == 0 || sum.Bytes != size {
		t.Fatalf("summary %+v", sum)
	}
	// The epoch is raised after each entry: a copy of one moment has as
	// many entries as the epoch, or one more.
	if p.Entries != p.Epoch && p.Entries != p.Epoch+1 {
		t.Fatalf("the copy is not of one moment: %d entries, epoch %d", p.Entries, p.Epoch)
	}
	if _, err := Check(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("checking the journal a bridge holds: %v", err)
	}
	j.Close()

	// Restore: the journal lost, the backup copied in its place.
	os.Remove(path)
	data, _ := os.ReadFile(backup)
	os.WriteFile(path, data, 0o600)
	j = open(t, path)
	defer j.Close()
	if n, _ := j.Epoch("sim"); n != p.Epoch {
		t.Fatalf("restored epoch %d, want %d", n, p.Epoch)
	}
	if es, err := j.Entries("sim", 0, 0); err != nil || uint64(len(es)) != p.Entries {
		t.Fatalf("restored %d entries, want %d: %v", len(es), p.Entries, err)
	}
}

func TestCheckRefusesWhatIsNotAJournal(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, bytes.Repeat([]byte{0xff}, 64<<10), 0o600)
	for _, path := range []string{empty, garbage, filepath.Join(dir, "none")} {
		if _, err := Check(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", path, err)
		}
	}
	var d *DamagedError
	if _, err := Check(garbage); !errors.As(err, &d) {
		t.Errorf("garbage is not reported damaged: %v", err)
	}
}
