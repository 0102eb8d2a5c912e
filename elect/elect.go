// Package elect makes sure a pool has exactly one live master. When XenHA
// controls the pool it only finds XenHA's choice; when CloudStack does, it
// elects, modelled on CloudStack 4.3's sequence but made safe: the master
// is confirmed gone by independent witnesses, made harmless (powered off,
// read back) before anyone is promoted, the candidate is chosen
// deterministically, and every step is journaled so that a restart in the
// middle resumes without a second promotion.
package elect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/singleflight"

	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/internal/keylock"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// ElectedBy says who chose the master.
type ElectedBy string

const (
	ByXenHA      ElectedBy = "xenha"
	ByCloudStack ElectedBy = "cloudstack"
	ByNone       ElectedBy = "none" // the master was alive: nothing changed
)

// Errors the server maps to gRPC codes (with fencing.ErrStaleEpoch and
// fencing.ErrNoController).
var (
	// ErrNotConverged: XenHA has not elected a master by the deadline
	// (UNAVAILABLE); the Result's trace says what each member answered.
	ErrNotConverged = errors.New("XenHA has not elected a master yet")
	// ErrJournalUnreadable: the journal, which holds an earlier election's
	// unfinished promotion and the last master elected, cannot be read
	// (UNAVAILABLE): electing without it could promote a second host.
	ErrJournalUnreadable = errors.New("the journal cannot be read")
)

// RefusedError is an election the bridge will not carry out
// (FAILED_PRECONDITION): the master may be alive, or cannot be made
// harmless, or no host qualifies.
type RefusedError struct {
	Reason string
	Result *Result
}

func (e *RefusedError) Error() string { return "election refused: " + e.Reason }

// Request asks for the pool to have a live master.
type Request struct {
	Pool          *xenha.Handle
	RequestID     string
	ExpectedEpoch uint64
	DryRun        bool
	Exclude       []string // host UUIDs not to promote
	Override      bool     // promote although the old master cannot be made harmless (journaled)
	Reason        string
}

// Result is the answer.
type Result struct {
	PoolUUID  string           `json:"pool_uuid"`
	Master    xenha.MasterView `json:"master"`
	ElectedBy ElectedBy        `json:"elected_by"`
	Epoch     uint64           `json:"epoch"`
	DryRun    bool             `json:"dry_run"`
	Trace     []fencing.Step   `json:"trace"`
}

// UnreachablePolicy says what an election does with a master that does
// not answer the bridge while its BMC reports power on. Through XAPI the
// bridge cannot tell "cut off from the bridge only" from "its management
// network died": both are silent, and its slaves name it either way.
type UnreachablePolicy string

const (
	// RefuseUnreachable (the default) never promotes: the master may be
	// alive and serving its pool. An operator restores the path, powers
	// it off, or passes operator_override.
	RefuseUnreachable UnreachablePolicy = "refuse"
	// FenceUnreachable powers it off through its BMC, reads it back Off,
	// then promotes: failover without a person, at the price of fencing a
	// master that may have been healthy behind a broken path.
	FenceUnreachable UnreachablePolicy = "fence"
)

// Options tune an Elector.
type Options struct {
	Journal journal.Store
	Logger  hclog.Logger
	// Devices returns a host's BMC (nil: none), to make an old master harmless.
	Devices func(pool string, host xenha.HostView) fencing.Device
	// Preferred returns a pool's preferred masters (UUIDs, names or
	// addresses), tried first.
	Preferred func(pool string) []string
	// UnreachableMaster returns a pool's policy for a master that does
	// not answer while its BMC reports power on (RefuseUnreachable when nil).
	UnreachableMaster func(pool string) UnreachablePolicy
	// Autopilot: off for every pool when nil.
	Autopilot Autopilot
	// Observe, when set, is told about every election that ran: not dry
	// runs, nor a repeated request id answered from the journal. It runs
	// on the caller's goroutine and must be quick (the metrics use it).
	Observe func(Observation)
	// Lease, with several management servers, says whether this bridge
	// holds the pool's lease; it is asked before an election starts and
	// before every destructive step (nil: one management server, always).
	Lease lease.Guard

	ProbeAttempts int           // probes of the master before it counts as unreachable (3)
	ProbeSpacing  time.Duration // between them (500 ms)
	PollInterval  time.Duration // waiting for XenHA or for a promotion to take (500 ms)
	VerifyTimeout time.Duration // a power-off read back, a promotion taking (60 s)
	// RefusalMemory is how long a refused request id answers with the
	// same refusal instead of running again (10 s): long enough to absorb
	// a burst of retries, short enough that a repaired BMC is used soon.
	RefusalMemory time.Duration
}

// Observation is one election that ran, for Options.Observe: the result,
// or the error (then Result is nil).
type Observation struct {
	Pool   string
	Result *Result
	Err    error
	Took   time.Duration
}

// Elector runs elections, one per pool at a time.
type Elector struct {
	opts     Options
	log      hclog.Logger
	pools    keylock.Set        // one election per pool at a time
	flights  singleflight.Group // one attempt per pool and request id
	refusals refusalMemo
}

