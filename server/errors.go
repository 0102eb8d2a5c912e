package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/membership"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// toStatus maps a domain error to a gRPC status, in one place.
// Cancellation and deadlines pass through; anything unknown is Internal
// with a generic message (the details go to the log, not the caller).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var ia *xenha.InvalidArgumentError
	var refused *elect.RefusedError
	var mrefused *membership.RefusedError
	var notHolder *lease.NotHolderError
	var xrefused *membership.XAPIError
	switch {
	case errors.As(err, &xrefused):
		return xapiRefusalStatus(xrefused)
	case errors.As(err, &notHolder):
		// Another bridge is the pool's captain: retrying here cannot
		// succeed, sending the call to the holder can.
		return withDetails(codes.FailedPrecondition, err.Error(), &errdetails.ErrorInfo{Reason: "NOT_LEASE_HOLDER", Domain: "xenha-bridge",
			Metadata: map[string]string{"pool_uuid": notHolder.Pool, "holder": notHolder.Holder, "holder_address": notHolder.Address}})
	case errors.Is(err, lease.ErrNameConflict):
		// A configuration mistake: journal and epoch would split between
		// bridges, so none acts here until the names agree.
		return withDetails(codes.FailedPrecondition, err.Error(), &errdetails.ErrorInfo{Reason: "POOL_NAME_CONFLICT", Domain: "xenha-bridge"})
	case errors.Is(err, elect.ErrJournalUnreadable):
		return withDetails(codes.Unavailable, err.Error(), &errdetails.ErrorInfo{Reason: "JOURNAL_UNREADABLE", Domain: "xenha-bridge"})
	case errors.Is(err, lease.ErrLost), errors.Is(err, lease.ErrUnknown):
		// The store cannot say who is captain now: retry shortly (here
		// or at another bridge); nobody acts meanwhile.
		return withDetails(codes.Unavailable, err.Error(), &errdetails.ErrorInfo{Reason: "LEASE_UNCERTAIN", Domain: "xenha-bridge"})
	case errors.As(err, &mrefused):
		return withDetails(codes.FailedPrecondition, err.Error(), &errdetails.PreconditionFailure{
			Violations: []*errdetails.PreconditionFailure_Violation{{Type: "MEMBERSHIP", Subject: "pool", Description: mrefused.Reason}}})
	case errors.Is(err, membership.ErrUnreachable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.As(err, &refused):
		v := []*errdetails.PreconditionFailure_Violation{{Type: "ELECTION", Subject: "pool", Description: refused.Reason}}
		if refused.Result != nil {
			for _, st := range refused.Result.Trace {
				v = append(v, &errdetails.PreconditionFailure_Violation{Type: "TRACE:" + st.Step, Subject: st.Host, Description: st.Detail})
			}
		}
		return withDetails(codes.FailedPrecondition, err.Error(), &errdetails.PreconditionFailure{Violations: v})
	case errors.Is(err, elect.ErrNotConverged):
		return withDetails(codes.Unavailable, err.Error(), &errdetails.ErrorInfo{Reason: "XENHA_NOT_CONVERGED", Domain: "xenha-bridge"})
	case errors.As(err, &ia):
		return withDetails(codes.InvalidArgument, err.Error(), &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: ia.Field, Description: ia.Reason}},
		})
	case errors.Is(err, fencing.ErrUnknownHost):
		return withDetails(codes.NotFound, err.Error(), &errdetails.ResourceInfo{ResourceType: "host", Description: err.Error()})
	case errors.Is(err, fencing.ErrStaleEpoch):
		return withDetails(codes.Aborted, err.Error(), &errdetails.ErrorInfo{Reason: "STALE_EPOCH", Domain: "xenha-bridge",
			Metadata: map[string]string{"hint": "read HAMode again and decide on the current state"}})
	case errors.Is(err, fencing.ErrNoController):
		return withDetails(codes.FailedPrecondition, err.Error(), &errdetails.PreconditionFailure{
			Violations: []*errdetails.PreconditionFailure_Violation{{Type: "CONTROLLER", Subject: "pool", Description: err.Error()}}})
	case errors.Is(err, xenha.ErrUnknownPool):
		return withDetails(codes.NotFound, err.Error(), &errdetails.ResourceInfo{ResourceType: "pool", Description: err.Error()})
	case errors.Is(err, xenha.ErrPoolExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, xenha.ErrDropsMaster):
		return withDetails(codes.FailedPrecondition, err.Error(), &errdetails.PreconditionFailure{
			Violations: []*errdetails.PreconditionFailure_Violation{{Type: "MASTER", Subject: "members", Description: err.Error()}}})
	case errors.Is(err, xenha.ErrCompacted), errors.Is(err, xenha.ErrRestarted):
		return withDetails(codes.OutOfRange, err.Error(), &errdetails.ErrorInfo{Reason: "RESUME_POINT_GONE", Domain: "xenha-bridge",
			Metadata: map[string]string{"hint": "read HAMode for the current state, then stream from now (after_sequence 0)"}})
	case errors.Is(err, xenha.ErrFutureSequence):
		return withDetails(codes.InvalidArgument, err.Error(), &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "after_sequence", Description: err.Error()}},
		})
	case errors.Is(err, xenha.ErrSlowConsumer):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, xenha.ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case xapi.IsUnreachable(err), errors.Is(err, xapi.ErrMasterLost), errors.Is(err, xapi.ErrClosed):
		// No XAPI answer (the error names the endpoint, never credentials).
		return withDetails(codes.Unavailable, err.Error(), &errdetails.ErrorInfo{Reason: "XAPI_UNREACHABLE", Domain: "xenha-bridge"})
	}
	if e, ok := xapi.AsError(err); ok {
		// A XAPI refusal from a call that did not say which: still its code.
		return xapiRefusalStatus(&membership.XAPIError{Err: e})
	}
	return status.Error(codes.Internal, "internal error")
}

