package chaos

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/fencing/redfish"
	"github.com/cloudstack-xenha/xenha-bridge/internal/mariadbtest"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/mysqlstore"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

func TestMain(m *testing.M) { mariadbtest.Main(m) }

var (
	seedFlag  = flag.Int64("chaos.seed", 0, "run only this schedule (a seed a failure printed)")
	firstFlag = flag.Int64("chaos.first", 0, "seed base: schedule i runs seed 1000003·(i+first)+17 (make chaos picks a fresh base per run)")
	countFlag = flag.Int("chaos.n", 200, "schedules to run")
	// 45 s: the schedules still running then take up to 15 s more; with
	// TestChaosReleasesEverything's 200 short schedules `go test -race
	// ./chaos` takes about two minutes on a 2-core machine.
	timeFlag     = flag.Duration("chaos.time", 45*time.Second, "stop starting schedules after this long")
	stepsFlag    = flag.Int("chaos.steps", 12, "steps per schedule")
	parallelFlag = flag.Int("chaos.parallel", 8, "schedules run at once (they mostly wait on timeouts)")
)

// seedOf is schedule i's seed; first (-chaos.first) shifts i, so that a
// run from a fresh base draws schedules no earlier run drew, and 0 keeps
// the seeds earlier runs printed.
func seedOf(i, first int64) int64 { return 1_000_003*(i+first) + 17 }

// chaosLease: short numbers, in the defaults' relations, so a handover
// fits in a schedule. The lease runs on real time, the pool on the fake
// clock.
var chaosLease = lease.Config{Duration: 1500 * time.Millisecond, Renew: 150 * time.Millisecond, Margin: 500 * time.Millisecond}

// The bridges' timeouts. Timeouts run on real time while the pool runs on
// the fake clock, whose steps jump up to 90 s at once: so they are short,
// in the relations serve's defaults keep (a probe well under a call, the
// master checked many times per probe timeout). Check 8's bound is made
// of them (liveBound).
const (
	callTimeout   = time.Second            // xapi.Options.Timeout: a call without a deadline of its own
	probeTimeout  = 250 * time.Millisecond // xapi.Options.ProbeTimeout: a login probe, the watcher's master check
	probeInterval = 20 * time.Millisecond  // PoolSpec.ProbeInterval: every member probed
	// PoolSpec.MasterProbeInterval: the followed master asked (the default
	// is 2 s on the real clock; it can be no longer than probeInterval).
	masterProbeInterval = 20 * time.Millisecond
	bmcTimeout          = 300 * time.Millisecond // redfish.Config.Timeout
	// electDeadline: the schedule's driver gives each ElectMaster or
	// FenceHost 1.5 s, sometimes less than a whole election under load: a
	// CloudStack that gives up on its calls is one of the faults.
	electDeadline = 1500 * time.Millisecond
	// cloudStackDeadline: the epilogue's driver gives each ElectMaster
	// what the Java shim gives it (xenha.bridge.timeout.elect, 2 min),
	// scaled as the harness scales the bridge's timeouts (a probe: 3 s in
	// serve, 250 ms here; 1/12): 10 s.
	cloudStackDeadline = 10 * time.Second
	drivePoll          = 100 * time.Millisecond // how often the epilogue's driver reads the view
	// settleWait bounds settle: the watcher's longest back-off (5 s), a
	// probe timeout, and room for a loaded machine.
	settleWait = 5*time.Second + probeTimeout + 750*time.Millisecond
)

// tally holds the figures of one run of schedules, the ones
// docs/reliability.md reports.
type tally struct {
	schedules, faults, actions, destructive, checks, violations atomic.Int64
	// Several bridges: second-bridge faults, lease handovers (terms
	// beyond the first), calls a non-holder sent on to the holder, calls
	// refused because the lease was lost or unknown, holder samples.
	secondBridge, handovers, redirects, leaseLost, samples atomic.Int64
	// settle: schedules where it gave up at least once (the bridge never
	// caught up with the pool's master), and how often it gave up.
	behind, settleMisses atomic.Int64
	// The liveness epilogue (check 8): epilogues run, skipped (XenHA on),
	// pools that did not reach one master followed by the bridges before
	// the power-off, power-offs of the master measured, skipped for want
	// of a host to promote.
	epilogues, epilogueHA, unsettled, liveRuns, liveNoCandidate atomic.Int64

	mu          sync.Mutex
	behindSeeds []int64
	unsettledAt []int64
	liveTimes   []time.Duration // power-off to the pool served by a new master
	viewTimes   []time.Duration // power-off to every bridge's view following it
	slowest     int64           // the seed of the longest of liveTimes
	slowestTook time.Duration
}

func (tl *tally) note(seeds *[]int64, seed int64) {
	tl.mu.Lock()
	*seeds = append(*seeds, seed)
	tl.mu.Unlock()
}

// seedList shows up to 12 seeds.
func seedList(seeds []int64) string {
	s := slices.Clone(seeds)
	slices.Sort(s)
	var b strings.Builder
	for i, x := range s {
		if i == 12 {
			fmt.Fprintf(&b, " and %d more", len(s)-12)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, x)
	}
	return b.String()
}

// quantile of sorted durations.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

func TestChaos(t *testing.T) {
	if *seedFlag != 0 {
		tl := &tally{}
		if v := runSchedule(t, mariadbtest.New(t), *seedFlag, true, *stepsFlag, tl); len(v) > 0 {
			t.Fatalf("seed %d: %d violation(s)", *seedFlag, len(v))
		}
		return
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	tl, ran, took, peak := runMany(t, *firstFlag, *countFlag, *timeFlag, *stepsFlag, *parallelFlag)
	report(t, tl, *firstFlag, ran, took)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("chaos: memory: %.1f MiB allocated per schedule; heap after GC %.1f MiB before, %.1f MiB after (%+.0f KiB per schedule); peak heap in use %.0f MiB, peak RSS %s; goroutines %d before, %d after",
		float64(after.TotalAlloc-before.TotalAlloc)/float64(max(ran, 1))/(1<<20), mib(before.HeapAlloc), mib(after.HeapAlloc),
		(float64(after.HeapAlloc)-float64(before.HeapAlloc))/float64(max(ran, 1))/1024, mib(peak), peakRSS(), g0, runtime.NumGoroutine())
	if ran < 25 && *countFlag >= 25 {
		t.Fatalf("only %d schedules ran: the machine is too slow for the time cap", ran)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// peakRSS is the process's high-water resident set (Linux).
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// runMany runs n schedules from seed base first, several at once, starting
// none after limit. It returns the tally, how many ran, how long they
// took and the peak heap in use, sampled every second.
func runMany(t *testing.T, first int64, n int, limit time.Duration, steps, parallel int) (tl *tally, ran int, took time.Duration, peak uint64) {
	tl = &tally{}
	start := time.Now()
	stopSampling := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		var top uint64
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			top = max(top, ms.HeapInuse)
			select {
			case <-tick.C:
			case <-stopSampling:
				sampled <- top
				return
			}
		}
	}()
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(parallel, 1))
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		if time.Since(start) >= limit {
			<-sem
			break
		}
		seed := seedOf(int64(i), first)
		// One database per schedule, made here: mariadbtest.New may call
		// t.Fatal, which only the test's own goroutine may.
		db := mariadbtest.New(t)
		wg.Add(1)
		ran++
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if v := runSchedule(t, db, seed, false, steps, tl); len(v) > 0 {
				t.Errorf("seed %d violates the promises (replay: make chaos SEED=%d):\n  %s", seed, seed, strings.Join(v, "\n  "))
			}
		}()
	}
	wg.Wait()
	took = time.Since(start)
	close(stopSampling)
	return tl, ran, took, <-sampled
}