// refusalMemo remembers refused request ids for a while.
type refusalMemo struct {
	mu sync.Mutex
	m  map[string]rememberedRefusal
}

type rememberedRefusal struct {
	res   *Result
	err   error
	until time.Time
}

func (c *refusalMemo) get(key string) (*Result, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[key]
	if !ok || time.Now().After(r.until) {
		return nil, nil, false
	}
	return r.res, r.err, true
}

func (c *refusalMemo) put(key string, res *Result, err error, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]rememberedRefusal{}
	}
	now := time.Now()
	for k, r := range c.m { // keep it small: drop what has expired
		if now.After(r.until) {
			delete(c.m, k)
		}
	}
	c.m[key] = rememberedRefusal{res: res, err: err, until: now.Add(d)}
}

// New returns an Elector.
func New(opts Options) *Elector {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Devices == nil {
		opts.Devices = func(string, xenha.HostView) fencing.Device { return nil }
	}
	if opts.Preferred == nil {
		opts.Preferred = func(string) []string { return nil }
	}
	if opts.UnreachableMaster == nil {
		opts.UnreachableMaster = func(string) UnreachablePolicy { return RefuseUnreachable }
	}
	if opts.Autopilot == nil {
		opts.Autopilot = func(string) (bool, time.Duration) { return false, 0 }
	}
	if opts.ProbeAttempts <= 0 {
		opts.ProbeAttempts = 3
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.ProbeSpacing, 500*time.Millisecond)
	def(&opts.PollInterval, 500*time.Millisecond)
	def(&opts.VerifyTimeout, 60*time.Second)
	def(&opts.RefusalMemory, 10*time.Second)
	return &Elector{opts: opts, log: opts.Logger}
}

func (e *Elector) lock(ctx context.Context, pool string) (func(), error) {
	unlock, err := e.pools.Lock(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("waiting for the election already running on this pool: %w", err)
	}
	return unlock, nil
}

// election is one call in progress.
type election struct {
	e    *Elector
	req  Request
	view *xenha.PoolView
	res  *Result
	// early holds evidence gathered before it was known to be needed.
	early map[string]<-chan evidence
	off   map[string]bool // hosts this election read back powered off
}

// step traces, logs and journals one step. The error is the journal's: a
// step that comes before a destructive call must not go on without it.
func (el *election) step(step, host, detail string, ok bool) error {
	s := fencing.Step{Time: time.Now(), Step: step, Host: host, Detail: detail, OK: ok}
	el.res.Trace = append(el.res.Trace, s)
	el.e.log.Info("election step", "pool", el.view.Name, "host", host, "request_id", el.req.RequestID,
		"epoch", el.view.Epoch, "step", step, "ok", ok, "detail", detail)
	if el.req.DryRun || el.e.opts.Journal == nil {
		return nil
	}
	_, err := el.e.opts.Journal.Append(journal.Entry{Pool: el.view.Name, RequestID: el.req.RequestID, Kind: "elect",
		Step: step, Host: host, Epoch: el.view.Epoch, OK: ok, Detail: detail})
	if err != nil {
		el.e.log.Error("cannot journal an election step", "pool", el.view.Name, "host", host, "request_id", el.req.RequestID,
			"epoch", el.view.Epoch, "step", step, "error", err)
	}
	return err
}

