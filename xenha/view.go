package xenha

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
)

// PoolView is an immutable snapshot of one pool as the bridge sees it:
// what HAMode answers and what events are diffed from.
type PoolView struct {
	Name           string
	UUID           string
	Members        []string
	Policy         Policy
	StorageTimeout time.Duration
	Source         string // "config" or "api"

	Observed   bool
	ObservedAt time.Time
	Epoch      uint64
	Controller Controller

	HAEnabled     bool
	HATimeout     time.Duration
	HeartbeatSRs  []string
	ProtectedVMs  int
	FTT           int64
	PlanExistsFor int64
	Eligibility   Eligibility

	Master   MasterView
	Hosts    []HostView // sorted by UUID
	VMs      []VMView   // guest VMs (no control domains, templates or snapshots)
	Claimers []string   // UUIDs (or URLs) of members answering as master
	Warnings []Warning
}

// MasterView is the master recorded in the pool database.
type MasterView struct {
	UUID, Name, Address string
	Reachable           bool
}

// HostView is one member.
type HostView struct {
	UUID, Name, Address string
	Ref                 string
	Live, Enabled       bool
	Probe               string // last probe's verdict, "" when not probed
	// SharedStorage: every shared SR of the pool is plugged on this host.
	SharedStorage bool
}

// VMView is one guest VM.
type VMView struct {
	UUID, Name, Ref string
	PowerState      string
	ResidentOn      string // host UUID, "" when none
	Protected       bool   // ha_restart_priority = restart
}

// ResidentOn lists the guest VMs the database places on a host.
func (v *PoolView) ResidentOn(hostUUID string) []VMView {
	var out []VMView
	for _, vm := range v.VMs {
		if vm.ResidentOn == hostUUID {
			out = append(out, vm)
		}
	}
	return out
}

// Eligibility says whether XenHA could be enabled now.
type Eligibility struct {
	Eligible bool
	Reasons  []string
}

// LiveHosts counts members with host_metrics.live.
func (v *PoolView) LiveHosts() int {
	n := 0
	for _, h := range v.Hosts {
		if h.Live {
			n++
		}
	}
	return n
}

// Host finds a member by UUID, name or address.
func (v *PoolView) Host(id string) (HostView, bool) {
	for _, h := range v.Hosts {
		if h.UUID == id || h.Name == id || h.Address == id {
			return h, true
		}
	}
	return HostView{}, false
}

// observation is everything derive needs beyond the spec.
type observation struct {
	state       *poolState // nil until the first event batch
	connected   bool       // the event loop is following the master
	connectedAt time.Time  // when it last (re)connected
	probes      []xapi.Probe
	probedAt    time.Time // when the last probe round started
	// The watcher's last failed check of the followed master, and when it
	// started.
	masterCheck     xapi.Probe
	masterCheckedAt time.Time
	observedAt      time.Time
}

