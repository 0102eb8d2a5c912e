// Package fencing makes dead hosts harmless: it gathers independent
// witnesses, refuses to touch a host any trusted witness shows alive,
// powers the host off through an ordered list of levels, each verified by
// reading the result back, and only then resets the power state of the
// VMs the pool still places on it, so CloudStack can restart them.
//
// Every step is journaled; a request id makes a fence idempotent; the
// pool's epoch makes a request based on stale evidence fail.
package fencing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/cloudstack-xenha/xenha-bridge/internal/keylock"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// Errors the server maps to gRPC codes.
var (
	ErrUnknownHost  = errors.New("no such host in the pool")
	ErrStaleEpoch   = errors.New("the request's epoch is older than the pool's")
	ErrNoController = errors.New("nobody may act on this pool")
)

// Outcome is what a fence achieved.
type Outcome string

const (
	Fenced       Outcome = "fenced"
	Deferred     Outcome = "deferred_to_xenha"
	RefusedAlive Outcome = "refused_host_alive"
	// RefusedEvidence: nothing was tried because the witnesses do not
	// prove the host dead (fewer than two independent witnesses, a
	// two-host pool without a BMC, the fencing storm guard).
	RefusedEvidence Outcome = "refused_insufficient_evidence"
	Failed          Outcome = "failed"
)

// Level names, in the default order.
const (
	LevelBMC           = "bmc"            // the host's BMC (IPMI or Redfish): power off, read back
	LevelXAPISoft      = "xapi-soft"      // host.disable + host.shutdown through the master
	LevelHeartbeatWait = "heartbeat-wait" // wait out CloudStack's storage-heartbeat self-fence
)

// DefaultLevels is the order tried when a pool names none.
var DefaultLevels = []string{LevelBMC, LevelXAPISoft, LevelHeartbeatWait}

// Request asks for one host to be fenced.
type Request struct {
	Pool          *xenha.Handle
	Host          string // UUID, name or address
	RequestID     string
	ExpectedEpoch uint64
	DryRun        bool
	Force         bool   // act even when a witness shows the host alive (journaled)
	Device        Device // the host's BMC from the caller; nil: from configuration
	Reason        string
}

// Step is one line of the decision trace.
type Step struct {
	Time   time.Time `json:"time"`
	Step   string    `json:"step"`
	Host   string    `json:"host,omitempty"`
	Detail string    `json:"detail"`
	OK     bool      `json:"ok"`
}

// VMReset reports one VM's power-state reset.
type VMReset struct {
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
	Reset bool   `json:"reset"`
	Error string `json:"error,omitempty"`
}

// Result is the answer to a Request.
type Result struct {
	RequestID      string    `json:"request_id,omitempty"`
	PoolUUID       string    `json:"pool_uuid"`
	HostUUID       string    `json:"host_uuid"`
	Outcome        Outcome   `json:"outcome"`
	Method         string    `json:"method,omitempty"`
	VMResets       []VMReset `json:"vm_resets,omitempty"`
	OutsideLiveset bool      `json:"outside_liveset"` // XenHA: host_metrics.live is false
	VMsHalted      bool      `json:"vms_halted"`      // XenHA: no VM left running on it
	Epoch          uint64    `json:"epoch"`
	DryRun         bool      `json:"dry_run"`
	Trace          []Step    `json:"trace"`
	// Incomplete: the host is fenced but a VM could not be reset (or the
	// VMs not listed): call again with the same request id to finish.
	Incomplete bool `json:"incomplete,omitempty"`
	// Where the time went: waiting on XAPI and BMCs, and the configured
	// waits (probe spacing, read-back polls, fence delay). The rest is the
	// bridge's own.
	PeerTime time.Duration `json:"peer_time"`
	Waited   time.Duration `json:"waited"`
}

