package server

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/membership"
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
	switch {
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
