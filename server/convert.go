package server

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// Conversions between the domain (package xenha) and the API.

var controllers = map[xenha.Controller]pb.Controller{
	xenha.ControllerNone:       pb.Controller_CONTROLLER_NONE,
	xenha.ControllerXenHA:      pb.Controller_CONTROLLER_XENHA,
	xenha.ControllerCloudStack: pb.Controller_CONTROLLER_CLOUDSTACK,
}

var policies = map[xenha.Policy]pb.Policy{
	xenha.PolicyAuto:              pb.Policy_POLICY_AUTO,
	xenha.PolicyRequireXenHA:      pb.Policy_POLICY_REQUIRE_XENHA,
	xenha.PolicyRequireCloudStack: pb.Policy_POLICY_REQUIRE_CLOUDSTACK,
	xenha.PolicyObserve:           pb.Policy_POLICY_OBSERVE,
}

func policyFromPB(p pb.Policy) (xenha.Policy, bool) {
	if p == pb.Policy_POLICY_UNSPECIFIED {
		return xenha.PolicyAuto, true
	}
	for k, v := range policies {
		if v == p {
			return k, true
		}
	}
	return "", false
}

var warningCodes = map[xenha.WarningCode]pb.WarningCode{
	xenha.WarnTwoHostPool:       pb.WarningCode_WARNING_CODE_TWO_HOST_POOL,
	xenha.WarnAggressiveFencing: pb.WarningCode_WARNING_CODE_AGGRESSIVE_FENCING,
	xenha.WarnNoProtectedVMs:    pb.WarningCode_WARNING_CODE_NO_PROTECTED_VMS,
	xenha.WarnSplitBrain:        pb.WarningCode_WARNING_CODE_SPLIT_BRAIN,
	xenha.WarnMasterUnreachable: pb.WarningCode_WARNING_CODE_MASTER_UNREACHABLE,
	xenha.WarnPolicyConflict:    pb.WarningCode_WARNING_CODE_POLICY_CONFLICT,
	xenha.WarnXenHARequired:     pb.WarningCode_WARNING_CODE_XENHA_REQUIRED,
	xenha.WarnNotObserved:       pb.WarningCode_WARNING_CODE_NOT_OBSERVED,
}

var eventTypes = map[xenha.EventType]pb.EventType{
	xenha.EventMasterChanged:     pb.EventType_EVENT_TYPE_MASTER_CHANGED,
	xenha.EventMasterLost:        pb.EventType_EVENT_TYPE_MASTER_LOST,
	xenha.EventHostDown:          pb.EventType_EVENT_TYPE_HOST_DOWN,
	xenha.EventHostUp:            pb.EventType_EVENT_TYPE_HOST_UP,
	xenha.EventHostFenced:        pb.EventType_EVENT_TYPE_HOST_FENCED,
	xenha.EventHAEnabled:         pb.EventType_EVENT_TYPE_HA_ENABLED,
	xenha.EventHADisabled:        pb.EventType_EVENT_TYPE_HA_DISABLED,
	xenha.EventControllerChanged: pb.EventType_EVENT_TYPE_CONTROLLER_CHANGED,
	xenha.EventSplitBrain:        pb.EventType_EVENT_TYPE_SPLIT_BRAIN,
	xenha.EventWarningRaised:     pb.EventType_EVENT_TYPE_WARNING_RAISED,
	xenha.EventWarningCleared:    pb.EventType_EVENT_TYPE_WARNING_CLEARED,
}

var causes = map[xenha.Cause]pb.MasterChangeCause{
	xenha.CauseXenHAElection:      pb.MasterChangeCause_MASTER_CHANGE_CAUSE_XENHA_ELECTION,
	xenha.CauseCloudStackElection: pb.MasterChangeCause_MASTER_CHANGE_CAUSE_CLOUDSTACK_ELECTION,
	xenha.CauseAdminDesignation:   pb.MasterChangeCause_MASTER_CHANGE_CAUSE_ADMIN_DESIGNATION,
	xenha.CauseUnknown:            pb.MasterChangeCause_MASTER_CHANGE_CAUSE_UNKNOWN,
}

func warningPB(w xenha.Warning) *pb.Warning {
	return &pb.Warning{Code: warningCodes[w.Code], Message: w.Message}
}

func masterPB(m xenha.MasterView) *pb.Master {
	return &pb.Master{Uuid: m.UUID, Name: m.Name, Address: m.Address, Reachable: m.Reachable}
}

// leasePB is a pool's lease as this bridge knows it.
func leasePB(st lease.Status) *pb.Lease {
	out := &pb.Lease{Holder: st.Holder, HolderAddress: st.Address, HeldHere: st.Mine, Term: st.Term}
	switch {
	case st.Err != nil:
		out.Error = st.Err.Error()
	case !st.Known:
		out.Error = "not asked yet"
	}
	return out
}

func timestamp(v *xenha.PoolView) *timestamppb.Timestamp {
	if v.ObservedAt.IsZero() {
		return nil
	}
	return timestamppb.New(v.ObservedAt)
}

