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
	// refuseDown: while powered off its address refuses connections at
	// once (listener closed) instead of staying silent, which is what a
	// real powered-off host does. Config.RefuseWhenDown sets it for all.
	refuseDown bool

	// xapi state.
	isMaster   bool   // its pool.conf says master
	masterAddr string // the master it follows when a slave
	instance   int    // bumped at each boot and role change: old sessions and event tokens die
	enabled    bool
	booting    bool // HA pool member back from a reboot that could not rejoin the liveset

	// Slave emergency mode (xapi.ml: Xapi_globs.slave_emergency_mode). Set
	// only when xapi starts as a slave and cannot talk to its master; a
	// running slave whose master dies stays a normal slave.
	emergency bool
	helloStop func() bool // pending retry of Pool.hello while in emergency mode
	helloGen  int         // bumped when that retry is replaced or cancelled
	// The slave's master connection has been failing since (zero while
	// connected); with a master_connection_retry_timeout, xapi restarts
	// once it gives up.
	masterLostAt time.Time
	retryStop    func() bool // pending give-up of the master connection
	retryGen     int         // bumped when that give-up is replaced or cancelled

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

// masterReachable tells whether a slave's xapi can talk to the master its
// pool.conf names: that host's xapi is up and reachable, believes it is
// master, and is a master of this slave's pool (Pool.hello from a host it
// does not know fails). It says nothing about what the slave answers: a
// slave answers HOST_IS_SLAVE from pool.conf whether or not this holds.
func (s *Sim) masterReachable(h *simHost) bool {
	if h.isMaster {
		return true
	}
	m := s.hostByAddress(h.masterAddr)
	return m != nil && m != h && m.isMaster && m.pool == h.pool && s.reaches(h, m)
}

// xapiStart is what xapi's server_init (ocaml/xapi/xapi.ml) does about the
// master when xapi (re)starts: a master just runs; a slave sets
// slave_emergency_mode "until we actually talk to the master" and loops on
// Pool.hello, leaving emergency mode once the master answers. The simulated
// start is instant, so a slave whose master answers never shows emergency
// mode; one whose master does not stays in it, retrying (helloRetry).
// Callers bump h.instance when the restart kills sessions.
func (s *Sim) xapiStart(h *simHost) {
	s.stopMasterLoss(h)
	s.setEmergency(h, false)
	if h.isMaster || h.booting || !h.powered || s.masterReachable(h) {
		return
	}
	s.log.Info("slave cannot reach its master at xapi start: emergency mode", "host", h.name, "master", h.masterAddr)
	s.setEmergency(h, true)
}

// setEmergency sets or clears slave emergency mode and its Pool.hello
// retry loop.
func (s *Sim) setEmergency(h *simHost, on bool) {
	h.helloGen++
	if h.helloStop != nil {
		h.helloStop()
		h.helloStop = nil
	}
	h.emergency = on
	if on {
		s.helloRetry(h)
	}
}

// helloRetry is the emergency-mode loop of server_init (xapi.ml): a failed
// Pool.hello (the master unreachable is a Temporary error in
// attempt_host_status_check_with_coordinator) is retried after 5 s
// (Config.EmergencyRetryInterval), for as long as it takes; once the
// master answers, "Startup successful" clears slave_emergency_mode. No
// process restart happens, so slave-local sessions survive it.
//
// xapi also has server_run_in_emergency_mode, which restarts xapi after
// emergency_reboot_delay_base + Random.float emergency_reboot_delay_extra
// (60 s + up to 120 s, xapi_globs.ml); server_init uses it for a broken
// pool role, a failed dbsync right after a successful hello, and a slave
// locally disarmed in an HA pool (resynchronise_ha_state), not for an
// unreachable master. None of those is simulated.
func (s *Sim) helloRetry(h *simHost) {
	gen := h.helloGen
	h.helloStop = s.clock.AfterFunc(s.cfg.EmergencyRetryInterval, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed || h.helloGen != gen || !h.powered || !h.emergency {
			return
		}
		h.helloStop = nil
		if !s.masterReachable(h) {
			s.helloRetry(h)
			return
		}
		s.log.Info("slave reached its master: emergency mode ends", "host", h.name)
		s.setEmergency(h, false)
		s.settle(h.pool)
	})
}

