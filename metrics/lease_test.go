package metrics

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
	"github.com/cloudstack-xenha/xenha-bridge/xenha/xenhatest"
)

// fakeLeases answers Status from a map by pool UUID, as lease.Keeper does:
// a pool it has no state for is unknown.
type fakeLeases struct {
	mu    sync.Mutex
	st    map[string]lease.Status
	asked []string
}

func (f *fakeLeases) Status(uuid string) lease.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, uuid)
	if st, ok := f.st[uuid]; ok {
		return st
	}
	return lease.Status{Pool: uuid}
}

const leaseHelp = `
# HELP xenha_bridge_lease_held 1 when this bridge holds the pool's lease and may act on the pool now, 0 when not (another bridge holds it, the lease ran out, or nobody knows).
# TYPE xenha_bridge_lease_held gauge
# HELP xenha_bridge_lease_known 1 once the shared store has answered this bridge about the pool's lease, 0 before.
# TYPE xenha_bridge_lease_known gauge
# HELP xenha_bridge_lease_term The lease's term as this bridge last saw it in the store: it rises each time the lease changes hands. Absent until the store has answered.
# TYPE xenha_bridge_lease_term gauge
`

// TestLeaseCollector reads each attached pool's lease at scrape time, by
// the pool's UUID, and labels it with the pool's name.
func TestLeaseCollector(t *testing.T) {
	leases := &fakeLeases{st: map[string]lease.Status{
		"uuid-a": {Pool: "uuid-a", Known: true, Mine: true, Holder: "ms1", Term: 7},
		// Held by another bridge.
		"uuid-b": {Pool: "uuid-b", Known: true, Holder: "ms2", Address: "10.0.0.2:50051", Term: 3},
		// Held by this bridge until the store stopped answering: the
		// lease ran out here (not Mine), the last term seen stays.
		"uuid-c": {Pool: "uuid-c", Known: true, Holder: "ms1", Term: 12, Err: errors.New("store unreachable")},
		// The store never answered.
		"uuid-d": {Pool: "uuid-d", Err: errors.New("store unreachable")},
	}}
	views := []*xenha.PoolView{
		{Name: "a", UUID: "uuid-a"}, {Name: "b", UUID: "uuid-b"}, {Name: "c", UUID: "uuid-c"}, {Name: "d", UUID: "uuid-d"},
		{Name: "e"}, // not observed yet: no UUID, no lease to ask for
	}
	var mu sync.Mutex
	c := &leaseCollector{pools: func() []*xenha.PoolView { mu.Lock(); defer mu.Unlock(); return views }, leases: leases}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	want := leaseHelp + `
xenha_bridge_lease_held{pool="a"} 1
xenha_bridge_lease_held{pool="b"} 0
xenha_bridge_lease_held{pool="c"} 0
xenha_bridge_lease_held{pool="d"} 0
xenha_bridge_lease_held{pool="e"} 0
xenha_bridge_lease_known{pool="a"} 1
xenha_bridge_lease_known{pool="b"} 1
xenha_bridge_lease_known{pool="c"} 1
xenha_bridge_lease_known{pool="d"} 0
xenha_bridge_lease_known{pool="e"} 0
xenha_bridge_lease_term{pool="a"} 7
xenha_bridge_lease_term{pool="b"} 3
xenha_bridge_lease_term{pool="c"} 12
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	for _, uuid := range leases.asked {
		if uuid == "" {
			t.Error("the lease of a pool without UUID was asked for")
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	// The lease changes hands: the next scrape shows it. A detached pool
	// disappears.
	leases.mu.Lock()
	leases.st["uuid-a"] = lease.Status{Pool: "uuid-a", Known: true, Holder: "ms2", Term: 8}
	leases.st["uuid-b"] = lease.Status{Pool: "uuid-b", Known: true, Mine: true, Holder: "ms1", Term: 4}
	leases.mu.Unlock()
	mu.Lock()
	views = views[:2]
	mu.Unlock()
	want = leaseHelp + `
xenha_bridge_lease_held{pool="a"} 0
xenha_bridge_lease_held{pool="b"} 1
xenha_bridge_lease_known{pool="a"} 1
xenha_bridge_lease_known{pool="b"} 1
xenha_bridge_lease_term{pool="a"} 8
xenha_bridge_lease_term{pool="b"} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// TestWatchLeases registers the lease collector on a manager with a
// simulated pool: the lease is asked for by the pool's XenServer UUID and
// reported under the name it is attached as.
func TestWatchLeases(t *testing.T) {
	m := New("test")
	pools := xenha.NewManager(xenha.Options{XAPI: xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond}})
	defer pools.Close()
	info := xenhatest.AttachSim(t, pools).Info()
	leases := &fakeLeases{st: map[string]lease.Status{
		info.PoolUUID: {Pool: info.PoolUUID, Known: true, Mine: true, Holder: "ms1", Term: 2},
	}}
	m.WatchLeases(pools, leases)
	want := leaseHelp + `
xenha_bridge_lease_held{pool="sim"} 1
xenha_bridge_lease_known{pool="sim"} 1
xenha_bridge_lease_term{pool="sim"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"xenha_bridge_lease_held", "xenha_bridge_lease_known", "xenha_bridge_lease_term"); err != nil {
		t.Fatal(err)
	}
}
