package journal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Options say how OpenWith treats the file it finds.
type Options struct {
	// StartNew starts a new, empty journal where the one at the path is
	// damaged, empty, or missing although one was created there: the
	// operator's `serve --new-journal`. A damaged file is kept beside
	// (PATH.damaged-TIME). A healthy journal is always kept: StartNew never
	// throws one away.
	StartNew bool
	// ProbeInterval is how often, while reads fail, the journal is read
	// again to find out whether they work again (default 5s).
	ProbeInterval time.Duration
	// LockTimeout bounds the wait for the file lock another process holds
	// (default 2s).
	LockTimeout time.Duration
}

// Opened says what OpenWith found and did, for the bridge's log.
type Opened struct {
	// Created: the journal is new (a first start, or StartNew).
	Created bool
	// Replaced says what was wrong with the journal StartNew replaced
	// ("" when none was).
	Replaced string
	// KeptAt is where the damaged file was moved ("" when none was).
	KeptAt string
	// StartNewIgnored: StartNew was asked for, but the journal was healthy
	// and was kept.
	StartNewIgnored bool
	// HealedMeta: one of bbolt's two meta pages was torn (a crash while it
	// was written) and was rewritten from the other.
	HealedMeta bool
}

// ErrJournalGone is wrapped by the error of OpenWith when the journal is
// missing or empty where one was created before.
var ErrJournalGone = errors.New("the journal is gone")

// goneError is ErrJournalGone with what to do.
type goneError struct{ msg string }

func (e *goneError) Error() string        { return e.msg }
func (e *goneError) Is(target error) bool { return target == ErrJournalGone }

// DamagedError is OpenWith's error for a file that is not a sound
// journal. Its message names the file, what is wrong and what to do.
type DamagedError struct {
	Path string
	// Problems found, at most maxProblems of them; More counts the rest.
	Problems []string
	More     int
}

const maxProblems = 5

func (e *DamagedError) Error() string {
	what := strings.Join(e.Problems, "; ")
	if e.More > 0 {
		what += fmt.Sprintf("; and %d more problems", e.More)
	}
	return fmt.Sprintf("journal %s is damaged: %s. The bridge does not start on a damaged journal: it may have lost epochs, "+
		"request results or an unfinished election. %s", e.Path, what, wayOut(e.Path, true))
}

// wayOut says what the operator can do about a journal that cannot be used.
func wayOut(path string, keep bool) string {
	kept := ""
	if keep {
		kept = " (the damaged file is kept as " + filepath.Base(path) + ".damaged-TIME)"
	}
	return "Restore the last backup (xenha-bridge journal --backup FILE makes them; stop the bridge, check the copy with " +
		"xenha-bridge journal --check FILE, copy it to " + path + " with mode 0600, start the bridge), or start a new, empty journal " +
		"with xenha-bridge serve --new-journal" + kept + ": every pool's epochs start again from 1 and the results of earlier " +
		"request ids are forgotten."
}

// MarkerPath is the file beside a journal that records that a journal was
// created at path: while it exists, a missing or empty journal is refused
// instead of silently replaced by a new one.
func MarkerPath(path string) string { return path + ".created" }

// Open opens (or, on a first start, creates) the journal file, as OpenWith
// with no options.
func Open(path string) (*Bolt, error) { return OpenWith(path, Options{}) }

// OpenWith opens the journal file, or creates it on a first start, and
// verifies it before anything else reads it: bbolt's consistency check
// (tx.Check) and every entry, epoch and counter read back. Only one
// process may hold the file.
//
// It refuses, with an error saying what to do:
//   - a damaged file (*DamagedError), never panicking whatever the bytes;
//   - an empty file, or a missing one where a journal was created before
//     (the marker file beside it, MarkerPath, says so): ErrJournalGone.
//
// With Options.StartNew it starts a new journal instead, keeping a damaged
// file beside it; Bolt.Opened says what it did.
func OpenWith(path string, o Options) (*Bolt, error) {
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 5 * time.Second
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 2 * time.Second
	}
	var info Opened
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if created, ok := markerTime(path); ok {
			if !o.StartNew {
				return nil, &goneError{fmt.Sprintf("journal %s is missing (removed, or not restored), but a journal was created there on %s "+
					"(%s says so): the bridge does not silently start a new one. %s",
					path, created, MarkerPath(path), wayOut(path, false))}
			}
			info.Replaced = "the journal was missing"
		}
	case err != nil:
		return nil, fmt.Errorf("journal %s: %w", path, err)
	case fi.IsDir():
		return nil, fmt.Errorf("journal %s is a directory, not a journal file", path)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("journal %s is not a regular file", path)
	case fi.Size() == 0:
		if !o.StartNew {
			return nil, &goneError{fmt.Sprintf("journal %s is empty (0 bytes): it was emptied, or its first start never finished "+
				"(a journal is never empty), and the bridge does not silently start a new one. %s",
				path, wayOut(path, false))}
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("journal %s: %w", path, err)
		}
		info.Replaced = "the journal was empty"
	}

	db, err := openBolt(path, &bolt.Options{Timeout: o.LockTimeout})
	if err != nil {
		if d := (*DamagedError)(nil); errors.As(err, &d) && o.StartNew {
			return startOver(path, o, d)
		}
		return nil, err
	}
	problems, more, healed := verify(db, true)
	info.HealedMeta = healed
	if len(problems) > 0 {
		db.Close()
		d := &DamagedError{Path: path, Problems: problems, More: more}
		if !o.StartNew {
			return nil, d
		}
		return startOver(path, o, d)
	}
	if fi == nil || info.Replaced != "" {
		info.Created = true
	} else if o.StartNew {
		info.StartNewIgnored = true
	}
	return finishOpen(db, path, o, info)
}

