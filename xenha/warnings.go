package xenha

import (
	"fmt"
)

// WarningCode names a risk. The server maps it to the API's enum.
type WarningCode string

const (
	WarnTwoHostPool       WarningCode = "two_host_pool"
	WarnAggressiveFencing WarningCode = "aggressive_fencing"
	WarnNoProtectedVMs    WarningCode = "no_protected_vms"
	WarnSplitBrain        WarningCode = "split_brain"
	WarnMasterUnreachable WarningCode = "master_unreachable"
	WarnPolicyConflict    WarningCode = "policy_conflict"
	WarnXenHARequired     WarningCode = "xenha_required"
	WarnNotObserved       WarningCode = "not_observed"
)

// WarningCodes lists every code, for readers that want a value for each
// (metrics report the inactive ones as 0).
var WarningCodes = []WarningCode{
	WarnTwoHostPool, WarnAggressiveFencing, WarnNoProtectedVMs, WarnSplitBrain,
	WarnMasterUnreachable, WarnPolicyConflict, WarnXenHARequired, WarnNotObserved,
}

// Warning is a risk in a sentence a person understands.
type Warning struct {
	Code    WarningCode
	Message string
}

// warnings makes the proposal's known traps visible for an observed pool.
func warnings(spec PoolSpec, v *PoolView) []Warning {
	var ws []Warning
	if v.HAEnabled && len(v.Hosts) == 2 {
		loser := v.Hosts[1] // sorted by UUID: the higher one
		ws = append(ws, Warning{WarnTwoHostPool, fmt.Sprintf(
			"Two-host XenHA pool: on a network partition XenHA fences %s (%s), the host with the higher UUID, whichever side is healthy.",
			loser.Name, loser.UUID)})
	}
	if v.HAEnabled && v.HATimeout <= spec.StorageTimeout {
		ws = append(ws, Warning{WarnAggressiveFencing, fmt.Sprintf(
			"XenHA's timeout T=%s is not above the storage failover time %s: a storage path failover will make healthy hosts fence themselves. Raise T above %s.",
			v.HATimeout, spec.StorageTimeout, spec.StorageTimeout)})
	}
	if v.HAEnabled && v.ProtectedVMs == 0 {
		ws = append(ws, Warning{WarnNoProtectedVMs,
			"XenHA is on but protects no VM: it computes failover plans for nothing (CloudStack restarts VMs itself)."})
	}
	if len(v.Claimers) > 1 {
		ws = append(ws, splitBrain(v.Claimers))
	}
	if !v.Master.Reachable {
		ws = append(ws, Warning{WarnMasterUnreachable, fmt.Sprintf(
			"The bridge cannot reach the pool master %s (%s).", v.Master.Name, v.Master.Address)})
	}
	switch {
	case spec.Policy == PolicyRequireCloudStack && v.HAEnabled:
		ws = append(ws, Warning{WarnPolicyConflict,
			"The policy wants CloudStack in control but XenHA is on: two captains. Nobody acts until XenHA is disabled or the policy changes."})
	case spec.Policy == PolicyRequireXenHA && !v.HAEnabled:
		ws = append(ws, Warning{WarnXenHARequired,
			"The policy requires XenHA but it is off: nobody will replace a dead master. Enable XenHA or change the policy."})
	}
	return ws
}