// report logs a run's figures.
func report(t *testing.T, tl *tally, first int64, ran int, took time.Duration) {
	t.Logf("chaos: -chaos.first=%d: seeds %d..%d (1000003·(i+%d)+17, i < %d)", first, seedOf(0, first), seedOf(int64(max(ran-1, 0)), first), first, ran)
	t.Logf("chaos: %d schedules in %s (%.1f per minute), %d faults injected, %d ElectMaster/FenceHost calls, %d destructive XAPI/BMC actions audited, %d invariant checks, %d violations, %d schedules whose bridge never caught up (settle gave up %d times)",
		tl.schedules.Load(), took.Round(time.Second), float64(tl.schedules.Load())/max(took.Minutes(), 1e-9), tl.faults.Load(), tl.actions.Load(),
		tl.destructive.Load(), tl.checks.Load(), tl.violations.Load(), tl.behind.Load(), tl.settleMisses.Load())
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.behindSeeds) > 0 {
		t.Logf("chaos: the bridge never caught up in seeds %s", seedList(tl.behindSeeds))
	}
	t.Logf("chaos: second bridge started or stopped %d times, %d lease handovers, %d calls sent on to the holder, %d refused with the lease lost or unknown, %d holder samples",
		tl.secondBridge.Load(), tl.handovers.Load(), tl.redirects.Load(), tl.leaseLost.Load(), tl.samples.Load())
	slices.Sort(tl.liveTimes)
	slices.Sort(tl.viewTimes)
	t.Logf("chaos: liveness: %d epilogues (%d skipped: XenHA on), %d did not reach one master before the power-off, %d skipped with no host to promote; %d masters powered off: a new master served after %s median, %s p99, %s max (seed %d; bound %s); every bridge's view followed after %s median, %s max",
		tl.epilogues.Load(), tl.epilogueHA.Load(), tl.unsettled.Load(), tl.liveNoCandidate.Load(), tl.liveRuns.Load(),
		quantile(tl.liveTimes, 0.5).Round(time.Millisecond), quantile(tl.liveTimes, 0.99).Round(time.Millisecond),
		quantile(tl.liveTimes, 1).Round(time.Millisecond), tl.slowest, liveBound, quantile(tl.viewTimes, 0.5).Round(time.Millisecond),
		quantile(tl.viewTimes, 1).Round(time.Millisecond))
	if len(tl.unsettledAt) > 0 {
		t.Logf("chaos: no single master before the power-off in seeds %s", seedList(tl.unsettledAt))
	}
}

// world is one schedule: a simulated pool, a database the bridges share,
// the bridges (one per CloudStack management server: "a" always, "b" when
// the second-bridge fault started it), and the records the checks read.
type world struct {
	t       *testing.T
	rng     *rand.Rand
	seed    int64
	verbose bool
	tally   *tally
	clock   *xapisim.FakeClock
	sim     *xapisim.Sim
	db      mariadbtest.Database
	// reader is the checks' own handle on the shared journal: every
	// bridge's entries, whichever bridges are running.
	reader *mysqlstore.Store
	// bridges are the running ones, by id; only the schedule's goroutine
	// changes the map, and never while a call is in flight.
	bridges map[string]*bridge

	mu       sync.Mutex
	audit    []xapisim.AuditRecord
	auditAt  []time.Time // when each audited call took effect, real time
	grants   []grant
	fences   []*fencing.Result
	replay   []string
	evGaps   []string
	leaseBad []string
	liveBad  []string // check 8
	// liveChecked: the epilogue powered the master off (check 8 ran).
	liveChecked bool
	haEver      bool
	// bridgeOff: hosts whose power the bridge cut last (a BMC power-off
	// or host.shutdown it sent); the epilogue leaves them off, as
	// CloudStack leaves a fenced host to its operator.
	bridgeOff map[string]bool

	// settleMisses counts the settles that gave up (schedule goroutine).
	settleMisses int
	// noElect (TestTheLivenessCheckCatchesABridgeNobodyAsks): the
	// epilogue's driver never calls ElectMaster, so check 8 must fail.
	noElect bool

	// Lease figures for the replay log (schedule goroutine only, except
	// the counters the drive's callers add to).
	holder             string // the last sampled holder
	maxTerm            uint64
	starts             int
	redirects, lostish atomic.Int64
}

// bridge is one management server's bridge: its own handle on the shared
// store, its lease keeper, and its engines.
type bridge struct {
	id     string
	store  *mysqlstore.Store
	keeper *lease.Keeper
	guard  *guard
	m      *xenha.Manager
	fencer *fencing.Fencer
	el     *elect.Elector

	stopHeal, stopKeeper context.CancelFunc
	healDone, keeperDone chan struct{}
	eventsDone           chan struct{} // watchEvents returned
}

// guard is the lease.Guard a bridge's elector and fencer ask: its
// keeper, with every "yes, act" recorded for check 7.
type guard struct {
	w  *world
	id string
	k  *lease.Keeper
}

// grant is one Check that let a bridge act: it held the pool's lease at
// some instant between start and end.
type grant struct {
	bridge, pool string
	start, end   time.Time
}

func (g *guard) Check(ctx context.Context, pool string) error {
	start := time.Now()
	err := g.k.Check(ctx, pool)
	if err == nil {
		end := time.Now()
		g.w.mu.Lock()
		g.w.grants = append(g.w.grants, grant{bridge: g.id, pool: pool, start: start, end: end})
		g.w.mu.Unlock()
	}
	return err
}

func (w *world) logf(format string, args ...any) {
	line := time.Now().UTC().Format("15:04:05.000 ") + fmt.Sprintf(format, args...)
	w.mu.Lock()
	w.replay = append(w.replay, line)
	w.mu.Unlock()
	if w.verbose {
		w.t.Log(line)
	}
}

func openStore(db mariadbtest.Database, id string) (*mysqlstore.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return mysqlstore.Open(ctx, mysqlstore.Config{DSN: db.DSN(), Password: db.Password, Timeout: 2 * time.Second, Bridge: id})
}

// newWorld builds the pool and starts bridge a. On an error the caller
// closes what was made (close is safe on a half-built world).
func newWorld(t *testing.T, db mariadbtest.Database, seed int64, verbose bool, tl *tally) (*world, error) {
	w := &world{t: t, rng: rand.New(rand.NewSource(seed)), seed: seed, verbose: verbose, tally: tl, clock: xapisim.NewFakeClock(),
		db: db, bridges: map[string]*bridge{}, bridgeOff: map[string]bool{}}
	sizes := []int{2, 3, 3, 3, 5, 5, 16}
	n := sizes[w.rng.Intn(len(sizes))]
	sim, err := xapisim.New(xapisim.Config{
		Hosts: n, VMsPerHost: 1, Clock: w.clock, Seed: seed, SamePort: true,
		Audit: func(r xapisim.AuditRecord) {
			at := time.Now()
			w.mu.Lock()
			w.audit = append(w.audit, r)
			w.auditAt = append(w.auditAt, at)
			if r.Err == "" && (r.Action == "bmc:ForceOff" || r.Action == "host.shutdown") {
				w.bridgeOff[r.Target] = true
			}
			w.mu.Unlock()
		},
	})
	if err != nil {
		return w, err
	}
	w.sim = sim
	if w.reader, err = openStore(db, "checks"); err != nil {
		return w, err
	}
	w.logf("seed %d: %d hosts, database %s", seed, n, db.Name)
	// Powered-off hosts are silent, as on a real network; in a quarter of
	// the schedules some refuse connections instead (a host whose switch
	// port answers with a reset).
	if w.rng.Intn(4) == 0 {
		var refusing []int
		for i := range n {
			if w.rng.Intn(2) == 0 {
				refusing = append(refusing, i)
				sim.SetRefuseWhenDown(i, true)
			}
		}
		w.logf("hosts %v refuse connections while powered off (the others are silent)", refusing)
	}
	// xapi retries its master forever by default; a third of the schedules
	// set master_connection_retry_timeout, after which a slave that lost its
	// master restarts xapi and, still without it, enters emergency mode.
	if w.rng.Intn(3) == 0 {
		d := retryTimeouts[w.rng.Intn(len(retryTimeouts))]
		sim.SetMasterConnectionRetryTimeout(d)
		w.logf("master_connection_retry_timeout %s", d)
	}
	if w.rng.Intn(3) == 0 {
		T := time.Duration(30+w.rng.Intn(4)*10) * time.Second
		if err := sim.EnableHA(0, T); err == nil {
			w.haEver = true
			w.logf("XenHA on, T=%s", T)
		}
	}
	if err := w.startBridge("a"); err != nil {
		return w, err
	}
	// Half the schedules start with two management servers.
	if w.rng.Intn(2) == 0 {
		w.logf("bridge b starts")
		return w, w.startBridge("b")
	}
	return w, nil
}

// retryTimeouts are the master_connection_retry_timeout values drawn
// (pool time; a step advances the clock by up to 90 s).
var retryTimeouts = []time.Duration{20 * time.Second, 60 * time.Second, 120 * time.Second, 300 * time.Second}

// close stops the pool, then the bridges. The pool goes first: its close
// ends every request a silent host holds, so a bridge's logout from a
// powered-off host does not wait out its deadline (nothing is checked
// after this).
func (w *world) close() {
	if w.sim != nil {
		w.sim.Close()
	}
	for _, id := range w.running() {
		w.stopBridge(id)
	}
	if w.reader != nil {
		w.reader.Close()
	}
}

