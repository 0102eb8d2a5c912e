package xapisim

import (
	"time"
)

type simHost struct {
	idx                     int
	ref, uuid, name         string
	address, bmcIP          string
	metricsRef, metricsUUID string
	dom0                    *simVM
	localSR                 *simSR
	pool                    *simPool

	// Physical state.
	powered      bool
	poweredOffAt time.Time
	bootedAt     time.Time
	rebootStop   func() bool // pending power-on of a reboot
	bmcDown      bool        // BMC unreachable (power loss, BMC network down)
	bridgeCut    bool        // the bridge's packets to this host are dropped
	storageCut   bool        // cannot reach the shared (heartbeat) storage
	storageCutAt time.Time
	hang         bool          // xapi accepts connections and never answers
	slow         time.Duration // xapi answers after this delay

	// xapi state.
	isMaster   bool   // its pool.conf says master
	masterAddr string // the master it follows when a slave
	instance   int    // bumped at each boot and role change: old sessions and event tokens die
	enabled    bool
	booting    bool // HA pool member back from a reboot that could not rejoin the liveset

	// host_metrics.live as the pool master records it.
	live             bool
	unreachableSince time.Time

	// XenHA (xhad) state on this host.
	haArmed    bool // xhad runs and will fence this host
	haDisarmed bool // host.emergency_ha_disable was called: never rejoins by itself
	inLiveset  bool

	// CloudStack's storage heartbeat (xenheartbeat.sh) on this host.
	hbStart time.Time // beating since (zero when not beating)
	hbLast  time.Time // last write, once beating stopped

	srv *hostServer
	bmc *bmcServer
}

type simVM struct {
	ref, uuid, name string
	powerState      string // Running, Halted
	residentOn      *simHost
	isControlDomain bool
	haPriority      string // "restart" = protected by XenHA
}

type simSR struct {
	ref, uuid, name, typ string
	shared               bool
	local                *simHost
}

type simPBD struct {
	ref, uuid string
	host      *simHost
	sr        *simSR
	attached  bool
}

type simPool struct {
	ref, uuid, name string
	hosts           []*simHost
	master          *simHost // the master recorded in the pool's database
	srs             []*simSR
	pbds            []*simPBD
	vms             []*simVM

	haEnabled    bool
	haTimeout    time.Duration
	haSR         *simSR
	haStatefiles []string
	ftt          int64 // ha_host_failures_to_tolerate
	haDecisions  []HADecision

	events *eventLog
}

type session struct {
	ref      string
	host     *simHost
	instance int
	local    bool // slave-local session: only emergency calls
	user     string
}

func linkKey(a, b *simHost) [2]int {
	if a.idx > b.idx {
		a, b = b, a
	}
	return [2]int{a.idx, b.idx}
}

// linkUp is the current network path between two hosts (no ageing).
func (s *Sim) linkUp(a, b *simHost) bool {
	if a == b {
		return true
	}
	_, cut := s.links[linkKey(a, b)]
	return !cut
}

// up is "its xapi is running": powered and not stuck booting.
func (h *simHost) up() bool { return h.powered && !h.booting }

// reaches tells whether host a can talk to host b's xapi right now (a
// hung xapi answers its peers no better than it answers the bridge).
func (s *Sim) reaches(a, b *simHost) bool {
	return a.powered && b.up() && !b.hang && s.linkUp(a, b)
}

// masterOf returns the host a slave follows, if that host is up, really a
// master and reachable from it; nil means the slave is in emergency mode.
func (s *Sim) masterOf(h *simHost) *simHost {
	if h.isMaster {
		return h
	}
	m := s.hostByAddress(h.masterAddr)
	if m == nil || m == h || !m.isMaster || !s.reaches(h, m) {
		return nil
	}
	return m
}

// beating reports whether xenheartbeat.sh on h is writing its file now.
func (h *simHost) beating() bool { return h.powered && !h.storageCut }

// lastBeat is the time of h's last heartbeat write: writes happen every
// interval from the moment beating (re)started.
func (s *Sim) lastBeat(h *simHost, now time.Time) time.Time {
	if h.hbStart.IsZero() {
		return h.hbLast
	}
	iv := s.cfg.HeartbeatInterval
	n := now.Sub(h.hbStart) / iv
	return h.hbStart.Add(n * iv)
}

// syncHeartbeat starts or stops h's heartbeat after a physical change and,
// as CloudStack's script does, arms its self-fence.
func (s *Sim) syncHeartbeat(h *simHost) {
	now := s.clock.Now()
	switch {
	case h.beating() && h.hbStart.IsZero():
		h.hbStart = now
		h.hbLast = now
	case !h.beating() && !h.hbStart.IsZero():
		h.hbLast = s.lastBeat(h, now)
		h.hbStart = time.Time{}
		if h.powered && !s.cfg.DisableHeartbeatSelfFence {
			s.armSelfFence(h, h.hbLast)
		}
	}
}