// Options tune a Fencer. Zero values get the defaults noted.
type Options struct {
	Journal journal.Store
	Logger  hclog.Logger
	// Devices returns the configured BMC of a host (nil when none).
	Devices func(pool string, host xenha.HostView) Device
	// Pool returns a pool's own settings; zero fields take the defaults below.
	Pool func(pool string) PoolOptions

	ProbeAttempts    int           // the bridge's own XAPI probes of the host (3)
	ProbeSpacing     time.Duration // between them (500 ms)
	HeartbeatFresh   time.Duration // a storage heartbeat younger than this shows the host alive (120 s, CloudStack's check)
	HeartbeatTimeout time.Duration // CloudStack's xenheartbeat.sh self-fence timeout (120 s)
	HeartbeatMargin  time.Duration // waited beyond that timeout (30 s)
	VerifyTimeout    time.Duration // reading back a power-off (60 s)
	PollInterval     time.Duration // between read-backs (1 s)
	StormRatio       float64       // refuse when more than this share of the pool looks dead (0.5)
	FenceDelay       time.Duration // wait, then look again, before acting (0)
	Levels           []string      // in order (DefaultLevels)
	// Observe, when set, is told about every fence that ran: not dry runs,
	// nor a repeated request id answered from the journal. It runs on the
	// caller's goroutine and must be quick (the metrics use it).
	Observe func(Observation)
	// Lease, with several management servers, says whether this bridge
	// holds the pool's lease; it is asked before the fence starts and
	// before every destructive step (nil: one management server, always).
	Lease lease.Guard
}

// Observation is one fence that ran, for Options.Observe: the result, or
// the error (then Result is nil).
type Observation struct {
	Pool   string
	Result *Result
	Err    error
	Took   time.Duration
}

// PoolOptions are the settings a pool's configuration may override.
type PoolOptions struct {
	Levels           []string
	FenceDelay       time.Duration
	StormRatio       float64
	HeartbeatTimeout time.Duration
}

// settings merges a pool's own options over the Fencer's.
func (f *Fencer) settings(pool string) Options {
	o := f.opts
	p := f.opts.Pool(pool)
	if len(p.Levels) > 0 {
		o.Levels = p.Levels
	}
	if p.FenceDelay > 0 {
		o.FenceDelay = p.FenceDelay
	}
	if p.StormRatio > 0 {
		o.StormRatio = p.StormRatio
	}
	if p.HeartbeatTimeout > 0 {
		o.HeartbeatTimeout = p.HeartbeatTimeout
	}
	return o
}

// Fencer fences hosts, one at a time per host.
type Fencer struct {
	opts  Options
	log   hclog.Logger
	hosts keylock.Set // one fence per host at a time
}

// New returns a Fencer.
func New(opts Options) *Fencer {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if opts.ProbeAttempts <= 0 {
		opts.ProbeAttempts = 3
	}
	def(&opts.ProbeSpacing, 500*time.Millisecond)
	def(&opts.HeartbeatFresh, 120*time.Second)
	def(&opts.HeartbeatTimeout, 120*time.Second)
	def(&opts.HeartbeatMargin, 30*time.Second)
	def(&opts.VerifyTimeout, 60*time.Second)
	def(&opts.PollInterval, time.Second)
	if opts.StormRatio <= 0 {
		opts.StormRatio = 0.5
	}
	if opts.Devices == nil {
		opts.Devices = func(string, xenha.HostView) Device { return nil }
	}
	if opts.Pool == nil {
		opts.Pool = func(string) PoolOptions { return PoolOptions{} }
	}
	if len(opts.Levels) == 0 {
		opts.Levels = DefaultLevels
	}
	return &Fencer{opts: opts, log: opts.Logger}
}

// lock serialises fences of one host; it gives up with the context.
func (f *Fencer) lock(ctx context.Context, key string) (func(), error) {
	unlock, err := f.hosts.Lock(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("waiting for another fence of the same host: %w", err)
	}
	return unlock, nil
}

// run is one fence in progress: its trace and journal lines.
type run struct {
	f      *Fencer
	o      Options // the Fencer's options with the pool's own over them
	req    Request
	view   *xenha.PoolView
	host   xenha.HostView
	res    *Result
	device Device
	// lost is the lease's refusal met midway: the fence stops, and the
	// caller gets the error, not a result stored under its request id.
	lost error
}

