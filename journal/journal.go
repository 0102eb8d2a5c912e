// Package journal is the bridge's durable memory: every step of a
// destructive operation, the first result of each request id (so repeated
// requests are idempotent), and each pool's epoch (so the fencing token
// never goes backwards, even across restarts). The embedded store is bbolt,
// for one management server; several share package mysqlstore's.
package journal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Entry is one journaled step.
type Entry struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Pool      string    `json:"pool"`
	RequestID string    `json:"request_id,omitempty"`
	Kind      string    `json:"kind"` // "fence", "elect", ...
	Step      string    `json:"step"` // "witness", "decision", "power-off", "vm-reset", ...
	Host      string    `json:"host,omitempty"`
	Epoch     uint64    `json:"epoch"`
	OK        bool      `json:"ok"`
	Detail    string    `json:"detail"`
	// Bridge wrote the entry (a shared store; empty in the embedded one).
	Bridge string `json:"bridge,omitempty"`
}

// Store is what the rest of the bridge needs from a journal.
type Store interface {
	Append(e Entry) (Entry, error)
	Entries(pool string, after uint64, limit int) ([]Entry, error)
	// Last returns a pool's newest entry of a kind and step (only those
	// with OK set, if okOnly), without reading the whole history.
	Last(pool, kind, step string, okOnly bool) (Entry, bool, error)
	Result(kind, pool, requestID string) ([]byte, bool, error)
	SaveResult(kind, pool, requestID string, result []byte) error
	Epoch(pool string) (uint64, error)
	// AdvanceEpoch records a pool's controller and master (state) as
	// seen by a bridge whose epoch is current, and returns the pool's
	// epoch: the higher of the stored and current epochs, plus one when
	// state differs from the state last recorded. So bridges sharing a
	// store that see the same change raise the epoch once between them,
	// and an epoch never goes down.
	AdvanceEpoch(pool, state string, current uint64) (uint64, error)
	Close() error
}

var (
	bucketEntries = []byte("entries") // pool → seq → Entry
	bucketResults = []byte("results") // kind/pool/request → result
	bucketEpochs  = []byte("epochs")  // pool → epoch
	bucketStates  = []byte("states")  // pool → the state the epoch was raised for
)

// Bolt is the embedded Store. Its reads are watched: see Health.
type Bolt struct {
	db     *bolt.DB
	path   string
	now    func() time.Time
	opened Opened

	probeEvery time.Duration
	done       chan struct{}
	closeOnce  sync.Once
	notifyMu   sync.Mutex // one notification at a time
	mu         sync.Mutex // guards what follows
	err        error      // the last read failure; nil while reads work
	probing    bool
	closed     bool
	watchers   []func(error)
}

var _ Store = (*Bolt)(nil)

// Close closes the file.
func (j *Bolt) Close() error {
	j.closeOnce.Do(func() {
		j.mu.Lock()
		j.closed = true
		j.mu.Unlock()
		close(j.done)
	})
	return j.db.Close()
}

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// Append stores e with the next sequence number of its pool; the write is
// synced before Append returns.
func (j *Bolt) Append(e Entry) (Entry, error) {
	if e.Pool == "" {
		return e, errors.New("journal: an entry needs a pool")
	}
	if e.Time.IsZero() {
		e.Time = j.now()
	}
	err := j.update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketEntries).CreateBucketIfNotExists([]byte(e.Pool))
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return b.Put(u64(seq), v)
	})
	return e, err
}

// Entries returns up to limit entries of a pool after a sequence number.
func (j *Bolt) Entries(pool string, after uint64, limit int) ([]Entry, error) {
	var out []Entry
	err := j.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries).Bucket([]byte(pool))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("journal: entry %d of %s: %w", binary.BigEndian.Uint64(k), pool, err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Last returns a pool's newest entry of a kind and step, reading back
// from the newest.
func (j *Bolt) Last(pool, kind, step string, okOnly bool) (Entry, bool, error) {
	var out Entry
	found := false
	err := j.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries).Bucket([]byte(pool))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("journal: entry %d of %s: %w", binary.BigEndian.Uint64(k), pool, err)
			}
			if e.Kind == kind && e.Step == step && (e.OK || !okOnly) {
				out, found = e, true
				return nil
			}
		}
		return nil
	})
	return out, found, err
}

func resultKey(kind, pool, id string) []byte { return []byte(kind + "\x00" + pool + "\x00" + id) }

// Result returns the stored result of a request, if any.
func (j *Bolt) Result(kind, pool, requestID string) ([]byte, bool, error) {
	var out []byte
	err := j.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketResults).Get(resultKey(kind, pool, requestID)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	return out, out != nil, err
}

// SaveResult keeps the first result of a request; later ones are ignored.
func (j *Bolt) SaveResult(kind, pool, requestID string, result []byte) error {
	return j.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketResults)
		k := resultKey(kind, pool, requestID)
		if b.Get(k) != nil {
			return nil
		}
		return b.Put(k, result)
	})
}

// Epoch returns a pool's last epoch (0 if none).
func (j *Bolt) Epoch(pool string) (uint64, error) {
	var n uint64
	err := j.view(func(tx *bolt.Tx) error {
		var err error
		n, err = storedEpoch(tx.Bucket(bucketEpochs), pool)
		return err
	})
	return n, err
}

// storedEpoch reads a pool's epoch (0 if none). A value that is not a
// number is an error, never 0: an epoch must not go back.
func storedEpoch(epochs *bolt.Bucket, pool string) (uint64, error) {
	v := epochs.Get([]byte(pool))
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(v), nil
	}
	return 0, fmt.Errorf("journal: the epoch of pool %s is damaged (%d bytes, not a number)", pool, len(v))
}

// AdvanceEpoch records a pool's state and returns its epoch; see Store.
func (j *Bolt) AdvanceEpoch(pool, state string, current uint64) (uint64, error) {
	var n uint64
	err := j.update(func(tx *bolt.Tx) error {
		epochs, states := tx.Bucket(bucketEpochs), tx.Bucket(bucketStates)
		stored, err := storedEpoch(epochs, pool)
		if err != nil {
			return err
		}
		n = max(current, stored)
		if string(states.Get([]byte(pool))) != state {
			n++
			if err := states.Put([]byte(pool), []byte(state)); err != nil {
				return err
			}
		}
		return epochs.Put([]byte(pool), u64(n))
	})
	return n, err
}

// Stats is the journal's size, for metrics.
type Stats struct {
	// Bytes is the size of the database file.
	Bytes int64
	// Entries counts the entries of each pool.
	Entries map[string]uint64
}

// Stats reads the journal's size. It is cheap: it reads one counter per
// pool, not the entries.
func (j *Bolt) Stats() (Stats, error) {
	st := Stats{Entries: map[string]uint64{}}
	err := j.view(func(tx *bolt.Tx) error {
		st.Bytes = tx.Size()
		return tx.Bucket(bucketEntries).ForEachBucket(func(pool []byte) error {
			// Entries are numbered by the bucket's sequence and never
			// removed: the sequence is the count.
			st.Entries[string(pool)] = tx.Bucket(bucketEntries).Bucket(pool).Sequence()
			return nil
		})
	})
	return st, err
}
