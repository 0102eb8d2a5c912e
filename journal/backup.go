package journal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// WriteBackup writes a consistent copy of the journal to w: bbolt's
// tx.WriteTo inside one read transaction, so writers go on meanwhile and
// the copy is the journal as of one moment. It returns the bytes written.
func (j *Bolt) WriteBackup(w io.Writer) (int64, error) {
	var n int64
	err := j.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Snapshot copies the journal (WriteBackup) into a temporary file beside
// it and returns the file, at its start, and its size. The read
// transaction lasts as long as the local copy takes, not as long as its
// reader: a slow reader does not hold bbolt's remapping back. The file is
// already unlinked; closing it frees it.
func (j *Bolt) Snapshot() (*os.File, int64, error) {
	f, err := os.CreateTemp(filepath.Dir(j.path), "."+filepath.Base(j.path)+".backup-*")
	if err != nil {
		return nil, 0, fmt.Errorf("journal backup: %w", err)
	}
	os.Remove(f.Name()) // nothing is left behind, even by a crash
	n, err := j.WriteBackup(f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("journal backup: %w", err)
	}
	return f, n, nil
}

// Summary describes a verified journal file.
type Summary struct {
	Bytes int64
	// Pools by name.
	Pools map[string]PoolSummary
	// Notes are what is worth knowing but not wrong (a torn meta page the
	// bridge rewrites when it opens the file).
	Notes []string
}

// PoolSummary is one pool's part of a journal.
type PoolSummary struct {
	Entries uint64
	Epoch   uint64
}

// Names returns the pools' names in order.
func (s Summary) Names() []string {
	out := make([]string, 0, len(s.Pools))
	for name := range s.Pools {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Check verifies a journal file no bridge has open, as OpenWith does at
// start but without writing to it: a backup before it is restored. A
// journal a running bridge holds cannot be checked (copy it with
// `xenha-bridge journal --backup` and check the copy).
func Check(path string) (Summary, error) {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return Summary{}, fmt.Errorf("journal %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return Summary{}, fmt.Errorf("journal %s is not a regular file", path)
	case fi.Size() == 0:
		return Summary{}, fmt.Errorf("journal %s is empty (0 bytes): it is not a journal", path)
	}
	db, err := openBolt(path, &bolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: 500 * time.Millisecond})
	if err != nil {
		return Summary{}, err
	}
	defer db.Close()
	sum := Summary{Bytes: fi.Size(), Pools: map[string]PoolSummary{}}
	if torn := tornMeta(db); torn >= 0 {
		sum.Notes = append(sum.Notes, fmt.Sprintf("meta page %d is torn (a crash while it was written); bbolt reads the other "+
			"one, and the bridge rewrites it when it opens the journal", torn))
	}
	problems, more, _ := verify(db, false)
	if len(problems) > 0 {
		return Summary{}, &DamagedError{Path: path, Problems: problems, More: more}
	}
	err = protect(func() error {
		return db.View(func(tx *bolt.Tx) error {
			if entries := tx.Bucket(bucketEntries); entries != nil {
				_ = entries.ForEachBucket(func(pool []byte) error {
					sum.Pools[string(pool)] = PoolSummary{Entries: entries.Bucket(pool).Sequence()}
					return nil
				})
			}
			if epochs := tx.Bucket(bucketEpochs); epochs != nil {
				_ = epochs.ForEach(func(pool, _ []byte) error {
					p := sum.Pools[string(pool)]
					p.Epoch, _ = storedEpoch(epochs, string(pool))
					sum.Pools[string(pool)] = p
					return nil
				})
			}
			return nil
		})
	})
	if err != nil {
		return Summary{}, &DamagedError{Path: path, Problems: []string{"reading it failed: " + err.Error()}}
	}
	return sum, nil
}
