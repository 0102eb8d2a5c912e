package xenha

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
)

// watcher keeps one pool's view current: an event.from loop that follows
// the master across failovers, and periodic probes of every member (the
// only way to see a master that is unreachable from the bridge, or a
// second host claiming to be master).
type watcher struct {
	spec PoolSpec
	pool *xapi.Pool
	hub  *Hub
	log  hclog.Logger
	poll time.Duration

	view     atomic.Pointer[PoolView]
	observed chan struct{} // closed at the first observation
	once     sync.Once
	onUUID   func(name, uuid string)

	mu           sync.Mutex // guards what derive reads and the epoch
	ob           observation
	epoch        uint64
	epochs       EpochStore // nil: memory only
	demoted      bool       // the last master said HOST_IS_SLAVE: someone designated another
	expected     string     // a master the bridge itself is promoting
	cancelFollow context.CancelFunc
	following    *xapi.Client // the master the event loop follows; nil while it searches
	cutByProbe   bool         // the event loop was cut because its master stopped answering
	restarting   bool         // its search was cancelled to start again from a new master

	probeTimeout time.Duration // for the master check
	lineage      uint64        // the attach this watcher serves (kept by a replacement)

	kick   chan struct{} // asks the probe loop to probe now
	wake   chan struct{} // cuts the event loop's back-off short (a new master was made)
	cancel context.CancelFunc
	done   chan struct{}
}

func newWatcher(spec PoolSpec, pool *xapi.Pool, hub *Hub, log hclog.Logger, poll time.Duration, onUUID func(string, string)) *watcher {
	w := &watcher{
		spec: spec, pool: pool, hub: hub, log: log, poll: poll, onUUID: onUUID,
		observed: make(chan struct{}), kick: make(chan struct{}, 1), wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	w.view.Store(derive(spec, observation{}, 0))
	return w
}

func (w *watcher) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); w.followLoop(ctx) }()
	go func() { defer wg.Done(); w.probeLoop(ctx) }()
	go func() { defer wg.Done(); w.masterCheckLoop(ctx) }()
	go func() { wg.Wait(); close(w.done) }()
}

func (w *watcher) stop() {
	w.cancel()
	<-w.done
	// Log out, but never wait long on a host that is gone.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	w.pool.Close(ctx)
}

// retire marks a stopped watcher's view not observed: a handle taken
// before its pool was detached (or the bridge closed) stops acting on it.
func (w *watcher) retire() {
	v := *w.view.Load()
	v.Observed, v.Controller = false, ControllerNone
	v.Warnings = []Warning{{WarnNotObserved, "The pool is no longer attached to this bridge: nobody acts on it through this view."}}
	w.view.Store(&v)
}

// update changes the observation under the lock, derives the new view,
// raises the epoch on a controller or master change, and publishes what
// changed — in that order, so events always carry the epoch they caused.
func (w *watcher) update(change func(ob *observation)) {
	cur := w.updateLocked(change)
	if cur.Observed {
		// Outside w.mu: onUUID takes the manager's lock, so holding a
		// watcher's lock while waiting for the manager's would deadlock
		// with anyone taking them the other way round.
		w.once.Do(func() {
			w.onUUID(w.spec.Name, cur.UUID)
			close(w.observed)
		})
	}
}

func (w *watcher) updateLocked(change func(ob *observation)) *PoolView {
	w.mu.Lock()
	defer w.mu.Unlock()
	change(&w.ob)
	old := w.view.Load()
	cur := derive(w.spec, w.ob, w.epoch)
	if cur.Observed && (!old.Observed || old.Controller != cur.Controller || old.Master.UUID != cur.Master.UUID) {
		// The store decides, so that bridges sharing it raise the epoch
		// once per change between them, and adopt one another's.
		n, err := w.epoch+1, error(nil)
		if w.epochs != nil {
			if n, err = w.epochs.AdvanceEpoch(w.spec.Name, cur.Controller.String()+"/"+cur.Master.UUID, w.epoch); err != nil {
				w.log.Error("cannot record the epoch: raised here only", "epoch", w.epoch+1, "error", err)
				n = w.epoch + 1
			}
		}
		w.epoch = max(w.epoch, n)
		cur.Epoch = w.epoch
	}
	cause := CauseUnknown
	switch {
	case old.HAEnabled || cur.HAEnabled:
		cause = CauseXenHAElection
	case w.expected != "" && w.expected == cur.Master.UUID:
		cause = CauseCloudStackElection
	case w.demoted:
		cause = CauseAdminDesignation
	}
	if old.Master.UUID != cur.Master.UUID {
		w.demoted = false
		if w.expected == cur.Master.UUID {
			w.expected = ""
		}
	}
	w.view.Store(cur)
	evs := diff(old, cur, cause)
	for _, e := range evs {
		w.log.Info("pool event", "type", e.Type, "host", e.Host, "epoch", e.Epoch, "message", e.Message)
	}
	w.hub.Publish(evs...)
	return cur
}