// peer runs a call to XAPI or a BMC, counting its time.
func (r *run) peer(call func()) {
	start := time.Now()
	call()
	r.res.PeerTime += time.Since(start)
}

// wait sleeps for d unless ctx ends first, counting the time.
func (r *run) wait(ctx context.Context, d time.Duration) error {
	start := time.Now()
	defer func() { r.res.Waited += time.Since(start) }()
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// step traces, logs and journals one step. The error is the journal's: a
// step that comes before a destructive call must not go on without it.
func (r *run) step(step, detail string, ok bool) error {
	s := Step{Time: time.Now(), Step: step, Host: r.host.UUID, Detail: detail, OK: ok}
	r.res.Trace = append(r.res.Trace, s)
	r.f.log.Info("fence step", "pool", r.view.Name, "host", r.host.UUID, "request_id", r.req.RequestID,
		"epoch", r.view.Epoch, "step", step, "ok", ok, "detail", detail)
	if r.req.DryRun || r.f.opts.Journal == nil {
		return nil
	}
	_, err := r.f.opts.Journal.Append(journal.Entry{
		Pool: r.view.Name, RequestID: r.req.RequestID, Kind: "fence", Step: step,
		Host: r.host.UUID, Epoch: r.view.Epoch, OK: ok, Detail: detail,
	})
	if err != nil {
		r.f.log.Error("cannot journal a fence step", "pool", r.view.Name, "host", r.host.UUID, "request_id", r.req.RequestID,
			"epoch", r.view.Epoch, "step", step, "error", err)
	}
	return err
}

// CheckEpoch is the fencing-token rule ElectMaster and FenceHost share: a
// request based on an older epoch than the pool's is stale (ABORTED); one
// ahead of it is invalid; 0 asks for no check.
func CheckEpoch(expected, current uint64) error {
	switch {
	case expected > current:
		return &xenha.InvalidArgumentError{Field: "expected_epoch",
			Reason: fmt.Sprintf("%d is ahead of the pool's epoch %d", expected, current)}
	case expected != 0 && expected < current:
		return fmt.Errorf("%w: request %d, pool %d", ErrStaleEpoch, expected, current)
	}
	return nil
}

// PoolEpoch is the epoch a request is checked against: the view's, or the
// journal's when it is higher — with a shared store another bridge may
// have raised it before this bridge's view caught up.
func PoolEpoch(j journal.Store, view *xenha.PoolView) uint64 {
	if j == nil {
		return view.Epoch
	}
	if n, err := j.Epoch(view.Name); err == nil && n > view.Epoch {
		return n
	}
	return view.Epoch
}

// Fence fences one host, or explains why not.
func (f *Fencer) Fence(ctx context.Context, req Request) (*Result, error) {
	start := time.Now()
	res, replayed, err := f.attempt(ctx, req)
	if f.opts.Observe != nil && !replayed && !req.DryRun {
		f.opts.Observe(Observation{Pool: req.Pool.View().Name, Result: res, Err: err, Took: time.Since(start)})
	}
	return res, err
}

// attempt is Fence; replayed tells a result answered from the journal.
func (f *Fencer) attempt(ctx context.Context, req Request) (_ *Result, replayed bool, _ error) {
	view := req.Pool.View()
	host, ok := view.Host(req.Host)
	if !ok {
		return nil, false, fmt.Errorf("%w: %q in pool %s", ErrUnknownHost, req.Host, view.Name)
	}
	if err := CheckEpoch(req.ExpectedEpoch, PoolEpoch(f.opts.Journal, view)); err != nil {
		return nil, false, err
	}
	if res, ok := f.stored(view.Name, req); ok {
		return res, true, nil
	}
	// Only the lease holder fences; the others say who does, before
	// journaling anything. Dry runs and XenHA pools change nothing.
	if view.Controller == xenha.ControllerCloudStack && !req.DryRun && f.opts.Lease != nil {
		if err := f.opts.Lease.Check(ctx, view.UUID); err != nil {
			return nil, false, err
		}
	}
	unlock, err := f.lock(ctx, view.Name+"/"+host.UUID)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if res, ok := f.stored(view.Name, req); ok { // a duplicate finished while we waited
		return res, true, nil
	}
	view = req.Pool.View() // fresher, now that we hold the host
	host, _ = view.Host(host.UUID)
	r := &run{f: f, o: f.settings(view.Name), req: req, view: view, host: host,
		res: &Result{RequestID: req.RequestID, PoolUUID: view.UUID, HostUUID: host.UUID, Epoch: view.Epoch, DryRun: req.DryRun}}
	r.step("request", fmt.Sprintf("fence %s (%s) requested; force=%v dry_run=%v reason=%q", host.Name, host.Address, req.Force, req.DryRun, req.Reason), true)

	switch view.Controller {
	case xenha.ControllerXenHA:
		r.deferToXenHA()
	case xenha.ControllerCloudStack:
		if err := r.fence(ctx); err != nil {
			return nil, false, err
		}
	default:
		r.step("controller", "nobody controls this pool (policy or unknown state): the bridge does not act", false)
		return nil, false, fmt.Errorf("%w: pool %s has controller %s", ErrNoController, view.Name, view.Controller)
	}
	r.step("result", string(r.res.Outcome)+methodSuffix(r.res.Method), r.res.Outcome == Fenced || r.res.Outcome == Deferred)
	// A result with a VM left unreset is not kept: the caller's retry with
	// the same request id must finish the job (the host is already off, so
	// the retry only resets what is left).
	if !req.DryRun && req.RequestID != "" && f.opts.Journal != nil && !r.res.Incomplete {
		if b, err := json.Marshal(r.res); err == nil {
			if err := f.opts.Journal.SaveResult("fence", view.Name, req.RequestID, b); err != nil {
				f.log.Error("cannot store a fence result", "pool", view.Name, "host", host.UUID, "request_id", req.RequestID, "epoch", r.res.Epoch, "error", err)
			}
		}
	}
	if r.res.Outcome == Fenced && !req.DryRun {
		req.Pool.Publish(xenha.Event{Type: xenha.EventHostFenced, Host: host.UUID,
			Message: fmt.Sprintf("Host %s was fenced (%s); %d VM(s) reset.", host.Name, r.res.Method, countResets(r.res.VMResets))})
	}
	return r.res, false, nil
}

func methodSuffix(m string) string {
	if m == "" {
		return ""
	}
	return " by " + m
}

func countResets(rs []VMReset) int {
	n := 0
	for _, r := range rs {
		if r.Reset {
			n++
		}
	}
	return n
}

// stored returns the first result of a repeated request.
func (f *Fencer) stored(pool string, req Request) (*Result, bool) {
	if req.RequestID == "" || req.DryRun || f.opts.Journal == nil {
		return nil, false
	}
	b, ok, err := f.opts.Journal.Result("fence", pool, req.RequestID)
	if err != nil || !ok {
		return nil, false
	}
	var res Result
	if json.Unmarshal(b, &res) != nil {
		return nil, false
	}
	return &res, true
}

// deferToXenHA reports what XenHA has done; the bridge never fences there.
func (r *run) deferToXenHA() {
	r.res.Outcome = Deferred
	r.res.OutsideLiveset = !r.host.Live
	halted := true
	for _, vm := range r.view.ResidentOn(r.host.UUID) {
		if vm.PowerState == "Running" {
			halted = false
		}
	}
	r.res.VMsHalted = halted
	r.step("controller", fmt.Sprintf("XenHA controls this pool: the bridge never fences. Outside the liveset: %v; its VMs halted: %v.",
		r.res.OutsideLiveset, halted), true)
}

// fence is the CloudStack-controlled path.
func (r *run) fence(ctx context.Context) error {
	r.device = r.req.Device
	if r.device == nil {
		r.device = r.f.opts.Devices(r.view.Name, r.host)
	}
	ev := r.witness(ctx)
	if refusal := r.decide(ev); refusal != "" {
		if strings.HasPrefix(refusal, "alive:") {
			r.res.Outcome = RefusedAlive
		} else {
			r.res.Outcome = RefusedEvidence
		}
		return nil
	}
	if d := r.o.FenceDelay; d > 0 && !r.req.DryRun {
		r.step("delay", fmt.Sprintf("waiting %s before acting, then looking again", d), true)
		if err := r.wait(ctx, d); err != nil {
			return err
		}
		if again := r.witness(ctx); !r.req.Force && again.alive() != "" {
			r.step("decision", "the host showed life during the fence delay: "+again.alive(), false)
			r.res.Outcome = RefusedAlive
			return nil
		}
	}
	if r.req.DryRun {
		r.plan()
		r.res.Outcome = Fenced
		return nil
	}
	if ok, xenhaOn := r.stillOurs(ctx); !ok {
		if xenhaOn {
			// Not a failure: XenHA took control between the decision and
			// the act. Reported as XenHA's, not finished yet: the caller
			// asks again and reads XenHA's progress then.
			r.res.Outcome = Deferred
			r.res.OutsideLiveset, r.res.VMsHalted = false, false
			return nil
		}
		r.res.Outcome = Failed
		return nil
	}
	if !r.powerOff(ctx, ev) {
		r.res.Outcome = Failed
		return r.lost
	}
	r.resetVMs(ctx)
	if r.lost != nil {
		return r.lost // fenced, VMs left: the holder's retry finishes
	}
	r.res.Outcome = Fenced
	return nil
}

// stillOurs re-reads pool.ha_enabled from the master right before the
// first destructive step: XenHA enabled since the view was read means the
// bridge must not act. A pool without a reachable master cannot have had
// XenHA enabled meanwhile.
func (r *run) stillOurs(ctx context.Context) (ok, xenhaOn bool) {
	var ha, known bool
	r.peer(func() {
		err := r.req.Pool.Do(ctx, func(c *xapi.Client) error {
			pools, err := c.PoolGetAllRecords(ctx)
			for _, p := range pools {
				ha, known = p.HAEnabled, true
			}
			return err
		})
		if err != nil {
			known = false
		}
	})
	if known && ha {
		r.step("controller", "XenHA was enabled since the decision: the bridge does not act", false)
		return false, true
	}
	var err error
	if known {
		err = r.step("controller", "XenHA is still off: CloudStack (the bridge) is in control", true)
	} else {
		err = r.step("controller", "the master cannot be asked; XenHA cannot have been enabled without one", true)
	}
	if err != nil { // the last step before the first destructive call
		r.step("decision", "refused: the journal cannot record the fence: "+err.Error(), false)
		return false, false
	}
	return true, false
}

// hold re-checks the lease right before a destructive call and bounds the
// call by it: a bridge paused, or cut from the store, since the fence
// began must not go on, nor send the call late. On a refusal it records
// it in r.lost.
func (r *run) hold(ctx context.Context, what string) (context.Context, context.CancelFunc, error) {
	if r.req.DryRun {
		return ctx, func() {}, nil
	}
	bctx, cancel, err := lease.Bound(ctx, r.f.opts.Lease, r.view.UUID)
	if err != nil {
		r.step("lease", "not "+what+": "+err.Error(), false)
		r.lost = err
	}
	return bctx, cancel, err
}

// plan lists, for a dry run, what would be done.
func (r *run) plan() {
	r.step("plan", "levels in order: "+strings.Join(r.o.Levels, ", "), true)
	vms := r.view.ResidentOn(r.host.UUID)
	names := make([]string, 0, len(vms))
	for _, vm := range vms {
		names = append(names, vm.Name)
	}
	r.step("plan", fmt.Sprintf("then VM.power_state_reset for %d VM(s): %s", len(vms), strings.Join(names, ", ")), true)
}
