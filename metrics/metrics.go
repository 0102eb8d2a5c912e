// Package metrics is the bridge's Prometheus surface: gRPC server metrics
// per method and code (go-grpc-middleware's prometheus provider), and the
// domain's own, all named xenha_bridge_*.
//
// Data flows one way. The domain packages know nothing of Prometheus:
// what they do is reported through their Observe options (xapi, elect,
// fencing), which this package implements, and what they are is read from
// them when Prometheus scrapes (the pools' views, the event hub, the
// journal's size, the pools' leases) by collectors that hold no state of
// their own.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// Namespace prefixes every domain metric.
const Namespace = "xenha_bridge"

// Buckets.
var (
	// xapiBuckets reach past event.from's 30 s long poll.
	xapiBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// decisionBuckets reach past a heartbeat-wait fence (about 150 s).
	decisionBuckets = []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// grpcBuckets are the provider's defaults with a longer tail: an
	// ElectMaster waiting for XenHA takes its whole deadline.
	grpcBuckets = []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
)

// Metrics holds the registry and the instruments the bridge reports to.
// Its Observe methods are what the domain packages' Observe options take.
type Metrics struct {
	reg  *prometheus.Registry
	grpc *grpcprom.ServerMetrics

	xapiSeconds     *prometheus.HistogramVec
	xapiErrors      *prometheus.CounterVec
	elections       *prometheus.CounterVec
	electionSeconds *prometheus.HistogramVec
	fences          *prometheus.CounterVec
	fenceSeconds    *prometheus.HistogramVec
}

// New returns the bridge's metrics, with the Go runtime's and the
// process's, and build information (version).
func New(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets(grpcBuckets))),
		xapiSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "xapi_call_duration_seconds",
			Help:    "Time of XAPI requests (logins, probes and event.from long polls included), by XenAPI method, whatever their result.",
			Buckets: xapiBuckets,
		}, []string{"method"}),
		xapiErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "xapi_call_errors_total",
			Help: "XAPI requests that failed, by XenAPI method and code: the XenAPI error code (HOST_IS_SLAVE, ...) or unreachable, timeout, canceled, malformed, closed, error.",
		}, []string{"method", "code"}),
		elections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "elections_total",
			Help: "ElectMaster runs (automatic ones included; not dry runs or repeated request ids), by pool and outcome: xenha, cloudstack, none (the master was alive), refused, not_converged, stale_epoch, no_controller, invalid, canceled, timeout, error.",
		}, []string{"pool", "outcome"}),
		electionSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "election_duration_seconds",
			Help:    "Time of the elections counted by elections_total, by outcome.",
			Buckets: decisionBuckets,
		}, []string{"outcome"}),
		fences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "fences_total",
			Help: "FenceHost runs (not dry runs or repeated request ids), by pool and outcome: fenced, deferred_to_xenha, refused_host_alive, failed, unknown_host, stale_epoch, no_controller, invalid, canceled, timeout, error.",
		}, []string{"pool", "outcome"}),
		fenceSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "fence_duration_seconds",
			Help:    "Time of the fences counted by fences_total, by outcome.",
			Buckets: decisionBuckets,
		}, []string{"outcome"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.grpc, build, m.xapiSeconds, m.xapiErrors, m.elections, m.electionSeconds, m.fences, m.fenceSeconds,
	)
	return m
}

// Registry is where every metric is registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// GRPC is the gRPC server metrics; server.Options.Metrics takes it.
func (m *Metrics) GRPC() *grpcprom.ServerMetrics { return m.grpc }

// WatchPools reports the manager's pools and event hub, read at each scrape.
func (m *Metrics) WatchPools(pools *xenha.Manager) {
	m.reg.MustRegister(&poolCollector{pools: pools})
}

// JournalStats is what the journal metrics read; journal.Bolt has it.
type JournalStats interface {
	Stats() (journal.Stats, error)
}

// WatchJournal reports the journal's size, read at each scrape.
func (m *Metrics) WatchJournal(j JournalStats) {
	m.reg.MustRegister(&journalCollector{j: j})
}

// ObserveXAPICall is xapi.Options.Observe.
func (m *Metrics) ObserveXAPICall(method string, took time.Duration, err error) {
	m.xapiSeconds.WithLabelValues(method).Observe(took.Seconds())
	if err != nil {
		m.xapiErrors.WithLabelValues(method, xapi.ErrorKind(err)).Inc()
	}
}

// ObserveElection is elect.Options.Observe.
func (m *Metrics) ObserveElection(o elect.Observation) {
	outcome := ElectionOutcome(o.Result, o.Err)
	m.elections.WithLabelValues(o.Pool, outcome).Inc()
	m.electionSeconds.WithLabelValues(outcome).Observe(o.Took.Seconds())
}

// ObserveFence is fencing.Options.Observe.
func (m *Metrics) ObserveFence(o fencing.Observation) {
	outcome := FenceOutcome(o.Result, o.Err)
	m.fences.WithLabelValues(o.Pool, outcome).Inc()
	m.fenceSeconds.WithLabelValues(outcome).Observe(o.Took.Seconds())
}

// ElectionOutcome is the outcome label of an election: who elected the
// master when it succeeded, else why not.
func ElectionOutcome(res *elect.Result, err error) string {
	var refused *elect.RefusedError
	switch {
	case err == nil && res != nil:
		return string(res.ElectedBy)
	case errors.As(err, &refused):
		return "refused"
	case errors.Is(err, elect.ErrNotConverged):
		return "not_converged"
	}
	return commonOutcome(err)
}

// FenceOutcome is the outcome label of a fence: the result's outcome when
// there is one, else why not.
func FenceOutcome(res *fencing.Result, err error) string {
	switch {
	case err == nil && res != nil:
		return string(res.Outcome)
	case errors.Is(err, fencing.ErrUnknownHost):
		return "unknown_host"
	}
	return commonOutcome(err)
}

func commonOutcome(err error) string {
	var invalid *xenha.InvalidArgumentError
	switch {
	case errors.Is(err, fencing.ErrStaleEpoch):
		return "stale_epoch"
	case errors.Is(err, fencing.ErrNoController):
		return "no_controller"
	case errors.As(err, &invalid):
		return "invalid"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "error"
}

// Handler serves the registry in Prometheus's formats. A collector that
// fails (the journal unreadable) is logged and left out; the rest is served.
func (m *Metrics) Handler(log hclog.Logger) http.Handler {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
}

// NewHTTPServer returns the metrics endpoint: /metrics, nothing else.
// Serve it on a listener of its own; Shutdown stops it.
func (m *Metrics) NewHTTPServer(log hclog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler(log))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "xenha-bridge serves its metrics at /metrics", http.StatusNotFound)
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}
