package xapisim

import (
	"fmt"
	"sort"
	"time"
)

// Fault injection and observation, the Go face of the control endpoint.
// Every method takes the host's index (see Info) and leaves the world
// settled: derived state recomputed and events published.

func (s *Sim) withHost(i int, f func(h *simHost) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.host(i)
	if err != nil {
		return err
	}
	if err := f(h); err != nil {
		return err
	}
	s.settleAll()
	return nil
}

// PowerOff cuts the host's power; its BMC stays reachable.
func (s *Sim) PowerOff(i int) error {
	return s.withHost(i, func(h *simHost) error { s.powerOffLocked(h); return nil })
}

// PowerLoss cuts the power of the host and of its BMC (a whole chassis).
func (s *Sim) PowerLoss(i int) error {
	return s.withHost(i, func(h *simHost) error { h.bmcDown = true; s.powerOffLocked(h); return nil })
}

// PowerOn restores power (and the BMC) and boots the host at once.
func (s *Sim) PowerOn(i int) error {
	return s.withHost(i, func(h *simHost) error { h.bmcDown = false; s.powerOnLocked(h); return nil })
}

// Reboot takes the host down for Config.RebootTime.
func (s *Sim) Reboot(i int) error {
	return s.withHost(i, func(h *simHost) error { s.rebootLocked(h, "injected"); return nil })
}

// RestartToolstack restarts the host's xapi, as `xe-toolstack-restart`
// does: its sessions and event tokens die, and it starts again as
// server_init does: a slave that cannot reach its master enters emergency
// mode (HOST_STILL_BOOTING to every call but the emergency ones) and tries
// its master again every Config.EmergencyRetryInterval. XenHA state
// (xhad runs on its own) is untouched. The host must have power.
func (s *Sim) RestartToolstack(i int) error {
	return s.withHost(i, func(h *simHost) error {
		if !h.powered {
			return fmt.Errorf("xapisim: host %d is powered off", i)
		}
		s.log.Info("toolstack restart", "host", h.name)
		h.instance++
		s.xapiStart(h)
		return nil
	})
}

// SetMasterConnectionRetryTimeout sets xapi's master_connection_retry_timeout
// on every host of the world (it is an xapi.conf setting, so it follows no
// pool; the world's hosts all share one xapi.conf here). A slave that has
// been unable to reach its master for d (rounded up to xapi's next retry,
// see masterConnectionGiveUp) restarts its xapi, and enters emergency mode
// if the master is still unreachable then. It applies at once, counting
// from when each slave lost its master. d <= 0 means never, xapi's default.
func (s *Sim) SetMasterConnectionRetryTimeout(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryTimeout = d
	if s.closed {
		return
	}
	for _, h := range s.hosts {
		if !h.masterLostAt.IsZero() {
			s.armMasterLoss(h)
		}
	}
	s.settleAll()
}

// SetRefuseWhenDown chooses what the host's address does while it has no
// power: refuse connections at once (true: its listener is closed) or stay
// silent (false, the default unless Config.RefuseWhenDown: connections are
// accepted and never answered, as on a real network).
func (s *Sim) SetRefuseWhenDown(i int, refuse bool) error {
	return s.withHost(i, func(h *simHost) error {
		h.refuseDown = refuse
		if h.powered {
			return nil
		}
		if refuse {
			h.srv.down()
			return nil
		}
		return h.srv.up(s)
	})
}

// CutBridge drops (or restores) traffic from outside the pool to the
// host's xapi: the bridge sees it hang, its peers still see it.
func (s *Sim) CutBridge(i int, cut bool) error {
	return s.withHost(i, func(h *simHost) error { h.bridgeCut = cut; return nil })
}

// CutLink cuts (or restores) the network between two hosts.
func (s *Sim) CutLink(a, b int, cut bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ha, err := s.host(a)
	if err != nil {
		return err
	}
	hb, err := s.host(b)
	if err != nil {
		return err
	}
	if ha == hb {
		return fmt.Errorf("xapisim: a host has no link to itself (%d)", a)
	}
	s.setLink(ha, hb, cut)
	s.settleAll()
	return nil
}

func (s *Sim) setLink(a, b *simHost, cut bool) {
	k := linkKey(a, b)
	_, was := s.links[k]
	switch {
	case cut && !was:
		s.links[k] = s.clock.Now()
		s.haScheduleFault(a.pool)
		if b.pool != a.pool {
			s.haScheduleFault(b.pool)
		}
	case !cut && was:
		delete(s.links, k)
	}
}

// Isolate cuts every network path of the host: to the bridge and to each
// peer. Reconnect undoes it.
func (s *Sim) Isolate(i int) error { return s.isolate(i, true) }

// Reconnect restores every network path of the host.
func (s *Sim) Reconnect(i int) error { return s.isolate(i, false) }

func (s *Sim) isolate(i int, cut bool) error {
	return s.withHost(i, func(h *simHost) error {
		h.bridgeCut = cut
		for _, o := range s.hosts {
			if o != h {
				s.setLink(h, o, cut)
			}
		}
		return nil
	})
}