// wakeUp cuts the event loop's back-off short.
func (w *watcher) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// restartSearch cancels a search for the master under way, so that the
// event loop starts again from a fresh hint; a loop following a master is
// left alone.
func (w *watcher) restartSearch() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.following == nil && w.cancelFollow != nil {
		w.restarting = true
		w.cancelFollow()
	}
}

func (w *watcher) probeNow() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// followLoop runs follow until the watcher stops, backing off after
// failures so a dead pool costs little.
func (w *watcher) followLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		fctx, cancel := context.WithCancel(ctx)
		w.mu.Lock()
		w.cancelFollow, w.restarting = cancel, false
		w.mu.Unlock()
		started := time.Now()
		err := w.follow(fctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		cut, wasFollowing, restarting := w.cutByProbe, w.following != nil, w.restarting
		w.cutByProbe, w.following, w.restarting = false, nil, false
		w.mu.Unlock()
		if restarting {
			continue // a master was just made: look again at once
		}
		switch {
		case xapi.IsCode(err, xapi.CodeHostIsSlave):
			// A clean handover: the old master now follows another.
			w.log.Info("master handed over, following the new one")
			w.mu.Lock()
			w.demoted = true
			w.mu.Unlock()
			w.pool.Invalidate()
			continue
		case xapi.IsCode(err, xapi.CodeEventsLost), xapi.IsCode(err, xapi.CodeEventFromTokenParseFailure):
			w.log.Info("event token refused, resynchronising", "error", err)
			continue
		}
		w.pool.Invalidate()
		last := w.view.Load()
		var several *xapi.MultipleMastersError
		if errors.As(err, &several) && !last.Observed {
			w.followAClaimant(several)
		}
		if cut || !wasFollowing {
			// The master stopped answering (a probe or the master check
			// says so), or none could be found: it is lost.
			w.log.Warn("lost the pool master", "host", last.Master.UUID, "address", last.Master.Address, "epoch", last.Epoch, "error", err)
			w.update(func(ob *observation) { ob.connected = false })
		} else {
			// Only the event stream broke: a probe, not this error, says
			// whether the master is lost, so a reconnection (to the same
			// master, or to one the bridge just made) raises no alarm.
			w.log.Info("the master's event stream broke; probing", "host", last.Master.UUID, "address", last.Master.Address, "error", err)
		}
		w.probeNow()
		if time.Since(started) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-time.After(backoff):
		case <-w.wake:
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// followAClaimant answers a split brain met before any master was
// followed (the bridge started while no master answered, and two came
// back). A bridge that was running follows its last master and so sees
// the pool and the second claimant; this one had none and would see
// nothing, so nobody could heal it. It follows the claimant the most
// members name as master (ties: the lowest URL), which makes the pool
// observed and the split brain visible; which master stays is the
// healer's decision, and it asks XenHA's state of every claimant first.
func (w *watcher) followAClaimant(e *xapi.MultipleMastersError) {
	best, votes := "", -1
	for _, m := range e.Masters {
		if !slices.ContainsFunc(e.Probes, func(p xapi.Probe) bool { return p.URL == m && p.State == xapi.ProbeMaster }) {
			continue // a member refusing the credentials cannot be followed
		}
		n := 0
		for _, p := range e.Probes {
			if p.State == xapi.ProbeSlave && p.MasterAddress == urlHost(m) {
				n++
			}
		}
		if n > votes || (n == votes && m < best) {
			best, votes = m, n
		}
	}
	if best == "" {
		return
	}
	w.log.Warn("several hosts answer as master and none was followed before: following one so the split brain can be seen and healed",
		"masters", len(e.Masters), "following", best, "named_by", votes)
	w.pool.Expect(best)
}

// follow reads the whole pool from the master, then applies its events
// until something fails.
func (w *watcher) follow(ctx context.Context) error {
	c, err := w.pool.Master(ctx)
	if err != nil {
		return err
	}
	batch, err := c.EventFrom(ctx, eventClasses, "", 0)
	if err != nil {
		return err
	}
	st := newPoolState()
	if err := w.apply(ctx, c, st, batch, nil); err != nil {
		return err
	}
	v := w.view.Load()
	w.log.Info("following pool master", "address", c.Address(), "host", v.Master.UUID, "pool_uuid", st.pool.UUID, "epoch", v.Epoch)
	for {
		prev := slices.Clone(st.pool.HAStatefiles)
		batch, err = c.EventFrom(ctx, eventClasses, batch.Token, w.poll)
		if err != nil {
			return err
		}
		if err := w.apply(ctx, c, st, batch, prev); err != nil {
			return err
		}
	}
}

// apply folds a batch into st and publishes the new view. st is written
// only here, under w.mu, which is also where derive reads it.
func (w *watcher) apply(ctx context.Context, c *xapi.Client, st *poolState, batch *xapi.EventBatch, prevStatefiles []string) error {
	w.update(func(ob *observation) {
		for _, ev := range batch.Events {
			if err := st.apply(ev); err != nil {
				w.log.Warn("undecodable event ignored", "error", err)
			}
		}
		if !ob.connected || prevStatefiles == nil { // a (re)connection
			ob.connectedAt = time.Now()
			w.following = c
			w.probeNow() // let the probes catch up with it
		}
		ob.state, ob.connected, ob.observedAt = st, true, time.Now()
	})
	if prevStatefiles == nil || !slices.Equal(prevStatefiles, st.pool.HAStatefiles) {
		srs := w.statefileSRs(ctx, c, st) // reads st without the lock: only this goroutine writes it
		w.update(func(*observation) { st.statefileSRs = srs })
	}
	return nil
}

// statefileSRs resolves pool.ha_statefiles (VDI refs) to SR UUIDs. It
// calls XAPI only when the statefiles change.
func (w *watcher) statefileSRs(ctx context.Context, c *xapi.Client, st *poolState) []string {
	var out []string
	for _, ref := range st.pool.HAStatefiles {
		vdi, err := c.VDIGetRecord(ctx, xapi.VDIRef(ref))
		if err != nil {
			w.log.Warn("cannot resolve the XenHA statefile", "vdi", ref, "error", err)
			continue
		}
		if sr, ok := st.srs[vdi.SR]; ok && !slices.Contains(out, sr.UUID) {
			out = append(out, sr.UUID)
		}
	}
	return out
}

// probeLoop probes every member each ProbeInterval, and at once when the
// event loop asks.
func (w *watcher) probeLoop(ctx context.Context) {
	t := time.NewTicker(w.spec.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
		started := time.Now()
		probes := w.pool.Probe(ctx)
		if ctx.Err() != nil {
			return
		}
		w.afterProbe(probes, started)
	}
}

// storedEpoch reads the pool's epoch from the store (0 when there is
// none, or it cannot be read).
func (w *watcher) storedEpoch() uint64 {
	if w.epochs == nil {
		return 0
	}
	n, err := w.epochs.Epoch(w.spec.Name)
	if err != nil {
		w.log.Warn("cannot read the epoch", "error", err)
		return 0
	}
	return n
}

func (w *watcher) afterProbe(probes []xapi.Probe, started time.Time) {
	answered := false
	for _, p := range probes {
		if p.State != xapi.ProbeUnreachable {
			answered = true
		}
	}
	w.mu.Lock()
	// The event loop hangs on a master that went silent: a probe started
	// after it connected, to that very master, is the witness that it is
	// gone. An older round, or one about another host, cuts nothing, and a
	// search for the master is never cut (it would never finish).
	if f := w.following; f != nil && started.After(w.ob.connectedAt) {
		for _, p := range probes {
			if p.State == xapi.ProbeUnreachable && urlHost(p.URL) == f.Address() {
				w.cutFollowLocked()
			}
		}
	}
	w.mu.Unlock()
	shared := w.storedEpoch()
	w.update(func(ob *observation) {
		if shared > w.epoch { // raised by another bridge sharing the store
			w.epoch = shared
		}
		ob.probes, ob.probedAt = probes, started
		if answered && ob.state != nil {
			ob.observedAt = time.Now()
		}
	})
}

func (w *watcher) cutFollowLocked() {
	if w.cancelFollow != nil && !w.cutByProbe {
		w.cutByProbe = true
		w.cancelFollow()
	}
}

// masterCheckLoop asks the followed master a cheap question every
// MasterProbeInterval on the event loop's own session: a dead master on a
// real network is silent, so the event long-poll never breaks by itself.
// No answer within the probe timeout marks the master unreachable at
// once, cuts the event loop and probes every member.
func (w *watcher) masterCheckLoop(ctx context.Context) {
	t := time.NewTicker(w.spec.MasterProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		f := w.following
		w.mu.Unlock()
		if f == nil {
			continue // the event loop is searching; the probes report
		}
		started := time.Now()
		cctx, cancel := context.WithTimeout(ctx, w.probeTimeout)
		_, err := f.Call(cctx, "pool.get_all")
		cancel()
		if ctx.Err() != nil {
			return
		}
		if _, answered := xapi.AsError(err); err == nil || answered {
			continue // XAPI answered; the event loop handles what it said
		}
		w.mu.Lock()
		still := w.following == f && started.After(w.ob.connectedAt)
		if still {
			w.cutFollowLocked()
		}
		w.mu.Unlock()
		if !still {
			continue
		}
		w.log.Warn("the master does not answer", "address", f.Address(), "error", err)
		w.update(func(ob *observation) {
			ob.masterCheck, ob.masterCheckedAt = xapi.Probe{URL: f.URL(), State: xapi.ProbeUnreachable, Err: err}, started
		})
		w.probeNow()
	}
}