// running lists the running bridges' ids, in order.
func (w *world) running() []string {
	ids := make([]string, 0, len(w.bridges))
	for id := range w.bridges {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// startBridge starts a bridge as serve does with journal.store mysql:
// its own store handle, a keeper contending for the attached pools, an
// elector and a fencer that ask the keeper, and the healer.
func (w *world) startBridge(id string) error {
	store, err := openStore(w.db, id)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", id, err)
	}
	b := &bridge{id: id, store: store}
	xo := xapi.Options{Timeout: callTimeout, ProbeTimeout: probeTimeout}
	// The subscriber's queue is allocated whole: 4096 events (about 1 MB)
	// is far more than a schedule publishes between two reads.
	b.m = xenha.NewManager(xenha.Options{XAPI: xo, Epochs: store, Retention: 100000, SubscriberBuffer: 4096, AttachWait: 3 * time.Second})
	info := w.sim.Info()
	if _, _, err := b.m.Attach(context.Background(), xenha.PoolSpec{
		Name: "p", Members: w.sim.MemberURLs(), TLS: xapi.TLSOptions{AllowPlainHTTP: true},
		Credentials:         xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
		ProbeInterval:       probeInterval,
		MasterProbeInterval: masterProbeInterval,
	}); err != nil {
		b.m.Close()
		store.Close()
		return fmt.Errorf("bridge %s: %w", id, err)
	}
	cfg := chaosLease
	cfg.ID, cfg.Address = id, id+":50051"
	if b.keeper, err = lease.New(store, cfg, func() []lease.Pool {
		var out []lease.Pool
		for _, v := range b.m.Pools() {
			out = append(out, lease.Pool{UUID: v.UUID, Name: v.Name})
		}
		return out
	}); err != nil {
		b.m.Close()
		store.Close()
		return fmt.Errorf("bridge %s: %w", id, err)
	}
	b.guard = &guard{w: w, id: id, k: b.keeper}
	devices := func(_ string, h xenha.HostView) fencing.Device {
		for _, hi := range info.Hosts {
			if hi.UUID == h.UUID {
				d, _ := redfish.New(redfish.Config{URL: hi.BMCURL, Username: info.BMCUsername, Password: info.BMCPassword,
					AllowPlainHTTP: true, Timeout: bmcTimeout})
				return d
			}
		}
		return nil
	}
	b.fencer = fencing.New(fencing.Options{Journal: store, Devices: devices, Lease: b.guard, ProbeSpacing: 5 * time.Millisecond,
		PollInterval: 10 * time.Millisecond, VerifyTimeout: 500 * time.Millisecond})
	// VerifyTimeout above the simulator's 5 s emergency-mode retry: an
	// emergency slave already naming the new master rejoins by itself at its
	// next Pool.hello, which the verification waits for.
	b.el = elect.New(elect.Options{Journal: store, Devices: devices, Lease: b.guard, ProbeSpacing: 5 * time.Millisecond,
		PollInterval: 10 * time.Millisecond, VerifyTimeout: 6 * time.Second})
	sub, err := b.m.Subscribe("p", 0, "")
	if err != nil {
		b.m.Close()
		store.Close()
		return fmt.Errorf("bridge %s: %w", id, err)
	}
	b.eventsDone = make(chan struct{})
	go func() { w.watchEvents(id, sub); close(b.eventsDone) }()
	kctx, stopKeeper := context.WithCancel(context.Background())
	b.stopKeeper, b.keeperDone = stopKeeper, make(chan struct{})
	go func() { b.keeper.Run(kctx); close(b.keeperDone) }()
	// As serve does: split brains in CloudStack-controlled pools are healed.
	hctx, stopHeal := context.WithCancel(context.Background())
	b.stopHeal, b.healDone = stopHeal, make(chan struct{})
	go func() { b.el.Heal(hctx, b.m); close(b.healDone) }()
	w.bridges[id] = b
	w.starts++
	return nil
}

// stopBridge stops a bridge in serve's order: the healer first (serve's
// context ends it before the deferred release), then the keeper, which
// releases the lease so another bridge takes over at once, then the
// manager and the store. Releasing while the healer may still be in the
// middle of a step would let two bridges act at once, which no real
// shutdown does.
func (w *world) stopBridge(id string) {
	b := w.bridges[id]
	if b == nil {
		return
	}
	delete(w.bridges, id)
	b.stopHeal()
	select {
	case <-b.healDone:
	case <-time.After(10 * time.Second):
		w.logf("bridge %s: the healer did not stop within 10 s of its context's end", id)
	}
	b.stopKeeper()
	<-b.keeperDone
	b.m.Close() // ends the event subscription too
	select {
	case <-b.eventsDone:
	case <-time.After(10 * time.Second):
		w.logf("bridge %s: its event subscription did not end within 10 s of the manager's close", id)
	}
	b.store.Close()
}

// watchEvents checks the stream a PoolEvents subscriber of one bridge
// sees: gap-free sequences, or an explicit end.
func (w *world) watchEvents(id string, sub *xenha.Subscription) {
	var last uint64
	for {
		select {
		case e := <-sub.C:
			if last != 0 && e.Seq != last+1 {
				w.mu.Lock()
				w.evGaps = append(w.evGaps, fmt.Sprintf("bridge %s: event sequence jumped from %d to %d", id, last, e.Seq))
				w.mu.Unlock()
			}
			last = e.Seq
		case <-sub.Done():
			// Cut off: the subscriber is told (slow consumer, or the bridge
			// stopped); a client would resume or get OUT_OF_RANGE.
			if err := sub.Err(); errors.Is(err, xenha.ErrSlowConsumer) {
				w.logf("bridge %s: the event subscription was cut off: %v", id, err)
			}
			return
		}
	}
}

func (b *bridge) view() *xenha.PoolView {
	if b == nil {
		return nil
	}
	h, err := b.m.Handle("p")
	if err != nil {
		return nil
	}
	return h.View()
}

// view is bridge a's view (nil while it is down).
func (w *world) view() *xenha.PoolView { return w.bridges["a"].view() }

// pick chooses a running bridge, as CloudStack's load balancer or the
// management server that noticed would.
func (w *world) pick() *bridge {
	ids := w.running()
	if len(ids) == 0 {
		return nil
	}
	return w.bridges[ids[w.rng.Intn(len(ids))]]
}

// faults are what the world does to the pool, and to the bridges.
var faults = []struct {
	name   string
	weight int
	do     func(w *world, i int) error
}{
	{"power-loss", 3, func(w *world, i int) error { w.ownPower(i); return w.sim.PowerLoss(i) }},
	{"power-off", 3, func(w *world, i int) error { w.ownPower(i); return w.sim.PowerOff(i) }},
	{"power-on", 4, func(w *world, i int) error { w.ownPower(i); return w.sim.PowerOn(i) }},
	{"reboot", 2, func(w *world, i int) error { w.ownPower(i); return w.sim.Reboot(i) }},
	// xe-toolstack-restart: sessions die, and a slave whose master is
	// unreachable then enters emergency mode.
	{"restart-toolstack", 2, func(w *world, i int) error { return w.sim.RestartToolstack(i) }},
	// An admin changes xapi.conf's master_connection_retry_timeout on
	// every host (or back to never).
	{"retry-timeout", 1, func(w *world, i int) error {
		d := time.Duration(0)
		if k := w.rng.Intn(len(retryTimeouts) + 1); k < len(retryTimeouts) {
			d = retryTimeouts[k]
		}
		w.sim.SetMasterConnectionRetryTimeout(d)
		w.logf("master_connection_retry_timeout %s (0: never)", d)
		return nil
	}},
	{"cut-bridge", 2, func(w *world, i int) error { return w.sim.CutBridge(i, true) }},
	{"restore-bridge", 2, func(w *world, i int) error { return w.sim.CutBridge(i, false) }},
	{"cut-link", 2, func(w *world, i int) error {
		return w.sim.CutLink(i, w.rng.Intn(len(w.sim.Info().Hosts)), true)
	}},
	{"isolate", 1, func(w *world, i int) error { return w.sim.Isolate(i) }},
	{"reconnect", 2, func(w *world, i int) error { return w.sim.Reconnect(i) }},
	{"cut-storage", 2, func(w *world, i int) error { return w.sim.CutStorage(i, true) }},
	{"restore-storage", 2, func(w *world, i int) error { return w.sim.CutStorage(i, false) }},
	{"hang", 1, func(w *world, i int) error { return w.sim.HangXAPI(i, true) }},
	{"unhang", 2, func(w *world, i int) error { return w.sim.HangXAPI(i, false) }},
	{"slow", 1, func(w *world, i int) error { return w.sim.SlowXAPI(i, time.Duration(w.rng.Intn(50))*time.Millisecond) }},
	{"bmc-down", 1, func(w *world, i int) error { return w.sim.BMCDown(i, true) }},
	{"bmc-up", 1, func(w *world, i int) error { return w.sim.BMCDown(i, false) }},
	{"designate", 1, func(w *world, i int) error { return w.sim.Designate(i) }},
	{"enable-ha", 1, func(w *world, i int) error {
		err := w.sim.EnableHA(i, 40*time.Second)
		if err == nil {
			w.mu.Lock()
			w.haEver = true
			w.mu.Unlock()
		}
		return err
	}},
	{"disable-ha", 1, func(w *world, i int) error { return w.sim.DisableHA(i) }},
	// Bridge a restarts with a new handle on the shared store; b, if
	// running, keeps going (and takes the lease over if a held it).
	{"bridge-restart", 1, func(w *world, i int) error { w.stopBridge("a"); return w.startBridge("a") }},
	// A second management server's bridge starts, or stops (releasing
	// the lease if it held it).
	{"second-bridge", 1, func(w *world, i int) error {
		w.tally.secondBridge.Add(1)
		if w.bridges["b"] != nil {
			w.logf("bridge b stops")
			w.stopBridge("b")
			return nil
		}
		w.logf("bridge b starts")
		return w.startBridge("b")
	}},
	// The lease holder's management server restarts: with a second bridge
	// running, the pool changes hands.
	{"restart-holder", 2, func(w *world, i int) error {
		pool := w.sim.Info().PoolUUID
		for _, id := range w.running() {
			if w.bridges[id].keeper.Status(pool).Mine {
				w.logf("bridge %s (the holder) restarts", id)
				w.stopBridge(id)
				// The others try for the released lease before it is back.
				for _, other := range w.running() {
					w.bridges[other].keeper.Tick(context.Background())
				}
				return w.startBridge(id)
			}
		}
		return nil
	}},
}

// ownPower notes that the schedule, not the bridge, decided host i's
// power last (see bridgeOff).
func (w *world) ownPower(i int) {
	uuid := w.sim.Info().Hosts[i].UUID
	w.mu.Lock()
	delete(w.bridgeOff, uuid)
	w.mu.Unlock()
}

func (w *world) fault() {
	total := 0
	for _, f := range faults {
		total += f.weight
	}
	pick := w.rng.Intn(total)
	n := len(w.sim.Info().Hosts)
	i := w.rng.Intn(n)
	for _, f := range faults {
		if pick -= f.weight; pick < 0 {
			err := f.do(w, i)
			w.tally.faults.Add(1)
			w.logf("fault %s host %d: %v", f.name, i, err)
			return
		}
	}
}

// ask sends one ElectMaster or FenceHost to bridge b and, when b answers
// that another bridge holds the lease, once more to that one, as the Java
// shim does with holder_address. A lease lost or unknown is only logged:
// CloudStack retries later.
func (w *world) ask(to *bridge, running map[string]*bridge, what string, call func(b *bridge) error) (*bridge, error) {
	err := call(to)
	var other *lease.NotHolderError
	switch {
	case errors.As(err, &other):
		w.redirects.Add(1)
		w.tally.redirects.Add(1)
		next := running[other.Holder]
		if next == nil || next == to {
			w.logf("%s at %s: holder %s (%s) is not a running bridge: %v", what, to.id, other.Holder, other.Address, firstLine(err))
			return to, err
		}
		w.logf("%s at %s: %s holds the lease, sent on to it", what, to.id, other.Holder)
		to = next
		err = call(next)
		if errors.Is(err, lease.ErrLost) || errors.Is(err, lease.ErrUnknown) || errors.As(err, &other) {
			w.lostish.Add(1)
			w.tally.leaseLost.Add(1)
			w.logf("%s at %s (the holder named): lease: %v", what, next.id, firstLine(err))
		}
	case errors.Is(err, lease.ErrLost) || errors.Is(err, lease.ErrUnknown):
		w.lostish.Add(1)
		w.tally.leaseLost.Add(1)
		w.logf("%s at %s: lease: %v", what, to.id, firstLine(err))
	}
	return to, err
}

// drive plays CloudStack: it reads a bridge's view and calls ElectMaster
// or FenceHost as the Java shim would, each call at a running bridge
// chosen at random, sometimes twice at once and sometimes repeating a
// request id.
func (w *world) drive() {
	reader := w.pick()
	v := reader.view()
	if v == nil || !v.Observed {
		return
	}
	callers := 1 + w.rng.Intn(2)
	sameID := w.rng.Intn(2) == 0
	base := fmt.Sprintf("cs-%d-%d", w.seed, w.rng.Int63())
	running := maps(w.bridges)
	targets := make([]*bridge, callers)
	for c := range targets {
		targets[c] = w.pick()
	}
	var wg sync.WaitGroup
	if !v.Master.Reachable || len(v.Claimers) > 1 {
		for c := range callers {
			id := base
			if !sameID {
				id = fmt.Sprintf("%s-%d", base, c)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.electAt(targets[c], running, id, v.Epoch, electDeadline)
			}()
		}
		wg.Wait()
		return
	}
	var dead []xenha.HostView
	for _, host := range v.Hosts {
		if host.Probe == xapi.ProbeUnreachable.String() || !host.Live {
			dead = append(dead, host)
		}
	}
	if len(dead) == 0 {
		return
	}
	target := dead[w.rng.Intn(len(dead))]
	for c := range callers {
		id := base
		if !sameID {
			id = fmt.Sprintf("%s-%d", base, c)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res *fencing.Result
			at, err := w.ask(targets[c], running, "FenceHost "+target.Name+" "+id, func(b *bridge) error {
				h, err := b.m.Handle("p")
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(context.Background(), electDeadline)
				defer cancel()
				res, err = b.fencer.Fence(ctx, fencing.Request{Pool: h, Host: target.UUID, RequestID: id, ExpectedEpoch: v.Epoch})
				w.tally.actions.Add(1)
				return err
			})
			if err != nil {
				w.logf("FenceHost %s %s at %s: %v", target.Name, id, at.id, firstLine(err))
				return
			}
			w.logf("FenceHost %s %s at %s: %s %s", target.Name, id, at.id, res.Outcome, res.Method)
			w.mu.Lock()
			w.fences = append(w.fences, res)
			w.mu.Unlock()
		}()
	}
	wg.Wait()
}

// maps copies the running bridges for the drive's callers.
func maps(m map[string]*bridge) map[string]*bridge {
	out := make(map[string]*bridge, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

// settle gives the bridges' watchers the time a real pool gives them.
// There, faults come seconds apart and the watcher follows a new master
// within milliseconds; here the fake clock jumps up to 90 s while a
// bridge, on a loaded machine, may not have been scheduled at all.
// Without this wait a schedule can hand a bridge a view older than any
// real one (a designated master it never saw, then rebooted), which tests
// the scheduler, not the bridge. The wait is bounded: a master the
// bridges cannot reach stays unseen, as it would in a real pool. Then it
// samples who holds the lease.
//
// The bound, settleWait, covers the watcher's own pace: after failures its
// search for the master backs off up to 5 s (xenha's followLoop, on the
// real clock), so a master back from a power-off may wait that long to be
// followed, plus a probe timeout to answer. A bridge still behind then
// has not caught up: settle says so in the replay, counts it
// (tally.settleMisses; the totals line shows the schedules), and reports
// false.
func (w *world) settle() bool {
	time.Sleep(30 * time.Millisecond)
	caughtUp := true
	for deadline := time.Now().Add(settleWait); ; time.Sleep(10 * time.Millisecond) {
		lag := w.lag()
		if lag == "" {
			break
		}
		if !time.Now().Before(deadline) {
			// Reported, not a violation: a bridge that cannot follow a
			// master it can reach shows up in the checks if it matters.
			caughtUp = false
			w.settleMisses++
			w.logf("settle: gave up after %s: %s", settleWait, lag)
			break
		}
	}
	var guards []*guard
	var pools []string
	for _, id := range w.running() {
		b := w.bridges[id]
		guards = append(guards, b.guard)
		for _, v := range b.m.Pools() {
			if v.UUID != "" && !slices.Contains(pools, v.UUID) {
				pools = append(pools, v.UUID)
			}
		}
	}
	w.sampleHolders(guards, pools)
	return caughtUp
}

// lag says which running bridges' views do not name, reachable, the
// master the pool really has, when the bridges can reach exactly one; ""
// when they all do, or the pool has no such master (nobody, or several
// claim it: the healer's business; or the master is cut off or hung, or
// still booting, waiting for XenHA to let it rejoin: its xapi answers
// HOST_STILL_BOOTING).
func (w *world) lag() string {
	var want xapisim.HostState
	several := false
	for _, h := range w.sim.State().Hosts {
		if h.Powered && h.BelievesMaster && !h.Emergency && !h.Booting && !h.BridgeCut && !h.Hung {
			several = several || want.UUID != ""
			want = h
		}
	}
	if several || want.UUID == "" {
		return ""
	}
	if behind := w.behind(want.UUID); behind != "" {
		return fmt.Sprintf("the pool's master is %s; %s", want.Name, behind)
	}
	return ""
}

// behind lists the running bridges whose views do not name uuid as the
// master, reachable ("" when none).
func (w *world) behind(uuid string) string {
	var out []string
	for _, id := range w.running() {
		if v := w.bridges[id].view(); v != nil && (v.Master.UUID != uuid || !v.Master.Reachable) {
			out = append(out, fmt.Sprintf("bridge %s's view names %q (reachable %v, epoch %d)", id, v.Master.Name, v.Master.Reachable, v.Epoch))
		}
	}
	return strings.Join(out, ", ")
}

// sampleHolders asks each bridge whether it may act on each pool now: at
// most one may. The answers come one after another; two yeses less than
// the margin apart cannot both be true, since a lease passes to another
// bridge only a margin after its holder stopped acting, or by a release,
// and no bridge stops while this runs.
func (w *world) sampleHolders(guards []*guard, pools []string) {
	for _, p := range pools {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		var holders []string
		for _, g := range guards {
			if g.Check(ctx, p) == nil {
				holders = append(holders, g.id)
			}
		}
		took := time.Since(start)
		cancel()
		w.tally.samples.Add(1)
		for _, g := range guards {
			if st := g.k.Status(p); st.Term > w.maxTerm {
				w.maxTerm = st.Term
			}
		}
		switch {
		case len(holders) > 1 && took < chaosLease.Margin:
			w.mu.Lock()
			w.leaseBad = append(w.leaseBad, fmt.Sprintf("bridges %s all hold the lease of pool %s at once (asked within %s)",
				strings.Join(holders, ", "), short(p), took.Round(time.Millisecond)))
			w.mu.Unlock()
			w.logf("lease of %s: held by %v at once", short(p), holders)
		case len(holders) > 1:
			w.logf("lease of %s: %v said yes, but the sample took %s (more than the margin): inconclusive", short(p), holders, took)
		case len(holders) == 1 && holders[0] != w.holder:
			if w.holder != "" {
				w.logf("lease of %s: %s holds it now (was %s, term %d)", short(p), holders[0], w.holder, w.maxTerm)
			}
			w.holder = holders[0]
		}
	}
}

// runSchedule runs one seed and returns the violations found.
func runSchedule(t *testing.T, db mariadbtest.Database, seed int64, verbose bool, steps int, tl *tally) []string {
	w, err := newWorld(t, db, seed, verbose, tl)
	defer func() {
		w.close()
		// Nothing of a schedule outlives it: its database goes too (the
		// test's cleanup would drop them all only at the end).
		if err := dropDatabase(db); err != nil {
			t.Logf("seed %d: database %s not dropped: %v", seed, db.Name, err)
		}
	}()
	if err != nil {
		return []string{fmt.Sprintf("the world could not be built: %v", err)}
	}
	for range steps {
		if w.rng.Intn(5) < 3 {
			w.fault()
		} else {
			w.drive()
		}
		d := time.Duration(w.rng.Intn(90)) * time.Second
		w.clock.Advance(d)
		w.logf("+%s", d)
		w.settle()
	}
	// Settle: the driver gets three last chances to mend, as CloudStack would.
	for range 3 {
		time.Sleep(200 * time.Millisecond)
		w.drive()
	}
	w.retryIncompleteFences()
	w.settle()
	w.epilogue()
	handovers := int64(0)
	if w.maxTerm > 1 {
		handovers = int64(w.maxTerm - 1)
	}
	tl.handovers.Add(handovers)
	w.logf("lease: %d bridge starts, %d handovers (term %d), %d calls sent on to the holder, %d refused with the lease lost or unknown",
		w.starts, handovers, w.maxTerm, w.redirects.Load(), w.lostish.Load())
	if w.settleMisses > 0 {
		tl.behind.Add(1)
		tl.settleMisses.Add(int64(w.settleMisses))
		tl.note(&tl.behindSeeds, seed)
	}
	tl.schedules.Add(1)
	v := w.check()
	tl.violations.Add(int64(len(v)))
	if len(v) > 0 && verbose {
		for _, l := range w.dump() {
			t.Log(l)
		}
	}
	if len(v) > 0 && !verbose {
		d := w.dump()
		w.mu.Lock()
		v = append(v, "replay of the schedule:\n    "+strings.Join(w.replay, "\n    "), "its records:\n    "+strings.Join(d, "\n    "))
		w.mu.Unlock()
	}
	return v
}

// dropper drops the schedules' databases (the tests' MariaDB user may).
var dropper struct {
	once sync.Once
	db   *sql.DB
	err  error
}

func dropDatabase(d mariadbtest.Database) error {
	dropper.once.Do(func() {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = mariadbtest.User, d.Password, "tcp", d.Addr
		c, err := mysql.NewConnector(cfg)
		if err != nil {
			dropper.err = err
			return
		}
		dropper.db = sql.OpenDB(c)
		dropper.db.SetMaxIdleConns(2)
	})
	if dropper.err != nil {
		return dropper.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := dropper.db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+d.Name+"`")
	return err
}

// Check 8, liveness: in a pool CloudStack controls (XenHA off), once the
// faults stop, a master that loses power while its BMC works is replaced
// within liveBound: exactly one new master, and every powered host follows
// it. The driver plays CloudStack: it reads a bridge's view every
// drivePoll and, while the master is lost (or several claim the pool),
// calls ElectMaster (a fresh request id each time, ExpectedEpoch from the
// view, cloudStackDeadline each) at a running bridge, following a
// NOT_LEASE_HOLDER answer to the holder once. Autopilot stays off, as in
// serve's default.
//
// liveBound, from the harness's timeouts:
//
//	masterProbeInterval + probeTimeout   20 ms + 250 ms  the watcher's master check finds the master silent
//	+ drivePoll                          100 ms          the driver reads the view that says so
//	+ cloudStackDeadline                 10 s            one ElectMaster, within CloudStack's deadline
//	= 10.37 s
//
// A call that fails fast (a stale epoch, a lease changing hands) leaves
// the rest of the deadline to the next. One ElectMaster needs much less:
// the members probed while the master's evidence is gathered (one
// probeTimeout for a silent host; its BMC, up, reads Off at once), a
// re-check of the members, the power read back Off, the candidate
// promoted and probed until it answers as master, pool.recover_slaves, a
// probe of every other host (one probeTimeout for the silent ones) and a
// wait for the watcher to follow: about 1 s here, 2 s under the race
// detector with 8 schedules at once (docs/reliability.md). Every bridge's
// view must follow too, within liveBound + viewLag: a bridge that did not
// elect finds the new master by its own search, which backs off up to 5 s
// between attempts (xenha's followLoop).
const (
	liveBound = masterProbeInterval + probeTimeout + drivePoll + cloudStackDeadline
	viewLag   = 5 * time.Second
	// settleBound bounds the epilogue's wait, before the power-off, for
	// the healed pool to have one master every bridge follows: a search's
	// longest back-off (5 s) and one ElectMaster (a split brain or a pool
	// without a master is mended by the healer or the driver): 15 s. Not a
	// promise checked: a pool that does not get there is counted and
	// shown, not powered off.
	settleBound = 5*time.Second + cloudStackDeadline
)

// epilogue stops every fault, lets the pool and the bridges settle, then
// powers the master off and checks that a new one serves within liveBound
// (check 8). Pools with XenHA on are left out: XenHA elects there.
//
// The faults stop: every network cut, hung or slowed XAPI, storage cut and
// BMC outage ends, and every host the schedule left without power gets it
// back, except hosts the bridge itself powered off last (fenced, or an old
// master made harmless), which stay off as CloudStack leaves a fenced host
// to its operator. An old master the schedule cut, powered on again, boots
// believing it is master: that split brain is the healer's to mend, and
// the settling waits for it. XenHA, the hosts' refusal while down and
// master_connection_retry_timeout stay as they are.
func (w *world) epilogue() {
	st := w.sim.State()
	if len(st.Pools) == 0 || st.Pools[0].HAEnabled {
		w.tally.epilogueHA.Add(1)
		w.logf("epilogue: XenHA is on: skipped (XenHA elects in this pool)")
		return
	}
	w.tally.epilogues.Add(1)
	w.mu.Lock()
	off := make(map[string]bool, len(w.bridgeOff))
	for k, v := range w.bridgeOff {
		off[k] = v
	}
	w.mu.Unlock()
	var stayOff, poweredOn []string
	for i, h := range st.Hosts {
		w.sim.Reconnect(i)
		w.sim.CutStorage(i, false)
		w.sim.HangXAPI(i, false)
		w.sim.SlowXAPI(i, 0)
		w.sim.BMCDown(i, false)
		switch {
		case h.Powered:
		case off[h.UUID]:
			stayOff = append(stayOff, h.Name)
		default:
			w.sim.PowerOn(i)
			poweredOn = append(poweredOn, h.Name)
		}
	}
	w.logf("epilogue: every fault stops; power back on %v; %v stay off (the bridge powered them off)", poweredOn, stayOff)

	// The pool settles on pool time (emergency-mode slaves try their
	// master every 5 s), the bridges on real time; the healer and the
	// driver mend what is left.
	deadline := time.Now().Add(settleBound)
	var m xapisim.HostState
	for {
		w.clock.Advance(5 * time.Second)
		var why string
		if m, why = w.serving("", false); why == "" {
			if why = w.behind(m.UUID); why == "" {
				break
			}
		}
		if time.Now().After(deadline) {
			if w.candidates("") == 0 && why != "" && m.UUID == "" {
				w.tally.liveNoCandidate.Add(1)
				w.logf("epilogue: no master and no host to promote: %s", why)
				return
			}
			w.tally.unsettled.Add(1)
			w.tally.note(&w.tally.unsettledAt, w.seed)
			w.logf("epilogue: the pool has no single master every bridge follows after %s: %s", settleBound, why)
			return
		}
		w.electIfLost("settle")
		time.Sleep(drivePoll)
	}
	if w.candidates(m.UUID) == 0 {
		w.tally.liveNoCandidate.Add(1)
		w.logf("epilogue: %s is master and no other host could be promoted: check 8 skipped", m.Name)
		return
	}

	// Check 8: the master loses power, its BMC up.
	w.tally.liveRuns.Add(1)
	w.liveChecked = true
	w.logf("epilogue: %s, the master, loses power (its BMC answers)", m.Name)
	w.sim.PowerOff(m.Index)
	start := time.Now()
	// A sampler follows the pool and the views every 10 ms, pool time
	// running with real time.
	var served, followed atomic.Int64 // ns after the power-off; 0 until then
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		last := start
		for {
			now := time.Now()
			w.clock.Advance(now.Sub(last))
			last = now
			if n, why := w.serving(m.UUID, true); why == "" {
				if served.Load() == 0 {
					served.Store(int64(now.Sub(start)))
				}
				if w.behind(n.UUID) == "" {
					followed.Store(int64(now.Sub(start)))
					return
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	for followed.Load() == 0 {
		if e := time.Since(start); e > liveBound+viewLag || e > liveBound && served.Load() == 0 {
			break
		}
		time.Sleep(drivePoll)
		if served.Load() == 0 {
			w.electIfLost("live")
		}
	}
	close(stop)
	<-sampled
	n, why := w.serving(m.UUID, true)
	took, viewTook := time.Duration(served.Load()), time.Duration(followed.Load())
	switch {
	case took == 0 || took > liveBound:
		if took == 0 {
			why = fmt.Sprintf("none after %s: %s", time.Since(start).Round(time.Millisecond), why)
		} else {
			why = fmt.Sprintf("%s served only after %s", n.Name, took.Round(time.Millisecond))
		}
		w.liveFail("%s, the master, lost power with its BMC up after every fault stopped; no new master served within %s: %s",
			m.Name, liveBound, why)
	case viewTook == 0:
		w.liveFail("%s, the master, lost power with its BMC up after every fault stopped; %s served after %s, but after %s: %s",
			m.Name, n.Name, took.Round(time.Millisecond), liveBound+viewLag, w.behind(n.UUID))
	default:
		w.tally.mu.Lock()
		w.tally.liveTimes = append(w.tally.liveTimes, took)
		w.tally.viewTimes = append(w.tally.viewTimes, viewTook)
		if took > w.tally.slowestTook {
			w.tally.slowest, w.tally.slowestTook = w.seed, took
		}
		w.tally.mu.Unlock()
		w.logf("epilogue: %s serves %s after the power-off, every bridge's view follows after %s", n.Name,
			took.Round(time.Millisecond), viewTook.Round(time.Millisecond))
	}
}

func (w *world) liveFail(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	w.mu.Lock()
	w.liveBad = append(w.liveBad, line)
	w.mu.Unlock()
	w.logf("epilogue: check 8 fails: %s", line)
}

// serving finds the pool's one master other than old: the only host with
// power that believes it is master, its XAPI reachable from the bridges.
// With all, every other host with power must follow it: name it in
// pool.conf, neither in emergency mode nor booting. why says what is
// missing ("" when it serves).
func (w *world) serving(old string, all bool) (m xapisim.HostState, why string) {
	st := w.sim.State()
	var masters []string
	for _, h := range st.Hosts {
		if h.Powered && h.BelievesMaster {
			masters = append(masters, h.Name)
			m = h
		}
	}
	switch {
	case len(masters) != 1:
		return xapisim.HostState{}, fmt.Sprintf("%d hosts with power believe they are master %v", len(masters), masters)
	case m.UUID == old:
		return m, m.Name + " is still master"
	case m.Hung || m.BridgeCut:
		return m, m.Name + " is master but cannot be reached"
	}
	if !all {
		return m, ""
	}
	var strays []string
	for _, h := range st.Hosts {
		if h.Powered && h.UUID != m.UUID && (h.MasterAddress != m.Address || h.Emergency || h.Booting) {
			strays = append(strays, fmt.Sprintf("%s (names %s, emergency %v, booting %v)", h.Name, h.MasterAddress, h.Emergency, h.Booting))
		}
	}
	if len(strays) > 0 {
		return m, fmt.Sprintf("%s is master but %s do not follow it", m.Name, strings.Join(strays, ", "))
	}
	return m, ""
}

// candidates counts the hosts other than master an election could
// promote: powered, enabled, done booting.
func (w *world) candidates(master string) int {
	n := 0
	for _, h := range w.sim.State().Hosts {
		if h.Powered && h.Enabled && !h.Booting && h.UUID != master {
			n++
		}
	}
	return n
}

// electIfLost is CloudStack noticing a lost master: a bridge's view says
// the master is unreachable, or several claim the pool, and one
// ElectMaster follows (see check 8).
func (w *world) electIfLost(tag string) {
	reader := w.pick()
	v := reader.view()
	if w.noElect || v == nil || !v.Observed || v.Master.Reachable && len(v.Claimers) <= 1 {
		return
	}
	id := fmt.Sprintf("cs-%d-%s-%d", w.seed, tag, w.rng.Int63())
	running := maps(w.bridges)
	w.electAt(w.pick(), running, id, v.Epoch, cloudStackDeadline)
}

// electAt is one ElectMaster with request id at target (or at the holder
// it points to, among running), within deadline; the answer is logged.
func (w *world) electAt(target *bridge, running map[string]*bridge, id string, epoch uint64, deadline time.Duration) {
	var res *elect.Result
	at, err := w.ask(target, running, "ElectMaster "+id, func(b *bridge) error {
		h, err := b.m.Handle("p")
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		res, err = b.el.Elect(ctx, elect.Request{Pool: h, RequestID: id, ExpectedEpoch: epoch})
		w.tally.actions.Add(1)
		return err
	})
	if err != nil {
		w.logf("ElectMaster %s at %s: %v", id, at.id, firstLine(err))
	} else {
		w.logf("ElectMaster %s at %s: %s by %s", id, at.id, res.Master.Name, res.ElectedBy)
	}
}

// dump lists the journal, the destructive actions audited and the lease
// grants, for a seed that failed (a replay logs them; a run of many
// appends them to the failure, since a timing-dependent failure may not
// replay). Times are UTC wall clock, the journal's.
func (w *world) dump() []string {
	var out []string
	entries, _ := w.reader.Entries("p", 0, 0)
	for _, e := range entries {
		out = append(out, fmt.Sprintf("journal %s %s %s %s %s ok=%v %s", e.Time.UTC().Format("15:04:05.000000"), e.Bridge, e.RequestID, e.Step, short(e.Host), e.OK, e.Detail))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, r := range w.audit {
		if destructive[r.Action] {
			out = append(out, fmt.Sprintf("audit %s %s %s answers=%v beating=%v master=%v err=%q", w.auditAt[i].UTC().Format("15:04:05.000000"),
				r.Action, short(r.Target), r.TargetAnswers, r.TargetBeating, r.TargetMaster, r.Err))
		}
	}
	// Grants, condensed into runs of one bridge.
	for i := 0; i < len(w.grants); {
		j := i
		for j+1 < len(w.grants) && w.grants[j+1].bridge == w.grants[i].bridge {
			j++
		}
		out = append(out, fmt.Sprintf("lease %s granted %d time(s) %s..%s", w.grants[i].bridge, j-i+1,
			w.grants[i].start.UTC().Format("15:04:05.000000"), w.grants[j].end.UTC().Format("15:04:05.000000")))
		i = j + 1
	}
	return out
}

// retryIncompleteFences does what CloudStack does when FenceHost reports a
// VM it could not reset (the Java shim's FenceBuilder answers false): it
// calls again with the same request id.
func (w *world) retryIncompleteFences() {
	w.mu.Lock()
	var again []*fencing.Result
	for _, f := range w.fences {
		if f.Incomplete {
			again = append(again, f)
		}
	}
	w.mu.Unlock()
	running := maps(w.bridges)
	for _, f := range again {
		to := w.pick()
		if to == nil {
			return
		}
		var res *fencing.Result
		at, err := w.ask(to, running, "FenceHost retry "+f.RequestID, func(b *bridge) error {
			h, err := b.m.Handle("p")
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err = b.fencer.Fence(ctx, fencing.Request{Pool: h, Host: f.HostUUID, RequestID: f.RequestID})
			return err
		})
		w.logf("FenceHost retry %s %s at %s: %v %v", short(f.HostUUID), f.RequestID, at.id, outcomeOf(res), err)
		if err == nil {
			w.mu.Lock()
			w.fences = append(w.fences, res)
			w.mu.Unlock()
		}
	}
}

func outcomeOf(r *fencing.Result) string {
	if r == nil {
		return ""
	}
	return string(r.Outcome)
}

var destructive = map[string]bool{
	"pool.emergency_transition_to_master": true, "pool.emergency_reset_master": true, "pool.recover_slaves": true,
	"pool.designate_new_master": true, "host.shutdown": true, "host.reboot": true, "host.disable": true,
	"VM.power_state_reset": true, "bmc:ForceOff": true, "bmc:ForceRestart": true, "pool.eject": true,
}

// accounts tells whether journal entry e is the record of the audited
// action r: the step that announces it, or reports it done.
func accounts(e journal.Entry, r xapisim.AuditRecord) bool {
	switch r.Action {
	case "pool.emergency_transition_to_master":
		return e.Step == "promote" && e.Host == r.Target
	case "pool.recover_slaves":
		return e.Step == "recover" && e.Host == r.Target
	case "bmc:ForceOff", "host.shutdown", "host.disable":
		return (strings.HasPrefix(e.Step, "level:") || e.Step == "harmless" || e.Step == "override") && e.Host == r.Target
	case "VM.power_state_reset":
		return e.Step == "vm-reset" && strings.Contains(e.Detail, r.VM)
	case "pool.emergency_reset_master":
		return e.Step == "reset" || (e.Step == "heal" && e.Host == r.Target)
	}
	return false
}

// actor is the journal entry that accounts for the action audited at at:
// the nearest in time, a successful step's first, within 3 s.
func actor(entries []journal.Entry, r xapisim.AuditRecord, at time.Time) (journal.Entry, bool) {
	var best journal.Entry
	found := false
	dist := func(e journal.Entry) time.Duration { return max(e.Time.Sub(at), at.Sub(e.Time)) }
	for _, e := range entries {
		if !accounts(e, r) || dist(e) > 3*time.Second {
			continue
		}
		if !found || e.OK && !best.OK || e.OK == best.OK && dist(e) < dist(best) {
			best, found = e, true
		}
	}
	return best, found
}

// check applies the invariants to what was recorded.
func (w *world) check() []string {
	w.mu.Lock()
	audit := slices.Clone(w.audit)
	auditAt := slices.Clone(w.auditAt)
	grants := slices.Clone(w.grants)
	fences := slices.Clone(w.fences)
	gaps := slices.Clone(w.evGaps)
	leaseBad := slices.Clone(w.leaseBad)
	live := slices.Clone(w.liveBad)
	w.mu.Unlock()
	var bad []string
	check := func(ok bool, format string, args ...any) {
		w.tally.checks.Add(1)
		if !ok {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	// The shared journal: every bridge's entries.
	entries, err := w.reader.Entries("p", 0, 0)
	check(err == nil, "the shared journal cannot be read: %v", err)
	journaled := func(step, host, detail string) bool {
		for _, e := range entries {
			if strings.HasPrefix(e.Step, step) && (host == "" || e.Host == host) && strings.Contains(e.Detail, detail) {
				return true
			}
		}
		return false
	}
	for i, r := range audit {
		if !destructive[r.Action] {
			continue
		}
		w.tally.destructive.Add(1)
		// 1. The bridge never acted in a pool XenHA controlled.
		check(!r.HAEnabled, "%s on %s while XenHA was on", r.Action, short(r.Target))
		if r.Err != "" {
			continue
		}
		switch r.Action {
		case "pool.emergency_transition_to_master":
			// 2. Never two live masters: the bridge never promotes beside one.
			check(len(r.OtherMasters) == 0, "promoted %s while %v were live masters", short(r.Target), shorts(r.OtherMasters))
			check(journaled("promote", r.Target, ""), "promotion of %s not journaled", short(r.Target))
		case "bmc:ForceOff", "host.shutdown":
			// 3. Never fence a host a witness shows alive: its XAPI answered,
			// or (when a master could read it) its heartbeat was fresh.
			check(!r.TargetAnswers, "%s of %s while its XAPI answered", r.Action, short(r.Target))
			check(!r.TargetBeating || r.TargetMaster, "%s of %s while it wrote its storage heartbeat", r.Action, short(r.Target))
			check(journaled("level:", r.Target, "") || journaled("harmless", r.Target, "") || journaled("override", r.Target, ""),
				"%s of %s not journaled", r.Action, short(r.Target))
		case "VM.power_state_reset":
			// 4. No VM of a live host is reset.
			check(!r.VMResident || !r.TargetPowered, "VM %s reset while its host %s had power", short(r.VM), short(r.Target))
			check(journaled("vm-reset", "", r.VM), "reset of VM %s not journaled", short(r.VM))
		case "pool.emergency_reset_master":
			check(journaled("reset", "", "") || journaled("heal", r.Target, ""), "reset of %s not journaled", short(r.Target))
		}
		// 7. Only the lease holder acts: the bridge whose journal entries
		// account for the action had been let act by its keeper, and no
		// other bridge was let act between that and the action.
		e, ok := actor(entries, r, auditAt[i])
		if !ok {
			continue // not journaled: reported above
		}
		var last *grant
		for k := range grants {
			if g := &grants[k]; g.bridge == e.Bridge && !g.end.After(auditAt[i]) && (last == nil || g.end.After(last.end)) {
				last = g
			}
		}
		check(last != nil, "%s of %s by bridge %s (journal %d %s) although it did not hold the lease: its keeper never let it act",
			r.Action, short(r.Target), e.Bridge, e.Seq, e.Step)
		if last == nil {
			continue
		}
		for _, g := range grants {
			check(g.bridge == e.Bridge || g.start.Before(last.end) || g.end.After(auditAt[i]),
				"%s of %s by bridge %s (journal %d %s) although it did not hold the lease: %s held it %s after %s's last check, %s before the action",
				r.Action, short(r.Target), e.Bridge, e.Seq, e.Step, g.bridge, g.start.Sub(last.end).Round(time.Millisecond), e.Bridge,
				auditAt[i].Sub(g.end).Round(time.Millisecond))
		}
	}
	// 7b. At most one bridge held the lease at any sample.
	for _, s := range leaseBad {
		check(false, "%s", s)
	}
	// 4b. Every VM of a fenced host was reset, and none twice. The audit
	// trail is the truth: a reset whose answer was lost to a deadline did
	// happen, and a retry then finds the VM already halted.
	resets := map[string]int{}
	for _, r := range audit {
		if r.Action == "VM.power_state_reset" && r.Err == "" && r.VMResident {
			resets[r.VM]++
		}
	}
	for _, f := range fences {
		for _, vr := range f.VMResets {
			check(vr.Reset || resets[vr.UUID] > 0, "VM %s of fenced host %s never reset: %s", short(vr.UUID), short(f.HostUUID), vr.Error)
		}
	}
	for vm, n := range resets {
		check(n == 1, "VM %s reset %d times", short(vm), n)
	}
	// 5. Subscribers saw gap-free sequences.
	for _, g := range gaps {
		check(false, "%s", g)
	}
	// 8. Liveness: a master that lost power once the faults stopped was
	// replaced within the bound (see epilogue).
	if w.liveChecked {
		check(len(live) == 0, "liveness: %s", strings.Join(live, "; "))
	}
	// 6. In the end a CloudStack-controlled pool has at most one live master.
	if v := w.view(); v != nil && v.Controller == xenha.ControllerCloudStack {
		masters := w.sim.LiveMasters()
		check(len(masters) <= 1 || w.splitBrainUnhealable(), "%d live masters after the schedule settled: %v", len(masters), shorts(masters))
	}
	return bad
}

// splitBrainUnhealable: the bridge cannot reach every claimant (a master
// cut off from it cannot be reset); such a split brain is reported, not
// healed.
func (w *world) splitBrainUnhealable() bool {
	for _, h := range w.sim.State().Hosts {
		if h.Powered && h.BelievesMaster && (h.BridgeCut || h.Hung) {
			return true
		}
	}
	return false
}

func short(uuid string) string {
	if len(uuid) > 8 {
		return uuid[:8]
	}
	return uuid
}

func shorts(us []string) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = short(u)
	}
	return out
}

// TestTheChecksCatchAnUnsafeBridge plays a bridge that breaks every
// promise, and expects each check to say so: invariants that cannot fail
// would prove nothing.
func TestTheChecksCatchAnUnsafeBridge(t *testing.T) {
	w, err := newWorld(t, mariadbtest.New(t), 99, false, &tally{})
	defer w.close()
	if err != nil {
		t.Fatal(err)
	}
	info := w.sim.Info()
	creds := xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)}
	// Short timeouts: the host whose VM is reset may be the one powered
	// off below, and a powered-off host is silent.
	opts := xapi.Options{TLS: xapi.TLSOptions{AllowPlainHTTP: true}, Timeout: 2 * time.Second, ProbeTimeout: time.Second}
	ctx := context.Background()
	last := len(info.Hosts) - 1
	// A rogue bridge on the shared journal, without the lease (bridge a
	// holds it): it journals a promotion, then promotes a slave beside a
	// live master.
	w.settle() // a takes the lease
	rogue, err := openStore(w.db, "rogue")
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	if _, err := rogue.Append(journal.Entry{Pool: "p", RequestID: "rogue", Kind: "elect", Step: "promote", Host: info.Hosts[last].UUID,
		OK: true, Detail: "pool.emergency_transition_to_master"}); err != nil {
		t.Fatal(err)
	}
	local, _ := xapi.NewSlaveLocalClient(info.Hosts[last].URL, creds, opts)
	local.PoolEmergencyTransitionToMaster(ctx)
	local.Close(ctx)
	// Power a live, answering host off through its BMC, without a journal line.
	bmc, _ := redfish.New(redfish.Config{URL: info.Hosts[1].BMCURL, Username: info.BMCUsername, Password: info.BMCPassword, AllowPlainHTTP: true})
	bmc.PowerOff(ctx)
	// Reset a VM of a live host (the host is cut off, so xapi lets it).
	w.sim.Isolate(0) // the old master stays master but loses its pool
	var found string
	for _, vm := range w.sim.State().Pools[0].VMs {
		if vm.ResidentOn == info.Hosts[last].UUID {
			found = vm.UUID
		}
	}
	w.sim.Reconnect(0)
	if found != "" {
		m, _ := xapi.NewClient(info.Hosts[last].URL, creds, opts)
		recs, _ := m.VMGetAllRecords(ctx)
		for ref, r := range recs {
			if r.UUID == found {
				m.VMPowerStateReset(ctx, ref) // refused by xapi: the host is live (not audited as a success)
			}
		}
		m.Close(ctx)
	}
	// A misconfigured bridge whose lease lives in another database: it
	// and bridge a both hold the pool's lease.
	elsewhere, err := openStore(mariadbtest.New(t), "misconfigured")
	if err != nil {
		t.Fatal(err)
	}
	defer elsewhere.Close()
	cfg := chaosLease
	cfg.ID = "misconfigured"
	k, err := lease.New(elsewhere, cfg, func() []lease.Pool { return []lease.Pool{{UUID: info.PoolUUID, Name: "p"}} })
	if err != nil {
		t.Fatal(err)
	}
	w.sampleHolders([]*guard{w.bridges["a"].guard, {w: w, id: cfg.ID, k: k}}, []string{info.PoolUUID})
	v := strings.Join(w.check(), "\n")
	t.Log(v)
	for _, want := range []string{"while", "not journaled", "live masters", "by bridge rogue", "did not hold the lease", "hold the lease of pool"} {
		if !strings.Contains(v, want) {
			t.Errorf("the checks missed %q; they said:\n%s", want, v)
		}
	}
}

// TestTheLivenessCheckCatchesABridgeNobodyAsks plays a CloudStack that
// never calls ElectMaster (and no autopilot): once the epilogue powers the
// master off, no new master can serve, and check 8 must say so.
func TestTheLivenessCheckCatchesABridgeNobodyAsks(t *testing.T) {
	// Seed 17 (schedule 0): 3 hosts, XenHA off, one bridge.
	w, err := newWorld(t, mariadbtest.New(t), 17, false, &tally{})
	defer w.close()
	if err != nil {
		t.Fatal(err)
	}
	if st := w.sim.State(); st.Pools[0].HAEnabled || len(st.Hosts) < 2 {
		t.Fatalf("seed 17 was chosen for a pool of several hosts without XenHA; it is now %d hosts, XenHA %v", len(st.Hosts), st.Pools[0].HAEnabled)
	}
	w.settle()
	w.noElect = true
	w.epilogue()
	v := strings.Join(w.check(), "\n")
	t.Log(v)
	if !strings.Contains(v, "liveness:") || !strings.Contains(v, "no new master served") {
		t.Errorf("check 8 missed a master nobody replaced; the checks said:\n%s\nreplay:\n%s", v, strings.Join(w.replay, "\n"))
	}
}

// leakFirst is the seed base of TestChaosReleasesEverything.
const leakFirst = 900_000_000

// TestChaosReleasesEverything runs 200 schedules (one step each, then the
// end: the driver's last calls and the epilogue with its election), 16 at
// once, and requires the heap (after a GC) and the goroutine count to
// come back to where they were before (issue 14: each schedule leaked
// about 52 MB, nearly all of it the queues of its bridges' event
// subscriptions, and 22 goroutines). The allowance is 10 % of the start
// plus a fixed slack for the runtime's own noise: 8 MiB of heap (GC
// pacing, sync.Pool caches, MariaDB connections pooled by database/sql,
// the tally's figures) and 10 goroutines (connections and timers of HTTP
// transports still winding down, pooled MariaDB connections). A leak of a
// tenth of issue 14's exceeds both after a few dozen schedules.
func TestChaosReleasesEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("200 schedules: skipped with -short")
	}
	if *seedFlag != 0 {
		t.Skip("replaying one seed")
	}
	// 8 at once, as TestChaos: the leak figures do not need more, and under
	// -race with other packages testing beside it, more starves the leases.
	const n, steps, parallel = 200, 1, 8
	const heapSlack, goroutineSlack = 8 << 20, 10
	// Warm up: the MariaDB server, pooled connections and the like exist
	// once, and belong in the start figures.
	runMany(t, leakFirst, 8, time.Hour, steps, parallel)
	heap0, g0 := heapAndGoroutines()
	tl, ran, took, peak := runMany(t, leakFirst+8, n, time.Hour, steps, parallel)
	heapMax, gMax := heap0+heap0/10+heapSlack, g0+g0/10+goroutineSlack
	// What is let go winds down for a moment (connections closing).
	var heap1 uint64
	var g1 int
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		heap1, g1 = heapAndGoroutines()
		if heap1 <= heapMax && g1 <= gMax || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d schedules in %s (%d violations): heap after GC %.1f MiB before, %.1f MiB after (allowed %.1f), peak heap in use %.0f MiB; goroutines %d before, %d after (allowed %d)",
		ran, took.Round(time.Second), tl.violations.Load(), mib(heap0), mib(heap1), mib(heapMax), mib(peak), g0, g1, gMax)
	if heap1 > heapMax {
		t.Errorf("the heap grew from %.1f MiB to %.1f MiB over %d schedules (allowed %.1f MiB): schedules leak memory", mib(heap0), mib(heap1), ran, mib(heapMax))
	}
	if g1 > gMax {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("goroutines went from %d to %d over %d schedules (allowed %d): schedules leak goroutines:\n%s", g0, g1, ran, gMax, b.String())
	}
}

func heapAndGoroutines() (uint64, int) {
	runtime.GC()
	runtime.GC() // finalizers queued by the first run before the second
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}