// CutStorage cuts (or restores) the host's path to shared storage: the
// XenHA statefile and CloudStack's heartbeat files.
func (s *Sim) CutStorage(i int, cut bool) error {
	return s.withHost(i, func(h *simHost) error {
		if h.storageCut == cut {
			return nil
		}
		h.storageCut = cut
		if cut {
			h.storageCutAt = s.clock.Now()
			s.haScheduleFault(h.pool)
		} else {
			h.storageCutAt = time.Time{}
		}
		s.syncHeartbeat(h)
		return nil
	})
}

// HangXAPI makes the host's xapi accept connections and never answer.
func (s *Sim) HangXAPI(i int, hang bool) error {
	return s.withHost(i, func(h *simHost) error { h.hang = hang; return nil })
}

// SlowXAPI delays every answer of the host's xapi by d (wall time).
func (s *Sim) SlowXAPI(i int, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("xapisim: negative delay %v", d)
	}
	return s.withHost(i, func(h *simHost) error { h.slow = d; return nil })
}

// BMCDown makes the host's BMC unreachable (or reachable again).
func (s *Sim) BMCDown(i int, down bool) error {
	return s.withHost(i, func(h *simHost) error { h.bmcDown = down; return nil })
}

// Designate is an admin's `xe pool-designate-new-master` on the host.
func (s *Sim) Designate(i int) error {
	return s.withHost(i, func(h *simHost) error {
		from := h.pool.master
		if from == nil || !from.up() {
			return fail("HOST_OFFLINE", h.ref)
		}
		if err := s.designate(from, h); err != nil {
			return err
		}
		return nil
	})
}

// EnableHA enables XenHA on the host's pool with timeout T, through the
// same checks as pool.enable_ha on its master.
func (s *Sim) EnableHA(i int, T time.Duration) error {
	return s.withHost(i, func(h *simHost) error {
		m := h.pool.master
		if m == nil || !m.up() {
			return fail("HOST_OFFLINE", h.ref)
		}
		if err := s.enableHA(m, []any{}, map[string]any{"timeout": itoa(int64(T / time.Second))}); err != nil {
			return err
		}
		return nil
	})
}

// DisableHA disables XenHA on the host's pool.
func (s *Sim) DisableHA(i int) error {
	return s.withHost(i, func(h *simHost) error {
		if !h.pool.haEnabled {
			return fail("HA_NOT_ENABLED")
		}
		s.haDisable(h.pool)
		return nil
	})
}

// AddVM starts a guest VM on the host; protected VMs get
// ha_restart_priority "restart".
func (s *Sim) AddVM(host int, name string, protected bool) (string, error) {
	var uuid string
	err := s.withHost(host, func(h *simHost) error {
		vm := s.newVM(h.pool, name, h)
		if protected {
			vm.haPriority = "restart"
		}
		uuid = vm.uuid
		return nil
	})
	return uuid, err
}

func (s *Sim) withVM(uuid string, f func(p *simPool, vm *simVM)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pools {
		for _, vm := range p.vms {
			if vm.uuid == uuid && !vm.isControlDomain {
				f(p, vm)
				s.settleAll()
				return nil
			}
		}
	}
	return fmt.Errorf("xapisim: no guest VM %q", uuid)
}

// RemoveVM destroys a guest VM.
func (s *Sim) RemoveVM(uuid string) error {
	return s.withVM(uuid, func(p *simPool, vm *simVM) {
		var keep []*simVM
		for _, x := range p.vms {
			if x != vm {
				keep = append(keep, x)
			}
		}
		p.vms = keep
	})
}

// ProtectVM sets or clears the VM's XenHA protection.
func (s *Sim) ProtectVM(uuid string, protected bool) error {
	return s.withVM(uuid, func(_ *simPool, vm *simVM) {
		vm.haPriority = ""
		if protected {
			vm.haPriority = "restart"
		}
	})
}

// SetPBDAttached plugs or unplugs the host's PBD of a shared SR.
func (s *Sim) SetPBDAttached(host int, srUUID string, attached bool) error {
	return s.withHost(host, func(h *simHost) error {
		for _, pbd := range h.pool.pbds {
			if pbd.host == h && pbd.sr.uuid == srUUID {
				pbd.attached = attached
				return nil
			}
		}
		return fmt.Errorf("xapisim: host %d has no PBD for SR %q", host, srUUID)
	})
}