// startOver moves a damaged journal aside and creates a new one in its place.
func startOver(path string, o Options, d *DamagedError) (*Bolt, error) {
	kept := fmt.Sprintf("%s.damaged-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(path, kept); err != nil {
		return nil, fmt.Errorf("%w (and it cannot be moved aside to start a new one: %v)", d, err)
	}
	db, err := openBolt(path, &bolt.Options{Timeout: o.LockTimeout})
	if err != nil {
		return nil, err
	}
	what := strings.Join(d.Problems, "; ")
	return finishOpen(db, path, o, Opened{Created: true, Replaced: "the journal was damaged: " + what, KeptAt: kept})
}

// finishOpen creates the buckets, writes the marker, and returns the store.
func finishOpen(db *bolt.DB, path string, o Options, info Opened) (*Bolt, error) {
	err := protect(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketEntries, bucketResults, bucketEpochs, bucketStates} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	if _, ok := markerTime(path); !ok {
		if err := writeMarker(path); err != nil {
			db.Close()
			return nil, fmt.Errorf("journal %s: writing %s: %w", path, MarkerPath(path), err)
		}
	}
	j := &Bolt{db: db, path: path, now: time.Now, opened: info, probeEvery: o.ProbeInterval, done: make(chan struct{})}
	return j, nil
}

// openBolt opens the file with bbolt. A file bbolt cannot read, or that
// makes it panic or fault, is a *DamagedError; a file another process holds
// is not.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	var file *os.File
	opts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	err = protect(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, opts)
		return err
	})
	var p *panicError
	switch {
	case err == nil:
		return db, nil
	case errors.As(err, &p):
		if file != nil { // bbolt did not get to unlock it, nor to close it
			unlock(file)
			file.Close()
		}
		return nil, &DamagedError{Path: path, Problems: []string{"bbolt cannot read it: " + p.Error()}}
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("journal %s is in use by another process (a running bridge?): its file lock was not released within %s",
			path, opts.Timeout)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return nil, &DamagedError{Path: path, Problems: []string{"bbolt cannot read it: " + err.Error()}}
}

// panicError is a panic (or a memory fault on the mapped file) met while
// reading the journal: bbolt panics on some damaged pages.
type panicError struct{ v any }

func (p *panicError) Error() string { return fmt.Sprint(p.v) }

// protect runs fn, turning a panic, or a fault on the memory-mapped file
// (a page beyond the end of a cut file), into a *panicError.
func protect(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{r}
		}
	}()
	return fn()
}

// verify reads the whole journal back: its own structure (every entry
// decodes and is where it says, every epoch is a number, every pool's
// counter is past its last entry), then bbolt's consistency check. It
// returns what is wrong, at most maxProblems of it, and how many more.
func verify(db *bolt.DB, heal bool) (problems []string, more int, healed bool) {
	add := func(format string, args ...any) {
		if len(problems) < maxProblems {
			problems = append(problems, fmt.Sprintf(format, args...))
		} else {
			more++
		}
	}
	var size int64
	if fi, err := os.Stat(db.Path()); err == nil {
		size = fi.Size()
	}
	walked := false
	torn := tornMeta(db)
	err := protect(func() error {
		return db.View(func(tx *bolt.Tx) error {
			if need := tx.Size(); size < need {
				// Pages past the end of the file would fault when read.
				add("the file is cut short: %d bytes, where the journal's pages need %d", size, need)
				return nil
			}
			walk(tx, add)
			walked = true
			return nil
		})
	})
	if err != nil {
		add("reading it failed: %v", err)
	}
	if !walked {
		return problems, more, false
	}
	if torn >= 0 {
		// One of the two meta pages is torn (a crash while bbolt wrote it:
		// what the second one is for). bbolt reads the other; its check
		// would stop at the torn one. The next commit rewrites it.
		if !heal {
			return problems, more, false
		}
		if err := protect(func() error { return db.Update(func(*bolt.Tx) error { return nil }) }); err != nil {
			add("rewriting its torn meta page %d failed: %v", torn, err)
			return problems, more, false
		}
		if tornMeta(db) >= 0 {
			add("meta page %d is torn and could not be rewritten", torn)
			return problems, more, false
		}
		healed = true
	}
	// bbolt's own check: every page reachable or free, none twice, keys in
	// order. It runs in a goroutine of its own and recovers its panics; the
	// walk above has read every page it reads, without fault.
	err = protect(func() error {
		return db.View(func(tx *bolt.Tx) error {
			for e := range tx.Check() {
				add("%v", e)
			}
			return nil
		})
	})
	if err != nil {
		add("checking it failed: %v", err)
	}
	return problems, more, healed
}

