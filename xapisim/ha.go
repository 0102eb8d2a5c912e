package xapisim

import (
	"sort"
	"time"
)

// XenHA emulation. xhad decides from two heartbeat channels (UDP between
// hosts and the statefile on the heartbeat SR), each given T to declare a
// peer or the statefile lost. The simulator evaluates the pool T after each
// fault, counting only impairments at least T old, so an outage shorter than
// T fences nobody and one longer than T does (the "storage timeout > T"
// trap of CloudStack #2657).

// haScheduleFault arranges an evaluation T after a fault in an HA pool.
func (s *Sim) haScheduleFault(p *simPool) {
	if !p.haEnabled {
		return
	}
	s.clock.AfterFunc(p.haTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed || !p.haEnabled {
			return
		}
		s.haEvaluate(p)
		s.settle(p)
	})
}

// HADecision is the outcome of one xhad evaluation, kept for tests and the
// control endpoint.
type HADecision struct {
	At        time.Time `json:"at"`
	Survivors []string  `json:"survivors"` // host uuids, sorted
	Fenced    []string  `json:"fenced"`    // powered hosts that fenced themselves
	Lost      []string  `json:"lost"`      // left the liveset (fenced or found dead)
	NewMaster string    `json:"new_master,omitempty"`
}

// haSurvivors applies xhad's rule to the liveset members still in play:
// a host survives when it sees the statefile and is in the best partition,
// the largest, ties going to the partition holding the lowest host UUID.
// When every host has lost the statefile but all still see each other on
// the network, all survive.
func (s *Sim) haSurvivors(cand []*simHost, T time.Duration, now time.Time) map[*simHost]bool {
	aged := func(t time.Time) bool { return !t.IsZero() && now.Sub(t) >= T }
	linkOK := func(a, b *simHost) bool {
		if a == b {
			return true
		}
		since, cut := s.links[linkKey(a, b)]
		return !cut || !aged(since)
	}
	seesSF := func(h *simHost) bool { return !(h.storageCut && aged(h.storageCutAt)) }

	var withSF []*simHost
	for _, h := range cand {
		if seesSF(h) {
			withSF = append(withSF, h)
		}
	}
	survivors := map[*simHost]bool{}
	if len(withSF) == 0 {
		comps := components(cand, linkOK)
		if len(comps) == 1 {
			for _, h := range cand {
				survivors[h] = true
			}
		}
		return survivors
	}
	comps := components(withSF, linkOK)
	sort.Slice(comps, func(i, j int) bool {
		if len(comps[i]) != len(comps[j]) {
			return len(comps[i]) > len(comps[j])
		}
		return comps[i][0].uuid < comps[j][0].uuid // comps are sorted by uuid
	})
	for _, h := range comps[0] {
		survivors[h] = true
	}
	return survivors
}

// components splits hosts into connected groups, each sorted by UUID.
func components(hosts []*simHost, linked func(a, b *simHost) bool) [][]*simHost {
	seen := map[*simHost]bool{}
	var out [][]*simHost
	for _, start := range sortedByUUID(hosts) {
		if seen[start] {
			continue
		}
		comp := []*simHost{start}
		seen[start] = true
		for i := 0; i < len(comp); i++ {
			for _, o := range hosts {
				if !seen[o] && linked(comp[i], o) {
					seen[o] = true
					comp = append(comp, o)
				}
			}
		}
		out = append(out, sortedByUUID(comp))
	}
	return out
}

