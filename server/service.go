// Package server is the gRPC surface of xenha-bridge: it validates
// requests, asks the pool manager, and maps answers and errors to the API.
package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloudstack-xenha/xenha-bridge/config"
	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/membership"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// Service implements XenHAService. ElectMaster and FenceHost answer
// UNIMPLEMENTED (from the embedded type) until their issues land.
type Service struct {
	pb.UnimplementedXenHAServiceServer
	pools   *xenha.Manager
	log     hclog.Logger
	fencer  *fencing.Fencer
	devices DeviceFactory
	elector *elect.Elector
	journal journal.Store
	members *membership.Service
	leases  Leases
	bmcs    PoolBMCs
}

var _ pb.XenHAServiceServer = (*Service)(nil)

// DeviceFactory builds a BMC client from what CloudStack passes in a
// FenceHost request (its out-of-band management settings).
type DeviceFactory func(driver, address, username, password string) (fencing.Device, error)

// Option configures a Service.
type Option func(*Service)

// WithFencing enables FenceHost.
func WithFencing(f *fencing.Fencer, devices DeviceFactory) Option {
	return func(s *Service) { s.fencer, s.devices = f, devices }
}

// HostDevice is one pool member's BMC, as AttachPool gives it.
type HostDevice struct {
	Host   string // UUID, name or management address
	Device fencing.Device
}

// PoolBMCs keeps the BMCs a pool was attached with (AttachPool's bmcs:
// CloudStack's out-of-band management settings), for the election and the
// fencer to find as they find the configuration's.
type PoolBMCs interface {
	// Build makes a BMC client; plain http only when allowPlainHTTP.
	Build(driver, address, username, password string, allowPlainHTTP bool) (fencing.Device, error)
	// Set replaces the BMCs attached with pool.
	Set(pool string, bmcs []HostDevice)
}

// WithPoolBMCs lets AttachPool carry the members' BMCs.
func WithPoolBMCs(b PoolBMCs) Option { return func(s *Service) { s.bmcs = b } }

// WithElection enables ElectMaster.
func WithElection(e *elect.Elector) Option { return func(s *Service) { s.elector = e } }

// WithMembership enables ClassifyHost, JoinHost, EjectHost, EnableXenHA
// and DisableXenHA.
func WithMembership(m *membership.Service) Option { return func(s *Service) { s.members = m } }

// WithJournal enables the Journal RPC.
func WithJournal(j journal.Store) Option { return func(s *Service) { s.journal = j } }

// Leases tells what this bridge knows of a pool's lease; lease.Keeper is one.
type Leases interface {
	Status(poolUUID string) lease.Status
}

// WithLeases reports each pool's lease in HAMode (several management
// servers).
func WithLeases(l Leases) Option { return func(s *Service) { s.leases = l } }

// NewService serves the manager's pools.
func NewService(pools *xenha.Manager, log hclog.Logger, opts ...Option) *Service {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Service{pools: pools, log: log}
	for _, o := range opts {
		o(s)
	}
	return s
}

const maxPoolID = 128

func checkPoolID(field, id string, required bool) error {
	switch {
	case id == "" && required:
		return invalidArgument(field, "required: a pool name or XenServer pool UUID")
	case len(id) > maxPoolID:
		return invalidArgument(field, fmt.Sprintf("at most %d characters", maxPoolID))
	}
	return nil
}

