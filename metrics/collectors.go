package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

// The pools' state, read from their views at each scrape: a detached pool
// disappears with its view.
var (
	poolController = desc("pool_controller",
		"Who controls the pool: 1 for the current controller (xenha, cloudstack or none), 0 for the others.", "pool", "controller")
	poolObserved        = desc("pool_observed", "1 once the bridge has read the pool's state, 0 before.", "pool")
	poolMasterReachable = desc("pool_master_reachable", "1 when the bridge reaches the pool master's XAPI, 0 when not.", "pool")
	poolHosts           = desc("pool_hosts", "Members of the pool.", "pool")
	poolLiveHosts       = desc("pool_live_hosts", "Members the master records as live (host_metrics.live).", "pool")
	poolHAEnabled       = desc("pool_ha_enabled", "1 when XenHA is on.", "pool")
	poolWarnings        = desc("pool_warnings",
		"1 for each warning raised on the pool (code as in HAMode, lower case), 0 for the others.", "pool", "code")
	poolEpoch        = desc("pool_epoch", "The pool's epoch: rises on every controller or master change (the fencing token).", "pool")
	poolLastObserved = desc("pool_last_observed_timestamp_seconds",
		"When the bridge last heard from the pool (XAPI event or probe), in Unix seconds; 0 before the first time.", "pool")
)

// The event hub, read at each scrape.
var (
	eventsPublished = desc("events_published_total", "Pool events published to PoolEvents streams, by type.", "type")
	eventStreams    = desc("event_streams", "Open PoolEvents streams (and internal subscribers).")
	eventStreamLag  = desc("event_stream_lag",
		"Lag of the slowest open PoolEvents stream: events published for it that it has not taken yet (0 without streams).")
	eventStreamsCut = desc("event_streams_cut_total",
		"Streams cut off with RESOURCE_EXHAUSTED because they fell events.subscriber_buffer events behind.")
)

var controllers = []xenha.Controller{xenha.ControllerXenHA, xenha.ControllerCloudStack, xenha.ControllerNone}

// controllerLabel is the controller's label value: xenha, cloudstack, none.
func controllerLabel(c xenha.Controller) string { return strings.ToLower(c.String()) }

type poolCollector struct {
	pools *xenha.Manager
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolController, poolObserved, poolMasterReachable, poolHosts, poolLiveHosts,
		poolHAEnabled, poolWarnings, poolEpoch, poolLastObserved, eventsPublished, eventStreams, eventStreamLag, eventStreamsCut} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, v := range c.pools.Pools() {
		for _, ctl := range controllers {
			gauge(poolController, bool01(v.Controller == ctl), v.Name, controllerLabel(ctl))
		}
		gauge(poolObserved, bool01(v.Observed), v.Name)
		gauge(poolMasterReachable, bool01(v.Master.Reachable), v.Name)
		gauge(poolHosts, float64(len(v.Hosts)), v.Name)
		gauge(poolLiveHosts, float64(v.LiveHosts()), v.Name)
		gauge(poolHAEnabled, bool01(v.HAEnabled), v.Name)
		active := map[xenha.WarningCode]bool{}
		for _, w := range v.Warnings {
			active[w.Code] = true
		}
		for _, code := range xenha.WarningCodes {
			gauge(poolWarnings, bool01(active[code]), v.Name, string(code))
			delete(active, code)
		}
		for code := range active { // a code added to xenha but not to WarningCodes
			gauge(poolWarnings, 1, v.Name, string(code))
		}
		gauge(poolEpoch, float64(v.Epoch), v.Name)
		last := 0.0
		if !v.ObservedAt.IsZero() {
			last = float64(v.ObservedAt.UnixNano()) / 1e9
		}
		gauge(poolLastObserved, last, v.Name)
	}

	st := c.pools.Hub().Stats()
	for typ, n := range st.Published {
		ch <- prometheus.MustNewConstMetric(eventsPublished, prometheus.CounterValue, float64(n), string(typ))
	}
	gauge(eventStreams, float64(st.Streams))
	gauge(eventStreamLag, float64(st.MaxQueued))
	ch <- prometheus.MustNewConstMetric(eventStreamsCut, prometheus.CounterValue, float64(st.Cut))
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// The journal, read at each scrape.
var (
	journalEntries = desc("journal_entries", "Entries in the journal, by pool.", "pool")
	journalBytes   = desc("journal_size_bytes", "Size of the journal's database file.")
)

type journalCollector struct {
	j JournalStats
}

func (c *journalCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- journalEntries
	ch <- journalBytes
}

func (c *journalCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.j.Stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(journalBytes, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(journalBytes, prometheus.GaugeValue, float64(st.Bytes))
	for pool, n := range st.Entries {
		ch <- prometheus.MustNewConstMetric(journalEntries, prometheus.GaugeValue, float64(n), pool)
	}
}