// derive computes a view from the pool's state. It is a pure function so
// that the policy table and every warning can be tested without XAPI.
func derive(spec PoolSpec, ob observation, epoch uint64) *PoolView {
	v := &PoolView{
		Name: spec.Name, Members: spec.Members, Policy: spec.Policy,
		StorageTimeout: spec.StorageTimeout, Source: spec.Source,
		Epoch: epoch, ObservedAt: ob.observedAt,
	}
	probeByHost := map[string]xapi.Probe{}
	for _, p := range ob.probes {
		probeByHost[urlHost(p.URL)] = p
		if p.State == xapi.ProbeMaster {
			v.Claimers = append(v.Claimers, urlHost(p.URL))
		}
	}
	st := ob.state
	if st == nil {
		v.Controller = ControllerNone
		v.Warnings = []Warning{{WarnNotObserved, "The bridge has not read this pool's state yet: nobody may act until it has."}}
		if len(v.Claimers) > 1 {
			v.Warnings = append(v.Warnings, splitBrain(v.Claimers))
		}
		return v
	}
	v.Observed = true
	v.UUID = st.pool.UUID
	v.HAEnabled = st.pool.HAEnabled
	if v.HAEnabled {
		if n, err := strconv.Atoi(st.pool.HAConfiguration["timeout"]); err == nil {
			v.HATimeout = time.Duration(n) * time.Second
		} else {
			v.HATimeout = 60 * time.Second // xapi's default
		}
	}
	v.HeartbeatSRs = st.statefileSRs
	v.FTT, v.PlanExistsFor = st.pool.HAHostFailuresToTolerate, st.pool.HAPlanExistsFor

	for ref, h := range st.hosts {
		hv := HostView{UUID: h.UUID, Name: h.NameLabel, Address: h.Address, Ref: string(ref),
			Live: st.live(h), Enabled: h.Enabled, SharedStorage: sharedPlugged(st, ref)}
		if p, ok := probeByHost[h.Address]; ok {
			hv.Probe = p.State.String()
		}
		v.Hosts = append(v.Hosts, hv)
	}
	sort.Slice(v.Hosts, func(i, j int) bool { return v.Hosts[i].UUID < v.Hosts[j].UUID })
	// Name claimers by UUID where the address maps to a member.
	for i, c := range v.Claimers {
		for _, h := range v.Hosts {
			if h.Address == c {
				v.Claimers[i] = h.UUID
			}
		}
	}
	sort.Strings(v.Claimers)

	if m, ok := st.hosts[st.pool.Master]; ok {
		v.Master = MasterView{UUID: m.UUID, Name: m.NameLabel, Address: m.Address, Reachable: ob.connected}
		// The newest word on the master after the connection beats it: a
		// probe round's, or the master check's.
		if p, ok := probeByHost[m.Address]; ok && ob.probedAt.After(ob.connectedAt) && !ob.masterCheckedAt.After(ob.probedAt) {
			if p.State != xapi.ProbeMaster {
				v.Master.Reachable = false
			}
		} else if ob.masterCheckedAt.After(ob.connectedAt) && urlHost(ob.masterCheck.URL) == m.Address {
			v.Master.Reachable = false
		}
	}
	for ref, vm := range st.vms {
		if vm.IsControlDomain || vm.IsATemplate || vm.IsASnapshot {
			continue
		}
		vv := VMView{UUID: vm.UUID, Name: vm.NameLabel, Ref: string(ref), PowerState: vm.PowerState,
			Protected: vm.HARestartPriority == "restart"}
		if h, ok := st.hosts[vm.ResidentOn]; ok {
			vv.ResidentOn = h.UUID
		}
		if vv.Protected {
			v.ProtectedVMs++
		}
		v.VMs = append(v.VMs, vv)
	}
	sort.Slice(v.VMs, func(i, j int) bool { return v.VMs[i].UUID < v.VMs[j].UUID })
	v.Eligibility = eligibility(st, v)
	v.Controller = Decide(spec.Policy, true, v.HAEnabled)
	v.Warnings = warnings(spec, v)
	return v
}

// eligibility applies pool.enable_ha's preconditions, plus the project's
// own: at least three hosts.
func eligibility(st *poolState, v *PoolView) Eligibility {
	var reasons []string
	if n := len(v.Hosts); n < 3 {
		reasons = append(reasons, fmt.Sprintf("The pool has %d host(s): XenHA needs at least 3 to fence predictably (a two-host pool fences the higher UUID on any partition).", n))
	}
	shared := false
	for sref, sr := range st.srs {
		if sr.Shared && pluggedEverywhere(st, sref) {
			shared = true
			break
		}
	}
	if !shared {
		reasons = append(reasons, "No shared SR is plugged on every host to hold XenHA's statefile.")
	}
	for _, h := range v.Hosts {
		if !h.Live {
			reasons = append(reasons, fmt.Sprintf("Host %s (%s) is not live.", h.Name, h.UUID))
		}
	}
	return Eligibility{Eligible: len(reasons) == 0, Reasons: reasons}
}

// sharedPlugged tells whether every shared SR is plugged on a host.
func sharedPlugged(st *poolState, host xapi.HostRef) bool {
	for sref, sr := range st.srs {
		if !sr.Shared {
			continue
		}
		plugged := false
		for _, pbd := range st.pbds {
			if pbd.SR == sref && pbd.Host == host && pbd.CurrentlyAttached {
				plugged = true
			}
		}
		if !plugged {
			return false
		}
	}
	return true
}

func pluggedEverywhere(st *poolState, sr xapi.SRRef) bool {
	plugged := map[xapi.HostRef]bool{}
	for _, pbd := range st.pbds {
		if pbd.SR == sr && pbd.CurrentlyAttached {
			plugged[pbd.Host] = true
		}
	}
	for ref := range st.hosts {
		if !plugged[ref] {
			return false
		}
	}
	return len(st.hosts) > 0
}

// urlHost is the host part of a member URL (its management address).
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Hostname()
}

func splitBrain(claimers []string) Warning {
	return Warning{WarnSplitBrain, fmt.Sprintf("%d hosts answer as master (%s): a split brain. Only one may stay master.",
		len(claimers), strings.Join(claimers, ", "))}
}
