package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/journal/journaltest"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// serveWith serves svc over an in-memory connection.
func serveWith(t *testing.T, m *xenha.Manager, svc *Service, opts Options) (*Server, *fixture) {
	t.Helper()
	srv := New(svc, opts)
	conn := dialServer(t, srv)
	return srv, &fixture{t: t, m: m, conn: conn, c: pb.NewXenHAServiceClient(conn)}
}

func openJournal(t *testing.T) *journal.Bolt {
	t.Helper()
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func newManager(t *testing.T, j journal.Store) *xenha.Manager {
	m := xenha.NewManager(xenha.Options{XAPI: xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond}, Epochs: j})
	t.Cleanup(m.Close)
	return m
}

func TestAJournalThatCannotBeReadIsUnavailableNotInternal(t *testing.T) {
	j := openJournal(t)
	m := newManager(t, j)
	_, f := serveWith(t, m, NewService(m, nil, WithJournal(journaltest.FailReads{Store: j})), Options{})
	f.withSim(3)
	_, err := f.c.Journal(f.ctx(), &pb.JournalRequest{Pool: "sim"})
	st := wantCode(t, err, codes.Unavailable)
	reason := ""
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			reason = ei.GetReason()
		}
	}
	if reason != "JOURNAL_UNREADABLE" {
		t.Fatalf("reason %q in %v", reason, st.Details())
	}
}

func TestBackupJournalStreamsAConsistentCopy(t *testing.T) {
	j := openJournal(t)
	for i := range 500 {
		if _, err := j.Append(journal.Entry{Pool: "sim", Kind: "fence", Step: "witness", Detail: string(bytes.Repeat([]byte{'a' + byte(i%26)}, 300))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.AdvanceEpoch("sim", "cloudstack/host-1", 6); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, j)
	_, f := serveWith(t, m, NewService(m, nil, WithJournal(j)), Options{})
	s, err := f.c.BackupJournal(f.ctx(), &pb.BackupJournalRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	var size int64
	var sum []byte
	for n := 0; ; n++ {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			size = r.GetSize()
		}
		data = append(data, r.GetData()...)
		if r.GetSha256() != nil {
			sum = r.GetSha256()
		}
	}
	want := sha256.Sum256(data)
	if int64(len(data)) != size || !bytes.Equal(sum, want[:]) || size < 100<<10 {
		t.Fatalf("copy of %d bytes, announced %d, sha256 %x want %x", len(data), size, sum, want)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	os.WriteFile(path, data, 0o600)
	got, err := journal.Check(path)
	if err != nil || got.Pools["sim"].Entries != 500 || got.Pools["sim"].Epoch != 7 {
		t.Fatalf("the copy: %+v %v", got, err)
	}

	// A journal that cannot be copied this way (a shared one), or none.
	_, f2 := serveWith(t, m, NewService(m, nil, WithJournal(journaltest.FailReads{Store: j})), Options{})
	if s, err := f2.c.BackupJournal(f2.ctx(), &pb.BackupJournalRequest{}); err == nil {
		_, err = s.Recv()
		wantCode(t, err, codes.FailedPrecondition)
	}
	_, f3 := serveWith(t, m, NewService(m, nil), Options{})
	if s, err := f3.c.BackupJournal(f3.ctx(), &pb.BackupJournalRequest{}); err == nil {
		_, err = s.Recv()
		wantCode(t, err, codes.Unimplemented)
	}
}

// failingJournal reports its health as a journal.Bolt does.
type failingJournal struct {
	journal.Store
	watch func(error)
}

func (f *failingJournal) Health() error          { return nil }
func (f *failingJournal) OnHealth(w func(error)) { f.watch = w }
func (f *failingJournal) Snapshot() (*os.File, int64, error) {
	return nil, 0, errors.New("page 6: unreadable")
}

func TestTheBridgeIsNotReadyWhileItsJournalCannotBeRead(t *testing.T) {
	j := &failingJournal{Store: openJournal(t)}
	m := newManager(t, j)
	_, f := serveWith(t, m, NewService(m, nil, WithJournal(j)), Options{})
	health := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		r, err := healthpb.NewHealthClient(f.conn).Check(f.ctx(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	api := pb.XenHAService_ServiceDesc.ServiceName
	if health("") != healthpb.HealthCheckResponse_SERVING || health(api) != healthpb.HealthCheckResponse_SERVING {
		t.Fatal("not serving at start")
	}
	if j.watch == nil {
		t.Fatal("the server does not watch the journal's health")
	}
	j.watch(errors.New("journal: page 6: invalid page type"))
	if health("") != healthpb.HealthCheckResponse_NOT_SERVING || health(api) != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatal("still serving with an unreadable journal")
	}
	// The backup of an unreadable journal says why it cannot be made.
	if s, err := f.c.BackupJournal(f.ctx(), &pb.BackupJournalRequest{}); err == nil {
		_, err = s.Recv()
		wantCode(t, err, codes.Unavailable)
	}
	j.watch(nil)
	if health("") != healthpb.HealthCheckResponse_SERVING || health(api) != healthpb.HealthCheckResponse_SERVING {
		t.Fatal("not serving again once the journal reads")
	}
}
