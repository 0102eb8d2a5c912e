package xenha

import (
	"fmt"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
)

// eventClasses are what the watcher subscribes to.
var eventClasses = []string{"pool", "host", "host_metrics", "vm", "sr", "pbd"}

// poolState is the pool's database as far as the bridge needs it, built
// from an initial event.from batch and kept current by the ones after.
// Only the watcher's goroutine touches it.
type poolState struct {
	poolRef xapi.PoolRef
	pool    xapi.PoolRecord
	hosts   map[xapi.HostRef]xapi.HostRecord
	metrics map[xapi.HostMetricsRef]xapi.HostMetricsRecord
	vms     map[xapi.VMRef]xapi.VMRecord
	srs     map[xapi.SRRef]xapi.SRRecord
	pbds    map[xapi.PBDRef]xapi.PBDRecord
	// statefileSRs are the UUIDs of the SRs holding XenHA's statefile,
	// resolved from pool.ha_statefiles (VDI refs) when those change.
	statefileSRs []string
}

func newPoolState() *poolState {
	return &poolState{
		hosts:   map[xapi.HostRef]xapi.HostRecord{},
		metrics: map[xapi.HostMetricsRef]xapi.HostMetricsRecord{},
		vms:     map[xapi.VMRef]xapi.VMRecord{},
		srs:     map[xapi.SRRef]xapi.SRRecord{},
		pbds:    map[xapi.PBDRef]xapi.PBDRecord{},
	}
}

// apply folds one event into the state.
func (s *poolState) apply(ev xapi.Event) error {
	del := ev.Operation == "del"
	switch ev.Class {
	case "pool":
		if del {
			return nil
		}
		s.poolRef = xapi.PoolRef(ev.Ref)
		return ev.DecodeSnapshot(&s.pool)
	case "host":
		return applyTo(s.hosts, xapi.HostRef(ev.Ref), ev, del)
	case "host_metrics":
		return applyTo(s.metrics, xapi.HostMetricsRef(ev.Ref), ev, del)
	case "vm":
		return applyTo(s.vms, xapi.VMRef(ev.Ref), ev, del)
	case "sr":
		return applyTo(s.srs, xapi.SRRef(ev.Ref), ev, del)
	case "pbd":
		return applyTo(s.pbds, xapi.PBDRef(ev.Ref), ev, del)
	}
	return nil // a class we did not ask for
}

func applyTo[K ~string, V any](m map[K]V, ref K, ev xapi.Event, del bool) error {
	if del {
		delete(m, ref)
		return nil
	}
	var v V
	if err := ev.DecodeSnapshot(&v); err != nil {
		return fmt.Errorf("%s %s: %w", ev.Class, ev.Ref, err)
	}
	m[ref] = v
	return nil
}

// live reports host_metrics.live for a host (false when unknown).
func (s *poolState) live(h xapi.HostRecord) bool {
	m, ok := s.metrics[h.Metrics]
	return ok && m.Live
}
