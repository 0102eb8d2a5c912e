package membership

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

type env struct {
	t     *testing.T
	sim   *xapisim.Sim
	m     *xenha.Manager
	s     *Service
	creds xapi.Credentials
	tls   xapi.TLSOptions
}

func newEnv(t *testing.T, hosts, standalone int, attach bool) *env {
	t.Helper()
	sim, err := xapisim.New(xapisim.Config{Hosts: hosts, Standalone: standalone, Clock: xapisim.NewFakeClock(), Seed: 41,
		DisableHeartbeatSelfFence: true, VMsPerHost: -1, SamePort: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	xo := xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond}
	m := xenha.NewManager(xenha.Options{XAPI: xo})
	t.Cleanup(m.Close)
	info := sim.Info()
	e := &env{t: t, sim: sim, m: m, creds: xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
		tls: xapi.TLSOptions{AllowPlainHTTP: true}}
	e.s = &Service{Pools: m, XAPI: xo, Wait: 10 * time.Second, Poll: 20 * time.Millisecond}
	if attach {
		if _, _, err := m.Attach(context.Background(), xenha.PoolSpec{Name: "p", Members: sim.MemberURLs(), Credentials: e.creds,
			TLS: e.tls, ProbeInterval: 100 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) handle() *xenha.Handle {
	h, err := e.m.Handle("p")
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantRefused(t *testing.T, err error, mention string) {
	t.Helper()
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, mention) {
		t.Fatalf("want a refusal mentioning %q, got %v", mention, err)
	}
}

func TestClassify(t *testing.T) {
	e := newEnv(t, 3, 1, false)
	info := e.sim.Info()
	// Asked through a slave: the whole pool, for CloudStack to import.
	c, err := e.s.Classify(ctx(t), info.Hosts[2].URL, e.creds, e.tls, "cluster-a")
	if err != nil {
		t.Fatal(err)
	}
	if c.Class != PoolMember || c.PoolUUID != info.PoolUUID || c.Master.UUID != info.Hosts[0].UUID || len(c.Members) != 3 {
		t.Fatalf("%+v", c)
	}
	for _, m := range c.Members {
		if _, err := e.sim.HostIndex(m.UUID); err != nil || !strings.HasPrefix(m.URL, "http://"+m.Address+":") {
			t.Fatalf("member %+v", m)
		}
	}
	s, err := e.s.Classify(ctx(t), info.Standalone[0].URL, e.creds, e.tls, "")
	if err != nil || s.Class != Standalone || len(s.Members) != 1 {
		t.Fatalf("standalone: %+v %v", s, err)
	}
	// Once attached: the same name is "managed", another is a conflict.
	e.m.Attach(context.Background(), xenha.PoolSpec{Name: "cluster-a", Members: e.sim.MemberURLs(), Credentials: e.creds, TLS: e.tls})
	if c, _ := e.s.Classify(ctx(t), info.Hosts[1].URL, e.creds, e.tls, "cluster-a"); c.Class != Managed {
		t.Fatalf("same name: %+v", c)
	}
	if c, _ := e.s.Classify(ctx(t), info.Hosts[1].URL, e.creds, e.tls, "cluster-b"); c.Class != Conflict || c.ManagedAs != "cluster-a" {
		t.Fatalf("another name: %+v", c)
	}
	_, err = e.s.Classify(ctx(t), info.Hosts[1].URL, xapi.Credentials{Username: "root", Password: "wrong"}, e.tls, "")
	wantRefused(t, err, "refused the credentials")
	e.sim.PowerOff(0)
	if _, err := e.s.Classify(ctx(t), info.Hosts[1].URL, e.creds, e.tls, ""); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a slave without master: %v", err)
	}
}

func TestJoinAndEject(t *testing.T) {
	e := newEnv(t, 3, 2, true)
	j, err := journal.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	e.s.Journal = j
	info := e.sim.Info()
	alone := info.Standalone[0]
	dry, err := e.s.Join(ctx(t), e.handle(), alone.URL, e.creds, e.tls, true)
	if err != nil || !dry.DryRun || len(e.handle().View().Hosts) != 3 {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	res, err := e.s.Join(ctx(t), e.handle(), alone.URL, e.creds, e.tls, false)
	if err != nil || res.Host.UUID != alone.UUID {
		t.Fatalf("join: %+v %v", res, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(e.handle().View().Hosts) != 4 || len(e.handle().Spec().Members) != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("the view does not show the new member: %d hosts, %d members", len(e.handle().View().Hosts), len(e.handle().Spec().Members))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Joining again is refused clearly.
	_, err = e.s.Join(ctx(t), e.handle(), alone.URL, e.creds, e.tls, false)
	wantRefused(t, err, "already a member")

	// A host that runs VMs may not join.
	other := info.Standalone[1]
	i, _ := e.sim.HostIndex(other.UUID)
	e.sim.AddVM(i, "busy", false)
	_, err = e.s.Join(ctx(t), e.handle(), other.URL, e.creds, e.tls, false)
	wantRefused(t, err, "runs VM")

	// The master is never ejected; a slave is.
	_, err = e.s.Eject(ctx(t), e.handle(), info.Hosts[0].UUID, false)
	wantRefused(t, err, "pool master")
	out, err := e.s.Eject(ctx(t), e.handle(), alone.UUID, false)
	if err != nil || out.Host.UUID != alone.UUID {
		t.Fatalf("eject: %+v %v", out, err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for len(e.handle().View().Hosts) != 3 || len(e.handle().Spec().Members) != 3 {
		if time.Now().After(deadline) {
			t.Fatal("the ejected host is still listed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every change is journaled: why, then what came of it.
	entries, _ := j.Entries("p", 0, 0)
	steps := map[string]int{}
	for _, en := range entries {
		if en.Kind == "membership" && en.Host == alone.UUID {
			steps[en.Step]++
		}
	}
	if steps["join"] != 2 || steps["eject"] != 2 {
		t.Fatalf("journal: %v", steps)
	}
}

// A change the journal cannot record is not made.
func TestJoinRefusedWhenTheJournalFails(t *testing.T) {
	e := newEnv(t, 3, 2, true)
	j, err := journal.Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	j.Close() // every Append now fails
	e.s.Journal = j
	alone := e.sim.Info().Standalone[0]
	_, err = e.s.Join(ctx(t), e.handle(), alone.URL, e.creds, e.tls, false)
	if err == nil || !strings.Contains(err.Error(), "journal cannot record") {
		t.Fatalf("join with a broken journal: %v", err)
	}
	if left := e.sim.Info().Standalone; !slices.ContainsFunc(left, func(h xapisim.HostInfo) bool { return h.UUID == alone.UUID }) {
		t.Fatalf("the host joined anyway: standalone now %+v", left)
	}
}

func TestEnableAndDisableXenHA(t *testing.T) {
	t.Run("two hosts without acceptance", func(t *testing.T) {
		e := newEnv(t, 2, 0, true)
		_, err := e.s.EnableHA(ctx(t), e.handle(), false, "", 0, false)
		wantRefused(t, err, "higher UUID")
		res, err := e.s.EnableHA(ctx(t), e.handle(), true, "", 0, true)
		if err != nil || !strings.Contains(strings.Join(res.Steps, " "), "accepted by the operator") || e.handle().View().HAEnabled {
			t.Fatalf("two hosts accepted, dry run: %+v %v", res, err)
		}
	})
	t.Run("three hosts", func(t *testing.T) {
		e := newEnv(t, 3, 0, true)
		before := e.handle().View()
		res, err := e.s.EnableHA(ctx(t), e.handle(), false, "", 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.Controller != xenha.ControllerXenHA || res.Epoch <= before.Epoch || res.Timeout != 150*time.Second || res.HeartbeatSR != e.sim.State().Pools[0].SharedSRs[0] {
			t.Fatalf("enable: %+v", res)
		}
		v := e.handle().View()
		if !v.HAEnabled || v.HATimeout != 150*time.Second {
			t.Fatalf("view after enable: ha=%v T=%s", v.HAEnabled, v.HATimeout)
		}
		for _, w := range v.Warnings {
			if w.Code == xenha.WarnAggressiveFencing {
				t.Fatalf("the chosen T triggers %s", w.Message)
			}
		}
		off, err := e.s.DisableHA(ctx(t), e.handle(), false)
		if err != nil || off.Controller != xenha.ControllerCloudStack || off.Epoch <= res.Epoch {
			t.Fatalf("disable: %+v %v", off, err)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		e := newEnv(t, 3, 0, true)
		_, err := e.s.EnableHA(ctx(t), e.handle(), false, "", 60*time.Second, false)
		wantRefused(t, err, "storage failover time")
		_, err = e.s.EnableHA(ctx(t), e.handle(), false, "no-such-sr", 0, false)
		var ia *xenha.InvalidArgumentError
		if !errors.As(err, &ia) || ia.Field != "heartbeat_sr" {
			t.Fatalf("unknown SR: %v", err)
		}
		e.sim.SetPBDAttached(1, e.sim.State().Pools[0].SharedSRs[0], false)
		_, err = e.s.EnableHA(ctx(t), e.handle(), false, "", 0, false)
		wantRefused(t, err, "no shared SR")
	})
}

func TestChooseTimeout(t *testing.T) {
	for storage, want := range map[time.Duration]time.Duration{
		0: 60 * time.Second, 30 * time.Second: 60 * time.Second, 120 * time.Second: 150 * time.Second,
		200 * time.Second: 250 * time.Second, 45 * time.Second: 80 * time.Second,
	} {
		if got := ChooseTimeout(storage); got != want || got <= storage {
			t.Errorf("ChooseTimeout(%s) = %s, want %s", storage, got, want)
		}
	}
}

// The dry run judges "live" as pool.enable_ha will: a host powered off a
// moment ago is still live for xapi (600 s), but neither the bridge nor
// the master reaches it, and pool.enable_ha would fail with HOST_OFFLINE.
func TestEnableXenHARefusesAHostTheBridgeCannotReach(t *testing.T) {
	e := newEnv(t, 3, 0, true)
	if err := e.sim.PowerOff(2); err != nil {
		t.Fatal(err)
	}
	off := e.sim.Info().Hosts[2]
	if h, _ := e.handle().View().Host(off.UUID); !h.Live {
		t.Fatal("the test wants xapi to still report the host live")
	}
	for _, dry := range []bool{true, false} {
		_, err := e.s.EnableHA(ctx(t), e.handle(), false, "", 0, dry)
		wantRefused(t, err, "does not answer the bridge")
		wantRefused(t, err, off.UUID)
		wantRefused(t, err, "HOST_OFFLINE")
	}
	if e.handle().View().HAEnabled || e.sim.State().Pools[0].HAEnabled {
		t.Fatal("XenHA enabled although a host is off")
	}
	// Back on: the same dry run says yes.
	if err := e.sim.PowerOn(2); err != nil {
		t.Fatal(err)
	}
	res, err := e.s.EnableHA(ctx(t), e.handle(), false, "", 0, true)
	if err != nil || !strings.Contains(strings.Join(res.Steps, " "), "every host is live and answers the bridge") {
		t.Fatalf("after power on: %+v %v", res, err)
	}
}

// A refusal xapi makes itself (here the master cannot reach a host the
// bridge reaches: HOST_OFFLINE [ref]) comes back as an *XAPIError naming
// the call, xapi's code and the host the ref stands for.
func TestXAPIRefusalNamesCodeAndHost(t *testing.T) {
	e := newEnv(t, 3, 0, true)
	if err := e.sim.CutLink(0, 2, true); err != nil {
		t.Fatal(err)
	}
	cut := e.sim.Info().Hosts[2]
	_, err := e.s.EnableHA(ctx(t), e.handle(), false, "", 0, false)
	var xe *XAPIError
	if !errors.As(err, &xe) || xe.Call != "pool.enable_ha" || xe.Code() != xapi.CodeHostOffline || xe.HostUUID != cut.UUID ||
		!strings.Contains(xe.Host, cut.UUID) || !strings.Contains(err.Error(), "HOST_OFFLINE") {
		t.Fatalf("want pool.enable_ha HOST_OFFLINE naming %s, got %#v (%v)", cut.UUID, xe, err)
	}
	// DisableHA on a pool without XenHA is a no-op, so HA_NOT_ENABLED is
	// reached through explain directly.
	v := e.handle().View()
	err = explain(&xapi.Error{Code: xapi.CodeHANotEnabled}, "pool.disable_ha", masterOf(v), v)
	if !errors.As(err, &xe) || xe.Code() != xapi.CodeHANotEnabled || xe.HostUUID != v.Master.UUID {
		t.Fatalf("disable_ha: %v", err)
	}
	// No answer at all: ErrUnreachable, naming the call and the host.
	err = explain(&xapi.TransportError{URL: "https://10.0.0.9", Method: "pool.eject", Err: errors.New("connection refused")}, "pool.eject", v.Hosts[1], v)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), v.Hosts[1].UUID) || !strings.Contains(err.Error(), "pool.eject") {
		t.Fatalf("transport: %v", err)
	}
}
