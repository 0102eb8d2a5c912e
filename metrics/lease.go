package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// The pools' leases (several management servers), read from the lease
// keeper at each scrape for the pools attached then.
var (
	leaseHeld = desc("lease_held",
		"1 when this bridge holds the pool's lease and may act on the pool now, 0 when not (another bridge holds it, the lease ran out, or nobody knows).", "pool")
	leaseKnown = desc("lease_known", "1 once the shared store has answered this bridge about the pool's lease, 0 before.", "pool")
	leaseTerm  = desc("lease_term",
		"The lease's term as this bridge last saw it in the store: it rises each time the lease changes hands. Absent until the store has answered.", "pool")
)

// LeaseStatus is what the lease metrics read, by XenServer pool UUID;
// lease.Keeper has it.
type LeaseStatus interface {
	Status(poolUUID string) lease.Status
}

// WatchLeases reports the lease of each of the manager's pools, read from
// l at each scrape. Only a bridge with a lease keeper (journal.store:
// mysql) has leases to report.
func (m *Metrics) WatchLeases(pools *xenha.Manager, l LeaseStatus) {
	m.reg.MustRegister(&leaseCollector{pools: pools.Pools, leases: l})
}

type leaseCollector struct {
	pools  func() []*xenha.PoolView
	leases LeaseStatus
}

func (c *leaseCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- leaseHeld
	ch <- leaseKnown
	ch <- leaseTerm
}

func (c *leaseCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, pool string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, pool)
	}
	for _, v := range c.pools() {
		var st lease.Status
		if v.UUID != "" { // the lease is keyed by the pool's UUID, unknown before the pool is observed
			st = c.leases.Status(v.UUID)
		}
		gauge(leaseHeld, bool01(st.Mine), v.Name)
		gauge(leaseKnown, bool01(st.Known), v.Name)
		if st.Known {
			gauge(leaseTerm, float64(st.Term), v.Name)
		}
	}
}