// HAMode answers from the cache; it never calls XAPI.
func (s *Service) HAMode(ctx context.Context, req *pb.HAModeRequest) (*pb.HAModeResponse, error) {
	if err := checkPoolID("pool", req.GetPool(), true); err != nil {
		return nil, err
	}
	// The sequence first: events after it may already show in the view
	// (a reader applies them twice, harmlessly) but none can be missed.
	seq := s.pools.Hub().Newest()
	v, err := s.pools.Pool(req.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	r := haModePB(v)
	r.EventSequence, r.EventIncarnation = seq, s.pools.Hub().Incarnation()
	if s.leases != nil && v.UUID != "" {
		r.Lease = leasePB(s.leases.Status(v.UUID))
	}
	return r, nil
}

// PoolEvents streams events until the client goes away, the consumer
// falls behind (RESOURCE_EXHAUSTED, after delivering what it was given),
// or the server stops.
func (s *Service) PoolEvents(req *pb.PoolEventsRequest, stream pb.XenHAService_PoolEventsServer) error {
	if err := checkPoolID("pool", req.GetPool(), false); err != nil {
		return err
	}
	if len(req.GetIncarnation()) > 64 {
		return invalidArgument("incarnation", "at most 64 characters")
	}
	sub, err := s.pools.Subscribe(req.GetPool(), req.GetAfterSequence(), req.GetIncarnation())
	if err != nil {
		return toStatus(err)
	}
	defer sub.Close()
	last := req.GetAfterSequence()
	send := func(e xenha.Event) error {
		last = e.Seq
		return stream.Send(&pb.PoolEventsResponse{Event: eventPB(e)})
	}
	for {
		select {
		case e := <-sub.C:
			if err := send(e); err != nil {
				return err
			}
		case <-sub.Done():
			for len(sub.C) > 0 { // deliver what was queued before the cut
				if err := send(<-sub.C); err != nil {
					return err
				}
			}
			if errors.Is(sub.Err(), xenha.ErrSlowConsumer) {
				return status.Errorf(codes.ResourceExhausted,
					"consumer too slow: the stream was cut off; resume with after_sequence %d", last)
			}
			return status.Error(codes.Unavailable, "the event stream was closed")
		case <-stream.Context().Done():
			return toStatus(stream.Context().Err())
		}
	}
}

// AttachPool validates the request and hands the pool to the manager.
func (s *Service) AttachPool(ctx context.Context, req *pb.AttachPoolRequest) (*pb.AttachPoolResponse, error) {
	policy, ok := policyFromPB(req.GetPolicy())
	if !ok {
		return nil, invalidArgument("policy", fmt.Sprintf("unknown policy %d", req.GetPolicy()))
	}
	var storage time.Duration
	if d := req.GetStorageTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 || d.AsDuration() > 24*time.Hour {
			return nil, invalidArgument("storage_timeout", "want a duration between 0 and 24h")
		}
		storage = d.AsDuration()
	}
	if len(req.GetMembers()) > 64 {
		return nil, invalidArgument("members", "at most 64 members (XenServer's pool limit)")
	}
	bmcs, err := s.attachedBMCs(req)
	if err != nil {
		return nil, err
	}
	pin := ""
	if t := req.GetTls(); t != nil {
		pin = strings.TrimSpace(t.GetPinSha256())
	}
	// The configuration's validator, not a second one: a pool attached at
	// run time follows the rules of a pool in the file (its messages never
	// repeat a URL's credentials, query or fragment).
	cp := config.NewPool(req.GetName(), req.GetMembers(), req.GetUsername(), req.GetPassword())
	cp.Policy = string(policy)
	if storage > 0 {
		cp.StorageTimeout = storage
	}
	cp.TLS.AllowPlainHTTP = req.GetTls().GetAllowPlainHttp()
	cp.TLS.PinSHA256 = pin
	if err := cp.Validate(); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return nil, invalidArgument(ce.Field, ce.Msg)
		}
		return nil, invalidArgument("", err.Error())
	}
	spec := xenha.PoolSpec{
		Name:           req.GetName(),
		Members:        req.GetMembers(),
		Credentials:    xapi.Credentials{Username: req.GetUsername(), Password: xapi.Secret(req.GetPassword())},
		Policy:         policy,
		StorageTimeout: storage,
		Source:         "api",
	}
	if t := req.GetTls(); t != nil {
		spec.TLS = xapi.TLSOptions{PinSHA256: pin, AllowPlainHTTP: t.GetAllowPlainHttp()}
		if t.GetCaPem() != "" {
			spec.TLS.CAPEM = []byte(t.GetCaPem())
		}
	}
	v, created, err := s.pools.Attach(ctx, spec)
	if err != nil {
		return nil, toStatus(err)
	}
	// A pool from the configuration file keeps the file's BMCs: the same
	// spec attached again is a no-op for it, its BMCs included.
	if s.bmcs != nil && v.Source == "api" {
		s.bmcs.Set(req.GetName(), bmcs)
	}
	return &pb.AttachPoolResponse{Pool: summaryPB(v), Created: created}, nil
}

// attachedBMCs checks and builds AttachPool's bmcs. Errors name the field,
// never a password.
func (s *Service) attachedBMCs(req *pb.AttachPoolRequest) ([]HostDevice, error) {
	if len(req.GetBmcs()) == 0 {
		return nil, nil
	}
	if s.bmcs == nil {
		return nil, invalidArgument("bmcs", "this bridge has no BMC drivers")
	}
	if len(req.GetBmcs()) > 64 {
		return nil, invalidArgument("bmcs", "at most 64 (one per member)")
	}
	out := make([]HostDevice, 0, len(req.GetBmcs()))
	for i, b := range req.GetBmcs() {
		field := fmt.Sprintf("bmcs[%d]", i)
		if b.GetHost() == "" || len(b.GetHost()) > 128 {
			return nil, invalidArgument(field+".host", "required: the member's UUID, name or address (at most 128 characters)")
		}
		m := b.GetBmc()
		if m.GetDriver() == "" || m.GetAddress() == "" {
			return nil, invalidArgument(field+".bmc", "driver and address are required")
		}
		d, err := s.bmcs.Build(m.GetDriver(), m.GetAddress(), m.GetUsername(), m.GetPassword(), req.GetTls().GetAllowPlainHttp())
		if err != nil {
			return nil, invalidArgument(field+".bmc", err.Error())
		}
		out = append(out, HostDevice{Host: b.GetHost(), Device: d})
	}
	return out, nil
}

