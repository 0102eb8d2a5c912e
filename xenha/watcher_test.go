package xenha

import (
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
)

// A probe round that started before the event loop connected to the new
// master says nothing about it: it must neither cut the loop nor make
// the view call the new master lost (the false MASTER_LOST after an
// election came from such a stale round).
func TestAStaleProbeRoundCutsNothing(t *testing.T) {
	pool, err := xapi.NewPool([]string{"http://10.0.0.0", "http://10.0.0.1"}, xapi.Credentials{Username: "u", Password: "p"},
		xapi.Options{TLS: xapi.TLSOptions{AllowPlainHTTP: true}})
	if err != nil {
		t.Fatal(err)
	}
	w := newWatcher(PoolSpec{Name: "p", MasterProbeInterval: time.Second}, pool, NewHub(16, 16), hclog.NewNullLogger(), time.Second, func(string, string) {})
	newMaster, _ := pool.Member("http://10.0.0.1")
	cuts := 0
	w.cancelFollow = func() { cuts++ }
	before := time.Now()
	st := fakeState(2, false, "")
	st.pool.Master = "OpaqueRef:h1" // the bridge just promoted host-1
	w.update(func(ob *observation) {
		ob.state, ob.connected, ob.connectedAt = st, true, time.Now()
		w.following = newMaster
	})
	stale := []xapi.Probe{
		{URL: "http://10.0.0.0", State: xapi.ProbeUnreachable},
		{URL: "http://10.0.0.1", State: xapi.ProbeUnreachable}, // mid-promotion, say
	}
	w.afterProbe(stale, before)
	if cuts != 0 || !w.view.Load().Master.Reachable {
		t.Fatalf("a round older than the connection cut the loop (%d) or lost the master: %+v", cuts, w.view.Load().Master)
	}
	// A round started after the connection, with the master silent, does.
	w.afterProbe(stale, time.Now())
	if cuts != 1 || w.view.Load().Master.Reachable {
		t.Fatalf("a fresh round: %d cuts, master %+v", cuts, w.view.Load().Master)
	}
}

// The newest word on the master wins: a failed master check after the
// connection marks it unreachable; a later probe round answering as
// master leaves it to the connection.
func TestTheMasterCheckMarksTheMasterUnreachable(t *testing.T) {
	spec := PoolSpec{Name: "p"}
	t0 := time.Now()
	ob := observation{state: fakeState(3, false, ""), connected: true, connectedAt: t0}
	if v := derive(spec, ob, 1); !v.Master.Reachable {
		t.Fatal("connected, yet unreachable")
	}
	ob.masterCheck, ob.masterCheckedAt = xapi.Probe{URL: "http://10.0.0.0", State: xapi.ProbeUnreachable}, t0.Add(time.Second)
	if v := derive(spec, ob, 1); v.Master.Reachable {
		t.Fatal("a failed master check after the connection is ignored")
	}
	ob.probes, ob.probedAt = []xapi.Probe{{URL: "http://10.0.0.0", State: xapi.ProbeMaster}}, t0.Add(2*time.Second)
	if v := derive(spec, ob, 1); !v.Master.Reachable {
		t.Fatal("a newer probe answering as master is ignored")
	}
	ob.masterCheckedAt = t0.Add(-time.Second) // older than the connection
	ob.probes = nil
	if v := derive(spec, ob, 1); !v.Master.Reachable {
		t.Fatal("a master check older than the connection counts")
	}
}