// HostState is one host as the world is, not as xapi reports it.
type HostState struct {
	HostInfo
	Powered        bool   `json:"powered"`
	BelievesMaster bool   `json:"believes_master"`
	MasterAddress  string `json:"master_address"`
	Emergency      bool   `json:"emergency"` // xapi in slave emergency mode: it started and could not reach its master
	Booting        bool   `json:"booting"`
	Enabled        bool   `json:"enabled"`
	Live           bool   `json:"live"` // host_metrics.live in the pool database
	HAArmed        bool   `json:"ha_armed"`
	InLiveset      bool   `json:"in_liveset"`
	BridgeCut      bool   `json:"bridge_cut"`
	StorageCut     bool   `json:"storage_cut"`
	Hung           bool   `json:"hung"`
	SlowMillis     int64  `json:"slow_ms"`
	BMCDown        bool   `json:"bmc_down"`
	LastHeartbeat  int64  `json:"last_heartbeat"`   // unix seconds of the last storage heartbeat write
	RefuseWhenDown bool   `json:"refuse_when_down"` // without power its address refuses connections instead of staying silent
	// MasterLostSince: unix seconds since when this running slave's xapi
	// cannot reach its master (absent when it can). A slave in that state
	// still answers HOST_IS_SLAVE.
	MasterLostSince int64 `json:"master_lost_since,omitempty"`
}

// VMState is one guest VM.
type VMState struct {
	UUID       string `json:"uuid"`
	Name       string `json:"name"`
	PowerState string `json:"power_state"`
	ResidentOn string `json:"resident_on"` // host uuid, "" when none
	Protected  bool   `json:"protected"`
	// ReallyRunning: the database says Running on a host that has power.
	ReallyRunning bool `json:"really_running"`
}

// PoolState is one pool.
type PoolState struct {
	UUID      string       `json:"uuid"`
	Name      string       `json:"name"`
	Master    string       `json:"master"` // host uuid in the database
	HAEnabled bool         `json:"ha_enabled"`
	HATimeout int64        `json:"ha_timeout_s"`
	Hosts     []string     `json:"hosts"`
	SharedSRs []string     `json:"shared_srs"`
	VMs       []VMState    `json:"vms"`
	Decisions []HADecision `json:"ha_decisions"`
}

// WorldState is everything, for tests and the control endpoint.
type WorldState struct {
	Now   time.Time   `json:"now"`
	Hosts []HostState `json:"hosts"`
	Pools []PoolState `json:"pools"`
	// MasterConnectionRetryTimeout is xapi's master_connection_retry_timeout
	// on every host, in seconds; -1 for never (xapi's default).
	MasterConnectionRetryTimeout float64 `json:"master_connection_retry_timeout_s"`
}

// State returns a consistent copy of the world.
func (s *Sim) State() WorldState {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	w := WorldState{Now: now, MasterConnectionRetryTimeout: -1}
	if s.retryTimeout > 0 {
		w.MasterConnectionRetryTimeout = s.retryTimeout.Seconds()
	}
	for _, h := range s.hosts {
		hs := HostState{
			HostInfo: h.info(), Powered: h.powered, BelievesMaster: h.isMaster,
			MasterAddress: h.masterAddr, Emergency: h.emergency,
			Booting: h.booting, Enabled: h.enabled, Live: h.live, HAArmed: h.haArmed, InLiveset: h.inLiveset,
			BridgeCut: h.bridgeCut, StorageCut: h.storageCut, Hung: h.hang, SlowMillis: h.slow.Milliseconds(),
			BMCDown: h.bmcDown, LastHeartbeat: s.lastBeat(h, now).Unix(), RefuseWhenDown: h.refuseDown,
		}
		if !h.masterLostAt.IsZero() {
			hs.MasterLostSince = h.masterLostAt.Unix()
		}
		w.Hosts = append(w.Hosts, hs)
	}
	for _, p := range s.pools {
		ps := PoolState{UUID: p.uuid, Name: p.name, HAEnabled: p.haEnabled, HATimeout: int64(p.haTimeout / time.Second),
			Decisions: append([]HADecision(nil), p.haDecisions...)}
		if p.master != nil {
			ps.Master = p.master.uuid
		}
		for _, h := range p.hosts {
			ps.Hosts = append(ps.Hosts, h.uuid)
		}
		for _, sr := range p.srs {
			if sr.shared {
				ps.SharedSRs = append(ps.SharedSRs, sr.uuid)
			}
		}
		for _, vm := range p.vms {
			if vm.isControlDomain {
				continue
			}
			v := VMState{UUID: vm.uuid, Name: vm.name, PowerState: vm.powerState, Protected: vm.haPriority == "restart"}
			if vm.residentOn != nil {
				v.ResidentOn = vm.residentOn.uuid
				v.ReallyRunning = vm.powerState == "Running" && vm.residentOn.powered
			}
			ps.VMs = append(ps.VMs, v)
		}
		w.Pools = append(w.Pools, ps)
	}
	return w
}

// LiveMasters lists the uuids of powered hosts that believe they are master,
// sorted: more than one in a pool is a split brain.
func (s *Sim) LiveMasters() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, h := range s.hosts {
		if h.powered && h.isMaster {
			out = append(out, h.uuid)
		}
	}
	sort.Strings(out)
	return out
}

// Now is the simulator's clock.
func (s *Sim) Now() time.Time { return s.clock.Now() }
