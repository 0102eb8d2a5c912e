package journal

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The embedded journal watches its own reads. When one fails (an error, or
// a panic bbolt raises on a damaged page), the journal is unhealthy: the
// bridge reports NOT_SERVING (server.Server.SetReady), so that callers
// stop sending it work that needs the journal. While unhealthy, the whole
// journal is read again every Options.ProbeInterval; once that works, it
// is healthy again.

// Health returns nil while the journal's reads work, else the last failure.
func (j *Bolt) Health() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// OnHealth calls f on every change of Health: f(err) when reads start
// failing, f(nil) when they work again. Calls are made one at a time, each
// with the state current when it is made.
func (j *Bolt) OnHealth(f func(err error)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.watchers = append(j.watchers, f)
}

// Opened says what OpenWith found and did.
func (j *Bolt) Opened() Opened { return j.opened }

// Path is the journal file.
func (j *Bolt) Path() string { return j.path }

// view runs a read transaction; a failure marks the journal unhealthy.
func (j *Bolt) view(fn func(tx *bolt.Tx) error) error {
	err := protect(func() error { return j.db.View(fn) })
	if err != nil {
		j.failed(err)
	}
	return err
}

// update runs a write transaction. A write may fail for reasons of its own
// (a full disk: the step is refused, the journal is still readable); a
// panic comes from a damaged page and marks the journal unhealthy.
func (j *Bolt) update(fn func(tx *bolt.Tx) error) error {
	err := protect(func() error { return j.db.Update(fn) })
	var p *panicError
	if errors.As(err, &p) {
		err = fmt.Errorf("journal %s: %w", j.path, err)
		j.failed(err)
	}
	return err
}

func (j *Bolt) failed(err error) {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return
	}
	changed := j.err == nil
	j.err = err
	start := !j.probing
	j.probing = true
	j.mu.Unlock()
	if changed {
		j.notify()
	}
	if start {
		go j.probe()
	}
}

// probe reads the whole journal again every probeEvery until it works.
func (j *Bolt) probe() {
	t := time.NewTicker(j.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-j.done:
			return
		case <-t.C:
		}
		var problems []string
		err := protect(func() error {
			return j.db.View(func(tx *bolt.Tx) error {
				walk(tx, func(format string, args ...any) {
					problems = append(problems, fmt.Sprintf(format, args...))
				})
				return nil
			})
		})
		if err == nil && len(problems) > 0 {
			err = fmt.Errorf("journal %s: %s", j.path, problems[0])
		}
		j.mu.Lock()
		if j.closed {
			j.mu.Unlock()
			return
		}
		if err != nil {
			j.err = err
			j.mu.Unlock()
			continue
		}
		j.err, j.probing = nil, false
		j.mu.Unlock()
		j.notify()
		return
	}
}

// notify tells the watchers the current state.
func (j *Bolt) notify() {
	j.notifyMu.Lock()
	defer j.notifyMu.Unlock()
	j.mu.Lock()
	err, ws := j.err, append([]func(error){}, j.watchers...)
	j.mu.Unlock()
	for _, w := range ws {
		w(err)
	}
}
