package server

import (
	"crypto/sha256"
	"errors"
	"io"
	"os"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
)

// journalUnreadable is the answer of a call that needs a journal the
// bridge cannot read: UNAVAILABLE, for the journal may read again (the
// bridge is NOT_SERVING meanwhile).
func journalUnreadable() error {
	return withDetails(codes.Unavailable, "the journal cannot be read (the bridge reports NOT_SERVING until it can; see its log)",
		&errdetails.ErrorInfo{Reason: "JOURNAL_UNREADABLE", Domain: "xenha-bridge"})
}

// snapshotter is a journal that can copy itself consistently while it is
// in use: journal.Bolt.
type snapshotter interface {
	Snapshot() (*os.File, int64, error)
}

// healthReporter is a journal that watches its own reads: journal.Bolt.
type healthReporter interface {
	Health() error
	OnHealth(func(error))
}

const backupChunk = 256 << 10

// BackupJournal streams a consistent copy of the embedded journal.
func (s *Service) BackupJournal(_ *pb.BackupJournalRequest, stream pb.XenHAService_BackupJournalServer) error {
	if s.journal == nil {
		return status.Error(codes.Unimplemented, "this bridge keeps no journal")
	}
	snap, ok := s.journal.(snapshotter)
	if !ok {
		return status.Error(codes.FailedPrecondition,
			"this bridge's journal is shared in MySQL (journal.store mysql): back up the database, not a bridge")
	}
	f, size, err := snap.Snapshot()
	if err != nil {
		s.log.Error("journal backup failed", "error", err)
		return journalUnreadable()
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, backupChunk)
	var sent int64
	for first := true; ; first = false {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 || first {
			h.Write(buf[:n])
			r := &pb.BackupJournalResponse{Data: buf[:n]}
			if first {
				r.Size = size
			}
			if err := stream.Send(r); err != nil {
				return err
			}
			sent += int64(n)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			s.log.Error("journal backup failed", "error", rerr)
			return journalUnreadable()
		}
	}
	if sent != size {
		s.log.Error("journal backup failed", "error", "the copy changed size", "size", size, "sent", sent)
		return journalUnreadable()
	}
	if err := stream.Send(&pb.BackupJournalResponse{Sha256: h.Sum(nil)}); err != nil {
		return err
	}
	s.log.Info("journal backup sent", "bytes", size)
	return nil
}

// watchJournal makes the server's health follow the journal's: while it
// cannot be read, the whole server and the API report NOT_SERVING.
func (s *Server) watchJournal(svc *Service) {
	hr, ok := svc.journal.(healthReporter)
	if !ok {
		return
	}
	hr.OnHealth(func(err error) {
		if err != nil {
			s.log.Error("the journal cannot be read: the bridge reports NOT_SERVING until it can", "error", err)
		} else {
			s.log.Info("the journal reads again: the bridge reports SERVING")
		}
		s.SetReady(err == nil)
	})
	if err := hr.Health(); err != nil {
		s.log.Error("the journal cannot be read: the bridge reports NOT_SERVING until it can", "error", err)
		s.SetReady(false)
	}
}

// SetReady sets what gRPC health reports for the whole server ("") and for
// the API: SERVING, or NOT_SERVING so that callers send their work
// elsewhere. After Stop it changes nothing.
func (s *Server) SetReady(ready bool) {
	st := healthpb.HealthCheckResponse_SERVING
	if !ready {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(pb.XenHAService_ServiceDesc.ServiceName, st)
}
