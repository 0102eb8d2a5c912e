package xapisim_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
)

// These tests drive the simulator with the project's own XenAPI client: the
// behaviour the bridge will rely on, end to end over real sockets.

func startSim(t *testing.T, cfg xapisim.Config) (*xapisim.Sim, *xapisim.FakeClock, *xapi.Pool) {
	t.Helper()
	fc := xapisim.NewFakeClock()
	cfg.Clock, cfg.Seed = fc, 11
	cfg.DisableHeartbeatSelfFence = true
	sim, err := xapisim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	info := sim.Info()
	pool, err := xapi.NewPool(sim.MemberURLs(),
		xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
		xapi.Options{TLS: xapi.TLSOptions{AllowPlainHTTP: true}, Timeout: 3 * time.Second, ProbeTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close(context.Background()) })
	return sim, fc, pool
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestClientFollowsTheMasterAcrossAFailover(t *testing.T) {
	sim, _, pool := startSim(t, xapisim.Config{Hosts: 3})
	info := sim.Info()
	m, err := pool.Master(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.Address() != info.Hosts[0].Address {
		t.Fatalf("master %s, want host 0", m.Address())
	}

	// The master dies: its address goes silent, the slaves still name it
	// (HOST_IS_SLAVE comes from pool.conf), and nobody answers as master.
	if err := sim.PowerOff(0); err != nil {
		t.Fatal(err)
	}
	pool.Invalidate()
	_, err = pool.Master(ctx(t))
	var lost *xapi.MasterLostError
	if !errors.As(err, &lost) || !errors.Is(err, xapi.ErrMasterLost) {
		t.Fatalf("want ErrMasterLost, got %v", err)
	}
	states := map[xapi.ProbeState]int{}
	for _, p := range lost.Probes {
		states[p.State]++
		if p.State == xapi.ProbeSlave && p.MasterAddress != info.Hosts[0].Address {
			t.Fatalf("a slave of the dead master names %q", p.MasterAddress)
		}
	}
	if states[xapi.ProbeUnreachable] != 1 || states[xapi.ProbeSlave] != 2 {
		t.Fatalf("probes %v", lost.Probes)
	}

	// Promote host 1 through a slave-local session, recover the others.
	local, err := pool.SlaveLocal(info.Hosts[1].URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := local.PoolEmergencyTransitionToMaster(ctx(t)); err != nil {
		t.Fatal(err)
	}
	local.Close(ctx(t))
	m, err = pool.Master(ctx(t))
	if err != nil || m.Address() != info.Hosts[1].Address {
		t.Fatalf("after the transition: %v %v", m, err)
	}
	reset, err := m.PoolRecoverSlaves(ctx(t))
	if err != nil || len(reset) != 1 || reset[0] != xapi.HostRef("OpaqueRef:"+info.Hosts[2].UUID) {
		t.Fatalf("recover_slaves: %v %v", reset, err)
	}
}

func TestClientFollowsAnAdminDesignation(t *testing.T) {
	sim, _, pool := startSim(t, xapisim.Config{Hosts: 3})
	if _, err := pool.Master(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := sim.Designate(2); err != nil {
		t.Fatal(err)
	}
	// The cached master now says HOST_IS_SLAVE (after its session died):
	// Do follows the redirect and retries once.
	var hosts map[xapi.HostRef]xapi.HostRecord
	err := pool.Do(ctx(t), func(c *xapi.Client) error {
		var err error
		hosts, err = c.HostGetAllRecords(ctx(t))
		return err
	})
	if err != nil || len(hosts) != 3 {
		t.Fatalf("Do after designation: %d hosts, %v", len(hosts), err)
	}
	m, _ := pool.Master(ctx(t))
	if m.Address() != sim.Info().Hosts[2].Address {
		t.Fatalf("master %s, want host 2", m.Address())
	}
}

func TestClientSeesTwoMastersAsSplitBrain(t *testing.T) {
	sim, _, pool := startSim(t, xapisim.Config{Hosts: 3})
	if err := sim.PowerOff(0); err != nil {
		t.Fatal(err)
	}
	local, _ := pool.SlaveLocal(sim.Info().Hosts[1].URL)
	if err := local.PoolEmergencyTransitionToMaster(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := sim.PowerOn(0); err != nil { // the old master is back, still master
		t.Fatal(err)
	}
	pool.Invalidate()
	// The probe must find both, whichever it tries first.
	probes := pool.Probe(ctx(t))
	masters := 0
	for _, p := range probes {
		if p.State == xapi.ProbeMaster {
			masters++
		}
	}
	if masters != 2 {
		t.Fatalf("probes %v", probes)
	}
}

func TestClientProbeOfAHungHostIsBounded(t *testing.T) {
	sim, _, pool := startSim(t, xapisim.Config{Hosts: 3})
	if err := sim.HangXAPI(2, true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	probes := pool.Probe(ctx(t))
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("probe took %v with a hung member", d)
	}
	if probes[2].State != xapi.ProbeUnreachable || probes[0].State != xapi.ProbeMaster || probes[1].State != xapi.ProbeSlave {
		t.Fatalf("probes %v", probes)
	}
}

func TestClientEventsAndReloginAfterRestart(t *testing.T) {
	sim, fc, pool := startSim(t, xapisim.Config{Hosts: 3})
	m, err := pool.Master(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	first, err := m.EventFrom(ctx(t), []string{"host_metrics"}, "", 0)
	if err != nil || len(first.Events) != 3 || first.ValidRefCounts["host_metrics"] != 3 {
		t.Fatalf("initial batch %+v %v", first, err)
	}
	if err := sim.PowerOff(2); err != nil {
		t.Fatal(err)
	}
	fc.Advance(601 * time.Second) // xapi's dead interval: live falls
	next, err := m.EventFrom(ctx(t), []string{"host_metrics"}, first.Token, 5*time.Second)
	if err != nil || len(next.Events) != 1 {
		t.Fatalf("after the dead interval: %+v %v", next, err)
	}
	var hm xapi.HostMetricsRecord
	if err := next.Events[0].DecodeSnapshot(&hm); err != nil || hm.Live {
		t.Fatalf("host_metrics snapshot %+v %v", hm, err)
	}

	// The master restarts: its sessions die and the client logs in again.
	if err := sim.Designate(1); err != nil {
		t.Fatal(err)
	}
	if err := sim.Designate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.PoolGetAllRecords(ctx(t)); err != nil {
		t.Fatalf("no transparent re-login: %v", err)
	}
	// Its event token does not survive: EVENTS_LOST tells the caller to resync.
	_, err = m.EventFrom(ctx(t), []string{"host_metrics"}, next.Token, 0)
	if !xapi.IsCode(err, "EVENTS_LOST") {
		t.Fatalf("stale token: %v", err)
	}
}

func TestClientCallsAgainstXenHA(t *testing.T) {
	sim, fc, pool := startSim(t, xapisim.Config{Hosts: 3})
	m, err := pool.Master(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.PoolEnableHA(ctx(t), nil, map[string]string{"timeout": "30"}); err != nil {
		t.Fatal(err)
	}
	pools, err := m.PoolGetAllRecords(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pools {
		if !p.HAEnabled || p.HAConfiguration["timeout"] != "30" {
			t.Fatalf("pool %+v", p)
		}
	}
	hosts, _ := m.HostGetAllRecords(ctx(t))
	var other xapi.HostRef
	for ref, h := range hosts {
		if h.Address != m.Address() {
			other = ref
		}
	}
	if err := m.PoolDesignateNewMaster(ctx(t), other); !xapi.IsCode(err, "HA_IS_ENABLED") {
		t.Fatalf("designate under XenHA: %v", err)
	}
	if err := sim.PowerOff(0); err != nil {
		t.Fatal(err)
	}
	fc.Advance(31 * time.Second)
	pool.Invalidate()
	m2, err := pool.Master(ctx(t))
	if err != nil || m2.Address() == sim.Info().Hosts[0].Address {
		t.Fatalf("XenHA's new master not found: %v %v", m2, err)
	}
}