// DetachPool stops watching a pool.
func (s *Service) DetachPool(ctx context.Context, req *pb.DetachPoolRequest) (*pb.DetachPoolResponse, error) {
	if err := checkPoolID("pool", req.GetPool(), true); err != nil {
		return nil, err
	}
	name := req.GetPool()
	if v, err := s.pools.Pool(name); err == nil {
		name = v.Name // the BMCs are kept by name; the request may give the UUID
	}
	if err := s.pools.Detach(req.GetPool()); err != nil {
		return nil, toStatus(err)
	}
	if s.bmcs != nil {
		s.bmcs.Set(name, nil)
	}
	return &pb.DetachPoolResponse{}, nil
}

// ListPools lists every attached pool.
func (s *Service) ListPools(ctx context.Context, req *pb.ListPoolsRequest) (*pb.ListPoolsResponse, error) {
	out := &pb.ListPoolsResponse{}
	for _, v := range s.pools.Pools() {
		out.Pools = append(out.Pools, summaryPB(v))
	}
	return out, nil
}

// ElectMaster makes sure the pool has one live master.
func (s *Service) ElectMaster(ctx context.Context, req *pb.ElectMasterRequest) (*pb.ElectMasterResponse, error) {
	if err := checkPoolID("pool", req.GetPool(), true); err != nil {
		return nil, err
	}
	if len(req.GetRequestId()) > 128 || len(req.GetReason()) > 1024 || len(req.GetExcludeHosts()) > 64 {
		return nil, invalidArgument("request_id", "request_id at most 128 characters, reason at most 1024, at most 64 excluded hosts")
	}
	h, err := s.pools.Handle(req.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	if s.elector == nil {
		return nil, status.Error(codes.Unimplemented, "ElectMaster is not enabled in this bridge")
	}
	res, err := s.elector.Elect(ctx, elect.Request{
		Pool: h, RequestID: req.GetRequestId(), ExpectedEpoch: req.GetExpectedEpoch(), DryRun: req.GetDryRun(),
		Exclude: req.GetExcludeHosts(), Override: req.GetOperatorOverride(), Reason: req.GetReason(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return electResultPB(res), nil
}

// Journal returns a pool's journaled steps.
func (s *Service) Journal(ctx context.Context, req *pb.JournalRequest) (*pb.JournalResponse, error) {
	if err := checkPoolID("pool", req.GetPool(), true); err != nil {
		return nil, err
	}
	if req.GetLimit() < 0 || req.GetLimit() > 10000 {
		return nil, invalidArgument("limit", "between 0 (1000) and 10000")
	}
	name, err := s.pools.Resolve(req.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	if s.journal == nil {
		return nil, status.Error(codes.Unimplemented, "this bridge keeps no journal")
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = 1000
	}
	entries, err := s.journal.Entries(name, req.GetAfterSequence(), limit)
	if err != nil {
		s.log.Error("journal read failed", "pool", name, "error", err)
		return nil, journalUnreadable()
	}
	out := &pb.JournalResponse{}
	for _, e := range entries {
		out.Entries = append(out.Entries, &pb.JournalEntry{Sequence: e.Seq, Time: timestamppb.New(e.Time), RequestId: e.RequestID,
			Kind: e.Kind, Step: e.Step, HostUuid: e.Host, Epoch: e.Epoch, Ok: e.OK, Detail: e.Detail, Bridge: e.Bridge})
	}
	return out, nil
}

// FenceHost fences a dead host, or says why not.
func (s *Service) FenceHost(ctx context.Context, req *pb.FenceHostRequest) (*pb.FenceHostResponse, error) {
	if err := checkPoolID("pool", req.GetPool(), true); err != nil {
		return nil, err
	}
	if req.GetHost() == "" || len(req.GetHost()) > 128 {
		return nil, invalidArgument("host", "required: a host UUID, name or address (at most 128 characters)")
	}
	if len(req.GetRequestId()) > 128 || len(req.GetReason()) > 1024 {
		return nil, invalidArgument("request_id", "request_id at most 128 characters, reason at most 1024")
	}
	h, err := s.pools.Handle(req.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	if s.fencer == nil {
		return nil, status.Error(codes.Unimplemented, "FenceHost is not enabled in this bridge")
	}
	var dev fencing.Device
	if b := req.GetBmc(); b != nil && b.GetAddress() != "" {
		if s.devices == nil {
			return nil, invalidArgument("bmc", "this bridge has no BMC drivers")
		}
		if dev, err = s.devices(b.GetDriver(), b.GetAddress(), b.GetUsername(), b.GetPassword()); err != nil {
			return nil, invalidArgument("bmc", err.Error())
		}
	}
	res, err := s.fencer.Fence(ctx, fencing.Request{
		Pool: h, Host: req.GetHost(), RequestID: req.GetRequestId(), ExpectedEpoch: req.GetExpectedEpoch(),
		DryRun: req.GetDryRun(), Force: req.GetForce(), Device: dev, Reason: req.GetReason(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return fenceResultPB(res), nil
}