// tornMeta returns which of the file's two meta pages (0 or 1) is not
// valid, or -1 when both are. When both are invalid bbolt does not open
// the file at all.
func tornMeta(db *bolt.DB) int {
	size := db.Info().PageSize
	f, err := os.Open(db.Path())
	if err != nil {
		return -1
	}
	defer f.Close()
	buf := make([]byte, 2*size)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return -1
	}
	for id := range 2 {
		if !metaValid(buf[id*size:(id+1)*size], uint64(id)) {
			return id
		}
	}
	return -1
}

// metaValid checks a bbolt meta page as bbolt does (magic, version,
// checksum) and that it names itself: a page header (id uint64, flags
// uint16, count uint16, overflow uint32), then the meta (magic, version,
// page size, flags uint32; root, sequence, freelist, pgid, txid uint64:
// 56 bytes),
// then the FNV-64a checksum of the meta, all in the machine's byte order.
func metaValid(page []byte, id uint64) bool {
	const header, sumAt = 16, 16 + 56
	if len(page) < sumAt+8 {
		return false
	}
	ne := binary.NativeEndian
	h := fnv.New64a()
	h.Write(page[header:sumAt])
	return ne.Uint64(page[0:8]) == id && ne.Uint32(page[header:]) == 0xED0CDAED && ne.Uint32(page[header+4:]) == 2 &&
		ne.Uint64(page[sumAt:]) == h.Sum64()
}

// walk reads every key and value of the journal and reports what is not
// as the journal writes it.
func walk(tx *bolt.Tx, add func(string, ...any)) {
	if entries := tx.Bucket(bucketEntries); entries != nil {
		_ = entries.ForEach(func(pool, v []byte) error {
			b := entries.Bucket(pool)
			if v != nil || b == nil {
				add("entries: %q is not a pool's bucket", clip(pool))
				return nil
			}
			var last uint64
			_ = b.ForEach(func(k, v []byte) error {
				if len(k) != 8 || v == nil {
					add("entries of pool %s: key %x is not an entry number", clip(pool), clip(k))
					return nil
				}
				seq := binary.BigEndian.Uint64(k)
				last = seq
				var e Entry
				if err := json.Unmarshal(v, &e); err != nil {
					add("entry %d of pool %s does not decode: %v", seq, clip(pool), err)
				} else if e.Seq != seq || e.Pool != string(pool) {
					add("entry %d of pool %s says it is entry %d of pool %s", seq, clip(pool), e.Seq, clip([]byte(e.Pool)))
				}
				return nil
			})
			if b.Sequence() < last {
				add("pool %s: the entry counter %d is behind the last entry %d (new entries would overwrite old ones)",
					clip(pool), b.Sequence(), last)
			}
			return nil
		})
	}
	if epochs := tx.Bucket(bucketEpochs); epochs != nil {
		_ = epochs.ForEach(func(pool, v []byte) error {
			if len(v) != 8 {
				add("the epoch of pool %s is not a number (%d bytes)", clip(pool), len(v))
			}
			return nil
		})
	}
	for _, name := range [][]byte{bucketResults, bucketStates} {
		if b := tx.Bucket(name); b != nil {
			_ = b.ForEach(func(k, v []byte) error { // read every page
				if v == nil {
					add("%s: %q is a bucket, not a value", name, clip(k))
				}
				return nil
			})
		}
	}
}

// clip keeps a damaged key's bytes short in a message.
func clip(b []byte) string {
	const limit = 64
	s := string(b)
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// markerTime reports whether the marker beside path exists, and when it
// says the journal was created.
func markerTime(path string) (string, bool) {
	b, err := os.ReadFile(MarkerPath(path))
	if err != nil {
		return "", !errors.Is(err, fs.ErrNotExist) // unreadable: assume it is there
	}
	for _, line := range strings.Split(string(b), "\n") {
		if t, ok := strings.CutPrefix(line, "created: "); ok {
			return strings.TrimSpace(t), true
		}
	}
	return "an unknown date", true
}

// writeMarker writes the marker beside path, atomically and durably.
func writeMarker(path string) error {
	marker := MarkerPath(path)
	text := fmt.Sprintf("xenha-bridge journal marker\n"+
		"journal: %s\ncreated: %s\n\n"+
		"A journal was created beside this file. While this file exists, xenha-bridge refuses to start when\n"+
		"the journal is missing or empty, instead of silently starting a new one (its epochs would go back).\n"+
		"Restore the journal from a backup, or start a new one with `xenha-bridge serve --new-journal`.\n",
		path, time.Now().UTC().Format(time.RFC3339))
	tmp, err := os.CreateTemp(filepath.Dir(marker), "."+filepath.Base(marker)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(text); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), marker); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(marker)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