func haModePB(v *xenha.PoolView) *pb.HAModeResponse {
	r := &pb.HAModeResponse{
		Pool: v.Name, PoolUuid: v.UUID, Controller: controllers[v.Controller], Policy: policies[v.Policy],
		Observed: v.Observed, ObservedAt: timestamp(v), Epoch: v.Epoch,
		HaEnabled: v.HAEnabled, HaTimeout: durationpb.New(v.HATimeout), StorageTimeout: durationpb.New(v.StorageTimeout),
		HeartbeatSrs: v.HeartbeatSRs, ProtectedVmCount: int32(v.ProtectedVMs),
		HaHostFailuresToTolerate: v.FTT, HaPlanExistsFor: v.PlanExistsFor,
		XenhaEligibility: &pb.XenHAEligibility{Eligible: v.Eligibility.Eligible, Reasons: v.Eligibility.Reasons},
		HostCount:        int32(len(v.Hosts)), LiveHostCount: int32(v.LiveHosts()),
		Master: masterPB(v.Master),
	}
	for _, h := range v.Hosts {
		r.Hosts = append(r.Hosts, &pb.Host{Uuid: h.UUID, Name: h.Name, Address: h.Address, Live: h.Live, Enabled: h.Enabled, Probe: h.Probe})
	}
	for _, w := range v.Warnings {
		r.Warnings = append(r.Warnings, warningPB(w))
	}
	return r
}

func summaryPB(v *xenha.PoolView) *pb.PoolSummary {
	return &pb.PoolSummary{
		Name: v.Name, PoolUuid: v.UUID, Members: v.Members, Policy: policies[v.Policy],
		Controller: controllers[v.Controller], Observed: v.Observed, Epoch: v.Epoch,
		Master: masterPB(v.Master), Source: v.Source,
	}
}

func eventPB(e xenha.Event) *pb.PoolEvent {
	out := &pb.PoolEvent{
		Sequence: e.Seq, Incarnation: e.Incarnation, Time: timestamppb.New(e.Time),
		Pool: e.Pool, PoolUuid: e.PoolUUID, Type: eventTypes[e.Type], Epoch: e.Epoch,
		HostUuid: e.Host, PreviousHostUuid: e.Previous, Cause: causes[e.Cause], Message: e.Message,
	}
	if e.Type == xenha.EventControllerChanged {
		out.Controller = controllers[e.Controller]
	}
	if e.Warning != nil {
		out.Warning = warningPB(*e.Warning)
	}
	return out
}

var outcomes = map[fencing.Outcome]pb.FenceOutcome{
	fencing.Fenced:          pb.FenceOutcome_FENCE_OUTCOME_FENCED,
	fencing.Deferred:        pb.FenceOutcome_FENCE_OUTCOME_DEFERRED_TO_XENHA,
	fencing.RefusedAlive:    pb.FenceOutcome_FENCE_OUTCOME_REFUSED_HOST_ALIVE,
	fencing.RefusedEvidence: pb.FenceOutcome_FENCE_OUTCOME_REFUSED_INSUFFICIENT_EVIDENCE,
	fencing.Failed:          pb.FenceOutcome_FENCE_OUTCOME_FAILED,
}

func traceStepPB(s fencing.Step) *pb.TraceStep {
	return &pb.TraceStep{Time: timestamppb.New(s.Time), Step: s.Step, HostUuid: s.Host, Detail: s.Detail, Ok: s.OK}
}

func fenceResultPB(r *fencing.Result) *pb.FenceHostResponse {
	out := &pb.FenceHostResponse{
		PoolUuid: r.PoolUUID, HostUuid: r.HostUUID, Outcome: outcomes[r.Outcome], Method: r.Method,
		XenhaProgress: &pb.XenHAProgress{OutsideLiveset: r.OutsideLiveset, VmsHalted: r.VMsHalted},
		Epoch:         r.Epoch, DryRun: r.DryRun, Incomplete: r.Incomplete,
	}
	for _, v := range r.VMResets {
		out.VmResets = append(out.VmResets, &pb.VMReset{VmUuid: v.UUID, Name: v.Name, Reset_: v.Reset, Error: v.Error})
	}
	for _, s := range r.Trace {
		out.Trace = append(out.Trace, traceStepPB(s))
	}
	return out
}

var electedBy = map[elect.ElectedBy]pb.ElectedBy{
	elect.ByXenHA:      pb.ElectedBy_ELECTED_BY_XENHA,
	elect.ByCloudStack: pb.ElectedBy_ELECTED_BY_CLOUDSTACK,
	elect.ByNone:       pb.ElectedBy_ELECTED_BY_NONE,
}

func electResultPB(r *elect.Result) *pb.ElectMasterResponse {
	out := &pb.ElectMasterResponse{PoolUuid: r.PoolUUID, Master: masterPB(r.Master), ElectedBy: electedBy[r.ElectedBy],
		Epoch: r.Epoch, DryRun: r.DryRun}
	for _, s := range r.Trace {
		out.Trace = append(out.Trace, traceStepPB(s))
	}
	return out
}