// masterConnectionGiveUp is how long after losing its master a slave's
// xapi gives up for a master_connection_retry_timeout of d. In
// do_db_xml_rpc_persistent_with_reopen (ocaml/database/master_connection.ml)
// each failed attempt checks the time since the call started against the
// timeout, then sleeps 2 s, doubling up to 256 s; the first check past d
// exits xapi with restart_return_code (restart_on_connection_timeout is
// true on a running slave). So 60 s gives up at 62 s.
func masterConnectionGiveUp(d time.Duration) time.Duration {
	t, backoff := time.Duration(0), 2*time.Second
	for t <= d {
		t += backoff
		backoff = min(2*backoff, 256*time.Second)
	}
	return t
}

// trackMasterConnections notes when each running slave of p loses or
// regains its master. By default (master_connection_retry_timeout -1 in
// db_globs.ml / xapi_globs.ml) the connection retries forever and nothing
// else happens: the slave keeps answering HOST_IS_SLAVE. With a timeout
// set, xapi restarts when it gives up (and then starts in emergency mode
// if the master is still unreachable).
func (s *Sim) trackMasterConnections(p *simPool) {
	now := s.clock.Now()
	for _, h := range p.hosts {
		if !h.powered || h.isMaster || h.booting || h.emergency || s.masterReachable(h) {
			s.stopMasterLoss(h)
			continue
		}
		if h.masterLostAt.IsZero() {
			h.masterLostAt = now
			s.armMasterLoss(h)
		}
	}
}

func (s *Sim) stopMasterLoss(h *simHost) {
	h.retryGen++
	if h.retryStop != nil {
		h.retryStop()
		h.retryStop = nil
	}
	h.masterLostAt = time.Time{}
}

// armMasterLoss schedules the give-up of h's master connection, if a retry
// timeout is set; one already due happens now.
func (s *Sim) armMasterLoss(h *simHost) {
	h.retryGen++
	if h.retryStop != nil {
		h.retryStop()
		h.retryStop = nil
	}
	if s.retryTimeout <= 0 || h.masterLostAt.IsZero() {
		return
	}
	wait := h.masterLostAt.Add(masterConnectionGiveUp(s.retryTimeout)).Sub(s.clock.Now())
	if wait <= 0 {
		s.masterGiveUp(h)
		return
	}
	gen := h.retryGen
	h.retryStop = s.clock.AfterFunc(wait, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed || h.retryGen != gen {
			return
		}
		h.retryStop = nil
		s.masterGiveUp(h)
		s.settle(h.pool)
	})
}

// masterGiveUp is xapi exiting when its master connection times out: the
// watchdog starts a new xapi, which finds the master still unreachable
// and runs in emergency mode.
func (s *Sim) masterGiveUp(h *simHost) {
	if !h.powered || h.masterLostAt.IsZero() || s.masterReachable(h) {
		s.stopMasterLoss(h)
		return
	}
	s.log.Info("master connection retry timeout: xapi restarts", "host", h.name)
	h.instance++ // a new xapi process: sessions and event tokens die
	s.xapiStart(h)
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
	s.trackMasterConnections(p)
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
	s.setEmergency(h, false)
	s.stopMasterLoss(h)
	s.syncHeartbeat(h)
	if h.refuseDown {
		h.srv.down() // opt-in: connections refused at once
	} // else the address stays silent: connections are accepted and hang
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
	s.xapiStart(h) // a boot is an xapi start
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
	s.setEmergency(h, false)
	s.stopMasterLoss(h)
	// The new master starts its own liveness bookkeeping.
	for _, o := range p.hosts {
		o.unreachableSince = time.Time{}
	}
}

// demote points h at another master, as emergency_reset_master does.
// become_another_masters_slave (xapi_pool_transition.ml) is a no-op when
// pool.conf already names that master; otherwise it rewrites pool.conf and
// restarts xapi, which then starts as a slave (xapiStart: emergency mode
// if the new master is unreachable). Only a former master's sessions are
// dropped here, as before.
func (s *Sim) demote(h *simHost, masterAddr string) {
	if !h.isMaster && h.masterAddr == masterAddr {
		return
	}
	if h.isMaster {
		h.isMaster = false
		h.instance++
	}
	h.masterAddr = masterAddr
	s.xapiStart(h)
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