// haEvaluate runs one xhad round: fence the losers, elect a master among
// the survivors if needed, and let the (new) master mark dead hosts' VMs
// Halted and restart protected ones.
func (s *Sim) haEvaluate(p *simPool) {
	now := s.clock.Now()
	T := p.haTimeout
	var liveset, cand []*simHost
	for _, h := range p.hosts {
		if !h.haArmed || !h.inLiveset {
			continue
		}
		liveset = append(liveset, h)
		if !h.powered && now.Sub(h.poweredOffAt) >= T {
			continue // its heartbeats stopped T ago: found dead
		}
		cand = append(cand, h)
	}
	survivors := s.haSurvivors(cand, T, now)
	var lost []*simHost
	for _, h := range liveset {
		if !survivors[h] {
			lost = append(lost, h)
		}
	}
	if len(lost) == 0 {
		return
	}
	d := HADecision{At: now}
	for _, h := range sortedByUUID(liveset) {
		if survivors[h] {
			d.Survivors = append(d.Survivors, h.uuid)
		}
	}
	for _, h := range sortedByUUID(lost) {
		d.Lost = append(d.Lost, h.uuid)
		h.inLiveset = false
		h.haArmed = false
		if h.powered {
			d.Fenced = append(d.Fenced, h.uuid)
			s.log.Info("xhad self-fence", "host", h.name)
			s.rebootLocked(h, "XenHA self-fence")
		}
	}
	if len(survivors) > 0 && !survivors[p.master] {
		m := sortedByUUID(keys(survivors))[0]
		s.promote(m)
		for h := range survivors {
			if h != m {
				s.demote(h, m.address)
			}
		}
		d.NewMaster = m.uuid
		s.log.Info("xhad elected master", "host", m.name)
	}
	if len(survivors) > 0 {
		s.haRecoverVMs(p, lost, survivors)
	}
	p.haDecisions = append(p.haDecisions, d)
}

// haRecoverVMs is the master's part after a failure: VMs of lost hosts are
// Halted; protected ones restart on the least loaded survivor.
func (s *Sim) haRecoverVMs(p *simPool, lost []*simHost, survivors map[*simHost]bool) {
	targets := sortedByUUID(keys(survivors))
	for _, h := range lost {
		for _, vm := range p.residentVMs(h) {
			vm.powerState, vm.residentOn = "Halted", nil
			if vm.haPriority != "restart" {
				continue
			}
			best := targets[0]
			for _, t := range targets[1:] {
				if len(p.residentVMs(t)) < len(p.residentVMs(best)) {
					best = t
				}
			}
			vm.powerState, vm.residentOn = "Running", best
		}
	}
}

// haRejoin lets hosts back from a reboot join the liveset once they see the
// statefile and the master; until then their xapi answers the pre-dispatch
// emergency errors.
func (s *Sim) haRejoin(p *simPool) {
	if !p.haEnabled {
		return
	}
	m := p.master
	if m != nil && m.booting && m.powered { // the pool restarted around its master
		m.booting = false
		m.inLiveset, m.haArmed = true, true
	}
	for _, h := range p.hosts {
		if !h.booting || !h.powered {
			continue
		}
		if h.storageCut || m == nil || m == h || !m.up() || !m.inLiveset || !s.linkUp(h, m) {
			continue
		}
		h.booting = false
		h.inLiveset, h.haArmed = true, true
		s.demote(h, m.address)
	}
}

// haEnable arms xhad on every host, as pool.enable_ha does once its checks pass.
func (s *Sim) haEnable(p *simPool, sr *simSR, T time.Duration) {
	p.haEnabled = true
	p.haTimeout = T
	p.haSR = sr
	p.haStatefiles = []string{"OpaqueRef:" + s.uuid()}
	for _, h := range p.hosts {
		h.haArmed, h.inLiveset, h.haDisarmed = true, true, false
	}
}

func (s *Sim) haDisable(p *simPool) {
	p.haEnabled = false
	p.haSR = nil
	p.haStatefiles = nil
	for _, h := range p.hosts {
		h.haArmed, h.inLiveset = false, false
		if h.booting { // its xapi start goes on without xhad
			h.booting = false
			s.xapiStart(h)
		}
	}
}

// planExistsFor mimics xapi's plan: recomputed even when no VM is
// protected, bounded by the hosts that could fail and still leave one.
func (p *simPool) planExistsFor() int64 {
	if !p.haEnabled {
		return 0
	}
	n := int64(0)
	for _, h := range p.hosts {
		if h.inLiveset {
			n++
		}
	}
	return max(0, min(p.ftt, n-1))
}

func keys(m map[*simHost]bool) []*simHost {
	out := make([]*simHost, 0, len(m))
	for h := range m {
		out = append(out, h)
	}
	return out
}