func withDetails(c codes.Code, msg string, details ...protoadapt.MessageV1) error {
	st, err := status.New(c, msg).WithDetails(details...)
	if err != nil {
		return status.Error(c, msg)
	}
	return st.Err()
}

func invalidArgument(field, reason string) error {
	return toStatus(&xenha.InvalidArgumentError{Field: field, Reason: reason})
}

// xapiRefusal is what one XAPI error code means to a caller of a
// mutating call: the gRPC code and what to do about it.
type xapiRefusal struct {
	code codes.Code
	why  string
}

// xapiRefusals is the one table of the XAPI refusals the bridge can meet
// on a mutating call (pool.join, pool.eject, pool.enable_ha,
// pool.disable_ha), each with its gRPC code. A code not listed is still
// reported with its name and host (FAILED_PRECONDITION: XAPI understood
// the call and said no), never as an internal error.
var xapiRefusals = map[string]xapiRefusal{
	// The pool's state does not allow the change (FAILED_PRECONDITION):
	// something must change in the pool first.
	xapi.CodeHostOffline:                         {codes.FailedPrecondition, "a host is not live, or the master cannot reach it (xapi keeps a stopped host live for up to 600 s): bring it back or eject it first"},
	xapi.CodeHAIsEnabled:                         {codes.FailedPrecondition, "XenHA is on in the pool: disable it first (DisableXenHA), then enable it again"},
	xapi.CodeHANotEnabled:                        {codes.FailedPrecondition, "XenHA is not on in the pool: nothing to disable"},
	xapi.CodeSRNoPBDs:                            {codes.FailedPrecondition, "the heartbeat SR is not plugged on every host: plug its PBD on each host, or choose another SR"},
	xapi.CodeCannotCreateStateFile:               {codes.FailedPrecondition, "no SR can hold XenHA's statefile: it needs a shared SR (356 MB free) plugged on every host"},
	xapi.CodeHAHostCannotAccessStatefile:         {codes.FailedPrecondition, "a host cannot reach the statefile SR: fix its storage path first"},
	"HA_HOST_CANNOT_SEE_PEERS":                   {codes.FailedPrecondition, "a host cannot see its peers on the network: fix the network first"},
	"HA_TOO_FEW_HOSTS":                           {codes.FailedPrecondition, "too few hosts for XenHA"},
	"HA_NOT_INSTALLED":                           {codes.FailedPrecondition, "XenHA (xhad) is not installed on a host"},
	"HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED":      {codes.FailedPrecondition, "a protected VM uses an SR that is not shared"},
	"HA_CONSTRAINT_VIOLATION_NETWORK_NOT_SHARED": {codes.FailedPrecondition, "a protected VM uses a network that is not shared"},
	"HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN":     {codes.FailedPrecondition, "the change would break XenHA's failover plan"},
	"LICENCE_RESTRICTION":                        {codes.FailedPrecondition, "the pool's licence does not allow it"},
	"LICENSE_RESTRICTION":                        {codes.FailedPrecondition, "the pool's licence does not allow it"},
	"REQUIRED_PIF_IS_UNPLUGGED":                  {codes.FailedPrecondition, "a host's management or heartbeat interface is unplugged: plug it first"},
	xapi.CodeHostNotDisabled:                     {codes.FailedPrecondition, "the host must be disabled first"},
	"HOST_IN_USE":                                {codes.FailedPrecondition, "the host still runs VMs: migrate them first"},
	"OPERATION_NOT_ALLOWED":                      {codes.FailedPrecondition, "XAPI does not allow this operation in the pool's current state"},
	xapi.CodeSessionAuthenticationFailed:         {codes.FailedPrecondition, "the pool master refused the pool's credentials: check the pool's credentials in the bridge's configuration"},
	// pool.join's preconditions (the joining host is not standalone, or
	// differs from the pool).
	xapi.CodeJoiningHostCannotContainSharedSRs:             {codes.FailedPrecondition, "the joining host holds shared SRs: forget them on it first"},
	"JOINING_HOST_CANNOT_HAVE_RUNNING_VMS":                 {codes.FailedPrecondition, "the joining host runs VMs: shut them down or move them first"},
	"JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS":         {codes.FailedPrecondition, "the joining host is the master of other hosts: it is not standalone"},
	"JOINING_HOST_CANNOT_HAVE_VMS_WITH_CURRENT_OPERATIONS": {codes.FailedPrecondition, "the joining host has VMs with operations under way: wait for them"},
	"POOL_JOINING_HOST_MUST_HAVE_SAME_PRODUCT_VERSION":     {codes.FailedPrecondition, "the joining host runs another product version than the pool: update it first"},
	"POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION":         {codes.FailedPrecondition, "the joining host speaks another API version than the pool: update it first"},
	"POOL_JOINING_HOST_MUST_HAVE_SAME_DB_SCHEMA":           {codes.FailedPrecondition, "the joining host has another database schema than the pool: update it first"},
	"POOL_JOINING_HOST_MUST_HAVE_PHYSICAL_MANAGEMENT_NIC":  {codes.FailedPrecondition, "the joining host's management interface must be a physical NIC"},
	"POOL_JOINING_HOST_MUST_ONLY_HAVE_PHYSICAL_PIFS":       {codes.FailedPrecondition, "the joining host has bonds, VLANs or tunnels: remove them first"},
	"POOL_JOINING_HOST_MANAGEMENT_VLAN_DOES_NOT_MATCH":     {codes.FailedPrecondition, "the joining host's management VLAN differs from the pool's"},
	"POOL_JOINING_HOST_HAS_BONDS":                          {codes.FailedPrecondition, "the joining host has bonds: remove them first"},
	"POOL_JOINING_HOST_HAS_TUNNELS":                        {codes.FailedPrecondition, "the joining host has tunnels: remove them first"},
	"POOL_JOINING_HOST_HAS_NETWORK_SRIOVS":                 {codes.FailedPrecondition, "the joining host has SR-IOV networks: remove them first"},
	"POOL_JOINING_HOST_CA_CERTIFICATES_CONFLICT":           {codes.FailedPrecondition, "the joining host's CA certificates conflict with the pool's"},
	"POOL_JOINING_HOST_TLS_VERIFICATION_MISMATCH":          {codes.FailedPrecondition, "TLS verification is on in one of the pool and the joining host, off in the other"},
	"POOL_JOINING_EXTERNAL_AUTH_MISMATCH":                  {codes.FailedPrecondition, "the joining host's external authentication differs from the pool's"},
	"POOL_HOSTS_NOT_HOMOGENEOUS":                           {codes.FailedPrecondition, "the joining host's hardware is not like the pool's (CPU features)"},
	"POOL_HOSTS_NOT_COMPATIBLE":                            {codes.FailedPrecondition, "the joining host is not compatible with the pool"},
	// A request the bridge built that XAPI rejects (INVALID_ARGUMENT).
	xapi.CodeInvalidValue: {codes.InvalidArgument, "XAPI rejected a value of the request (e.g. XenHA's timeout): correct it"},
	"FIELD_TYPE_ERROR":    {codes.InvalidArgument, "XAPI rejected the type of a field of the request"},
	"UUID_INVALID":        {codes.NotFound, "XAPI does not know the object named"},
	// The object changed under the call (ABORTED): read again, decide again.
	xapi.CodeHandleInvalid:               {codes.Aborted, "an object of the call is gone (the pool changed meanwhile): read the pool again and decide again"},
	"OTHER_OPERATION_IN_PROGRESS":        {codes.Aborted, "another operation is under way on the pool or host: retry when it is done"},
	"HA_ENABLE_IN_PROGRESS":              {codes.Aborted, "XenHA is being enabled already: wait for it"},
	"HA_DISABLE_IN_PROGRESS":             {codes.Aborted, "XenHA is being disabled already: wait for it"},
	"HA_ABORT_NEW_MASTER":                {codes.Aborted, "a new master took over during the change: read the pool again"},
	"HA_HEARTBEAT_DAEMON_STARTUP_FAILED": {codes.Aborted, "XenHA's daemon did not start on a host: the change was undone; see the host's xensource.log"},
	"HA_FAILED_TO_FORM_LIVESET":          {codes.Aborted, "XenHA could not form its liveset: the change was undone; check the network and statefile"},
	// The host or its master does not answer now (UNAVAILABLE): retry.
	"JOINING_HOST_CONNECTION_FAILED": {codes.Unavailable, "the joining host cannot reach the pool master"},
	"JOINING_HOST_SERVICE_FAILED":    {codes.Unavailable, "the joining host's services failed during the join"},
	xapi.CodeHostIsSlave:             {codes.Unavailable, "the host is no longer the master: retry (the bridge follows the new master)"},
	xapi.CodeHostStillBooting:        {codes.Unavailable, "the host is still booting, or its master is lost: retry, or elect a master first"},
	xapi.CodeHostHasNoManagementIP:   {codes.Unavailable, "the host has no management IP (its master is lost): elect a master first"},
	xapi.CodeSessionInvalid:          {codes.Unavailable, "the XAPI session expired: retry"},
	// The pool's account may not do it (PERMISSION_DENIED).
	"RBAC_PERMISSION_DENIED": {codes.PermissionDenied, "the pool's XAPI account lacks the role for this call (pool-admin or pool-operator)"},
	"PERMISSION_DENIED":      {codes.PermissionDenied, "the pool's XAPI account may not make this call"},
	// The host's XAPI lacks the call (UNIMPLEMENTED).
	xapi.CodeMessageMethodUnknown:      {codes.Unimplemented, "the host's XAPI does not know this call (version too old?)"},
	"MESSAGE_PARAMETER_COUNT_MISMATCH": {codes.Unimplemented, "the host's XAPI expects other parameters for this call (another XAPI version?)"},
}

// xapiRefusalStatus renders a refused XAPI call: the code, the host and
// what to do, with an ErrorInfo (domain "xapi", reason = XAPI's code) for
// programs.
func xapiRefusalStatus(e *membership.XAPIError) error {
	r, ok := xapiRefusals[e.Err.Code]
	if !ok {
		r = xapiRefusal{codes.FailedPrecondition, "XAPI refused the call"}
	}
	call, host := e.Call, e.Host
	if call == "" {
		call = "a XAPI call"
	}
	if host == "" {
		host = "unknown"
	}
	msg := fmt.Sprintf("%s refused by XAPI with %s on host %s: %s", call, e.Err.Code, host, r.why)
	if p := strings.TrimPrefix(e.Err.Error(), "xapi: "+e.Err.Code); p != "" {
		msg += " (xapi: " + e.Err.Code + " " + strings.TrimPrefix(p, " ") + ")"
	}
	md := map[string]string{"xapi_code": e.Err.Code, "call": call, "host": host}
	if e.HostUUID != "" {
		md["host_uuid"] = e.HostUUID
	}
	return withDetails(r.code, msg, &errdetails.ErrorInfo{Reason: e.Err.Code, Domain: "xapi", Metadata: md})
}