// armSelfFence reboots h once HeartbeatTimeout has passed since its last
// successful write, unless it wrote again meanwhile (xenheartbeat.sh's
// `echo b > /proc/sysrq-trigger`).
func (s *Sim) armSelfFence(h *simHost, last time.Time) {
	wait := last.Add(s.cfg.HeartbeatTimeout).Sub(s.clock.Now())
	if wait < 0 {
		wait = 0
	}
	bootedAt := h.bootedAt
	s.clock.AfterFunc(wait, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed || !h.powered || !h.hbStart.IsZero() || h.bootedAt != bootedAt {
			return
		}
		s.log.Info("storage heartbeat self-fence", "host", h.name)
		s.rebootLocked(h, "storage heartbeat self-fence")
		s.settle(h.pool)
	})
}

// refreshLive recomputes host_metrics.live as the pool's master records it.
// Without XenHA a host stays live until DeadInterval after the master last
// heard from it; with XenHA, live follows xhad's liveset.
func (s *Sim) refreshLive(p *simPool) {
	m := p.master
	if m == nil || !m.up() || !m.isMaster {
		return // nobody updates the database
	}
	now := s.clock.Now()
	for _, h := range p.hosts {
		if p.haEnabled {
			h.live = h.inLiveset
			if h.live {
				h.unreachableSince = time.Time{}
			}
			continue
		}
		if s.reaches(m, h) {
			h.live = true
			h.unreachableSince = time.Time{}
			continue
		}
		if h.unreachableSince.IsZero() {
			h.unreachableSince = now
			since := now
			s.clock.AfterFunc(s.cfg.DeadInterval, func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				if !s.closed && h.unreachableSince.Equal(since) {
					s.settle(h.pool)
				}
			})
		}
		if now.Sub(h.unreachableSince) >= s.cfg.DeadInterval {
			h.live = false
		}
	}
}

// settle brings a pool's derived state up to date after any change and
// publishes the resulting events.
func (s *Sim) settle(p *simPool) {
	if s.closed {
		return
	}
	s.haRejoin(p)
	s.refreshLive(p)
	s.commit(p)
}

func (s *Sim) settleAll() {
	for _, p := range s.pools {
		s.settle(p)
	}
}

// powerOffLocked cuts power: xapi, xhad and the heartbeat script die; the
// database still says its VMs run until someone resets them.
func (s *Sim) powerOffLocked(h *simHost) {
	if h.rebootStop != nil { // a power cut ends a pending reboot too
		h.rebootStop()
		h.rebootStop = nil
	}
	if !h.powered {
		return
	}
	h.powered = false
	h.poweredOffAt = s.clock.Now()
	h.booting = false
	s.syncHeartbeat(h)
	h.srv.down()
	s.haScheduleFault(h.pool)
}

func (s *Sim) powerOnLocked(h *simHost) {
	if h.rebootStop != nil {
		h.rebootStop()
		h.rebootStop = nil
	}
	if h.powered {
		return
	}
	h.powered = true
	h.poweredOffAt = time.Time{}
	h.bootedAt = s.clock.Now()
	h.instance++
	h.inLiveset = false
	h.haArmed = false
	// On boot xapi resyncs: nothing runs on a host that just started.
	for _, vm := range h.pool.vms {
		if vm.residentOn == h && !vm.isControlDomain {
			vm.powerState = "Halted"
			vm.residentOn = nil
		}
	}
	if h.pool.haEnabled && !h.haDisarmed {
		h.booting = true // haRejoin decides whom it follows
	}
	s.syncHeartbeat(h)
	if err := h.srv.up(s); err != nil {
		s.log.Error("host listener failed to come back", "host", h.name, "error", err)
	}
}

func (s *Sim) rebootLocked(h *simHost, why string) {
	s.log.Debug("reboot", "host", h.name, "why", why)
	s.powerOffLocked(h)
	h.rebootStop = s.clock.AfterFunc(s.cfg.RebootTime, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed || h.powered {
			return
		}
		h.rebootStop = nil
		s.powerOnLocked(h)
		s.settle(h.pool)
	})
}

// promote makes h its pool's master in the database and on its own disk.
func (s *Sim) promote(h *simHost) {
	p := h.pool
	p.master = h
	if !h.isMaster {
		h.isMaster = true
		h.instance++
	}
	h.masterAddr = h.address
	h.booting = false
	// The new master starts its own liveness bookkeeping.
	for _, o := range p.hosts {
		o.unreachableSince = time.Time{}
	}
}

// demote points h at another master, as emergency_reset_master does.
func (s *Sim) demote(h *simHost, masterAddr string) {
	if h.isMaster {
		h.isMaster = false
		h.instance++
	}
	h.masterAddr = masterAddr
}

func (p *simPool) residentVMs(h *simHost) []*simVM {
	var out []*simVM
	for _, vm := range p.vms {
		if vm.residentOn == h && !vm.isControlDomain {
			out = append(out, vm)
		}
	}
	return out
}

func (p *simPool) member(ref string) *simHost {
	for _, h := range p.hosts {
		if h.ref == ref {
			return h
		}
	}
	return nil
}