// Elect makes sure the pool has one live master, or says why not.
// Callers with the same request id share one attempt and its answer (the
// first caller's deadline bounds it), and a refusal is remembered for
// RefusalMemory: a retry storm does not rerun the whole refusal each time.
func (e *Elector) Elect(ctx context.Context, req Request) (*Result, error) {
	if req.RequestID == "" || req.DryRun {
		return e.elect(ctx, req)
	}
	key := req.Pool.View().Name + "\x00" + req.RequestID
	if res, err, ok := e.refusals.get(key); ok {
		return res, err
	}
	ch := e.flights.DoChan(key, func() (any, error) {
		res, err := e.elect(ctx, req)
		var re *RefusedError
		if errors.As(err, &re) {
			e.refusals.put(key, res, err, e.opts.RefusalMemory)
		}
		return res, err
	})
	select {
	case r := <-ch:
		res, _ := r.Val.(*Result)
		return res, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *Elector) elect(ctx context.Context, req Request) (*Result, error) {
	start := time.Now()
	res, replayed, err := e.run(ctx, req)
	if e.opts.Observe != nil && !replayed && !req.DryRun {
		e.opts.Observe(Observation{Pool: req.Pool.View().Name, Result: res, Err: err, Took: time.Since(start)})
	}
	return res, err
}

// run is Elect; replayed tells a result answered from the journal.
func (e *Elector) run(ctx context.Context, req Request) (_ *Result, replayed bool, _ error) {
	view := req.Pool.View()
	if err := fencing.CheckEpoch(req.ExpectedEpoch, fencing.PoolEpoch(e.opts.Journal, view)); err != nil {
		return nil, false, err
	}
	if res, ok := e.stored(view.Name, req); ok {
		return res, true, nil
	}
	// Only the lease holder elects; the others say who does, before
	// journaling anything. Dry runs and XenHA pools change nothing.
	if view.Controller == xenha.ControllerCloudStack && !req.DryRun && e.opts.Lease != nil {
		if err := e.opts.Lease.Check(ctx, view.UUID); err != nil {
			return nil, false, err
		}
	}
	unlock, err := e.lock(ctx, view.Name)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if res, ok := e.stored(view.Name, req); ok {
		return res, true, nil
	}
	view = req.Pool.View()
	el := &election{e: e, req: req, view: view, res: &Result{PoolUUID: view.UUID, Epoch: view.Epoch, DryRun: req.DryRun}}
	el.step("request", "", fmt.Sprintf("election requested; dry_run=%v override=%v exclude=%v reason=%q", req.DryRun, req.Override, req.Exclude, req.Reason), true)

	switch view.Controller {
	case xenha.ControllerXenHA:
		err = el.followXenHA(ctx)
	case xenha.ControllerCloudStack:
		err = el.elect(ctx)
	default:
		el.step("controller", "", "nobody controls this pool (policy or unknown state): the bridge does not act", false)
		return nil, false, fmt.Errorf("%w: pool %s has controller %s", fencing.ErrNoController, view.Name, view.Controller)
	}
	if err != nil {
		el.step("result", "", "failed: "+err.Error(), false)
		return nil, false, err
	}
	el.res.Epoch = req.Pool.View().Epoch
	el.step("result", el.res.Master.UUID, fmt.Sprintf("master %s (%s), elected by %s, epoch %d", el.res.Master.Name, el.res.Master.UUID, el.res.ElectedBy, el.res.Epoch), true)
	if !req.DryRun && req.RequestID != "" && e.opts.Journal != nil {
		if b, err := json.Marshal(el.res); err == nil {
			if err := e.opts.Journal.SaveResult("elect", view.Name, req.RequestID, b); err != nil {
				e.log.Error("cannot store an election result", "pool", view.Name, "request_id", req.RequestID, "epoch", el.res.Epoch, "error", err)
			}
		}
	}
	return el.res, false, nil
}

func (e *Elector) stored(pool string, req Request) (*Result, bool) {
	if req.RequestID == "" || req.DryRun || e.opts.Journal == nil {
		return nil, false
	}
	b, ok, err := e.opts.Journal.Result("elect", pool, req.RequestID)
	if err != nil || !ok {
		return nil, false
	}
	var res Result
	if json.Unmarshal(b, &res) != nil {
		return nil, false
	}
	return &res, true
}

// claims summarises a round of probes.
type claims struct {
	masters   []xapi.Probe        // answered as master
	following map[string][]string // master address → slaves naming it
	emergency []string            // slaves whose master is gone
	probes    []xapi.Probe
}

func summarise(probes []xapi.Probe) claims {
	c := claims{following: map[string][]string{}, probes: probes}
	for _, p := range probes {
		switch p.State {
		case xapi.ProbeMaster:
			c.masters = append(c.masters, p)
		case xapi.ProbeSlave:
			c.following[p.MasterAddress] = append(c.following[p.MasterAddress], p.URL)
		case xapi.ProbeEmergency:
			c.emergency = append(c.emergency, p.URL)
		}
	}
	return c
}

func describe(probes []xapi.Probe) string {
	parts := make([]string, 0, len(probes))
	for _, p := range probes {
		s := p.URL + ": " + p.State.String()
		if p.MasterAddress != "" {
			s += " (master " + p.MasterAddress + ")"
		}
		parts = append(parts, s)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// hostByAddress finds a member by management address or member URL.
func (el *election) hostByAddress(addr string) (xenha.HostView, bool) {
	if u, err := url.Parse(addr); err == nil && u.Hostname() != "" {
		addr = u.Hostname()
	}
	for _, h := range el.view.Hosts {
		if h.Address == addr {
			return h, true
		}
	}
	return xenha.HostView{}, false
}

func masterOf(h xenha.HostView) xenha.MasterView {
	return xenha.MasterView{UUID: h.UUID, Name: h.Name, Address: h.Address, Reachable: true}
}

// followXenHA waits, within the call's deadline, for XenHA's master.
func (el *election) followXenHA(ctx context.Context) error {
	el.step("controller", "", "XenHA controls this pool: the bridge never promotes or resets a master; it finds XenHA's choice", true)
	before := el.view.Master
	for {
		c := summarise(el.req.Pool.ProbeAll(ctx))
		if len(c.masters) == 1 {
			if h, ok := el.hostByAddress(c.masters[0].URL); ok {
				el.res.Master = masterOf(h)
				el.res.ElectedBy = ByXenHA
				if h.UUID == before.UUID && before.Reachable {
					el.res.ElectedBy = ByNone
				}
				el.step("found", h.UUID, "the members answer: "+describe(c.probes), true)
				return nil
			}
		}
		select {
		case <-time.After(el.e.opts.PollInterval):
		case <-ctx.Done():
			el.step("found", "", "XenHA has not converged by the deadline; the members answer: "+describe(c.probes), false)
			return fmt.Errorf("%w by the deadline; the members answer: %s", ErrNotConverged, describe(c.probes))
		}
	}
}
