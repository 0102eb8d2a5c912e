package server

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cloudstack-xenha/xenha-bridge/membership"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
)

// The add-host flow and XenHA enablement (package membership).

func (s *Service) needMembers() error {
	if s.members == nil {
		return status.Error(codes.Unimplemented, "membership calls are not enabled in this bridge")
	}
	return nil
}

func xapiTLS(t *pb.XAPITLS) xapi.TLSOptions {
	if t == nil {
		return xapi.TLSOptions{}
	}
	o := xapi.TLSOptions{PinSHA256: t.GetPinSha256(), AllowPlainHTTP: t.GetAllowPlainHttp()}
	if t.GetCaPem() != "" {
		o.CAPEM = []byte(t.GetCaPem())
	}
	return o
}

func checkHostURL(u, user, pass string) error {
	switch {
	case u == "" || len(u) > 512:
		return invalidArgument("url", "required: the host's XAPI URL, e.g. https://10.0.0.21 (at most 512 characters)")
	case user == "":
		return invalidArgument("username", "required")
	case pass == "":
		return invalidArgument("password", "required")
	}
	return nil
}

var hostClasses = map[membership.Class]pb.HostClass{
	membership.PoolMember: pb.HostClass_HOST_CLASS_POOL_MEMBER,
	membership.Standalone: pb.HostClass_HOST_CLASS_STANDALONE,
	membership.Conflict:   pb.HostClass_HOST_CLASS_CONFLICT,
	membership.Managed:    pb.HostClass_HOST_CLASS_MANAGED,
}

func memberPB(m membership.Member) *pb.Member {
	return &pb.Member{Uuid: m.UUID, Name: m.Name, Address: m.Address, Url: m.URL}
}

// ClassifyHost tells what a host is before CloudStack adds it.
func (s *Service) ClassifyHost(ctx context.Context, req *pb.ClassifyHostRequest) (*pb.ClassifyHostResponse, error) {
	if err := s.needMembers(); err != nil {
		return nil, err
	}
	if err := checkHostURL(req.GetUrl(), req.GetUsername(), req.GetPassword()); err != nil {
		return nil, err
	}
	c, err := s.members.Classify(ctx, req.GetUrl(), xapi.Credentials{Username: req.GetUsername(), Password: xapi.Secret(req.GetPassword())},
		xapiTLS(req.GetTls()), req.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ClassifyHostResponse{HostClass: hostClasses[c.Class], PoolUuid: c.PoolUUID, PoolLabel: c.PoolLabel,
		Master: memberPB(c.Master), ManagedAs: c.ManagedAs, Message: c.Message}
	for _, m := range c.Members {
		out.Members = append(out.Members, memberPB(m))
	}
	return out, nil
}

// JoinHost joins a standalone host to an attached pool.
func (s *Service) JoinHost(ctx context.Context, req *pb.JoinHostRequest) (*pb.JoinHostResponse, error) {
	if err := s.needMembers(); err != nil {
		return nil, err
	}
	if err := checkPoolID("pool", req.GetPool(), true); err != nil {
		return nil, err
	}
	if err := checkHostURL(req.GetUrl(), req.GetUsername(), req.GetPassword()); err != nil {
		return nil, err
	}
	h, err := s.pools.Handle(req.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	c, err := s.members.Join(ctx, h, req.GetUrl(), xapi.Credentials{Username: req.GetUsername(), Password: xapi.Secret(req.GetPassword())},
		xapiTLS(req.GetTls()), req.GetDryRun())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.JoinHostResponse{Host: memberPB(c.Host), DryRun: c.DryRun, Steps: c.Steps}, nil
}

// EjectHost ejects a member, never the master.
func (s *Service) EjectHost(ctx context.Context, req *pb.EjectHostRequest) (*pb.EjectHostResponse, error) {
	if err := s.needMembers(); err != nil {
		return nil, err
	}
	if err := checkPoolID("pool", req.GetPool(), true); err != nil {
		return nil, err
	}
	if req.GetHost() == "" || len(req.GetHost()) > 128 {
		return nil, invalidArgument("host", "required: a host UUID, name or address")
	}
	h, err := s.pools.Handle(req.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	c, err := s.members.Eject(ctx, h, req.GetHost(), req.GetDryRun())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.EjectHostResponse{Host: memberPB(c.Host), DryRun: c.DryRun, Steps: c.Steps}, nil
}

// EnableXenHA enables XenHA on a pool that qualifies.
func (s *Service) EnableXenHA(ctx context.Context, req *pb.EnableXenHARequest) (*pb.EnableXenHAResponse, error) {
	if err := s.needMembers(); err != nil {
		return nil, err
	}
	if err := checkPoolID("pool", req.GetPool(), true); err != nil {
		return nil, err
	}
	var timeout time.Duration
	if d := req.GetTimeout(); d != nil {
		if d.CheckValid() != nil || d.AsDuration() < 10*time.Second || d.AsDuration() > time.Hour {
			return nil, invalidArgument("timeout", "between 10s and 1h, or empty to let the bridge choose")
		}
		timeout = d.AsDuration()
	}
	h, err := s.pools.Handle(req.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	c, err := s.members.EnableHA(ctx, h, req.GetAcceptTwoHostRisk(), req.GetHeartbeatSr(), timeout, req.GetDryRun())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.EnableXenHAResponse{Timeout: durationpb.New(c.Timeout), HeartbeatSr: c.HeartbeatSR, DryRun: c.DryRun,
		Steps: c.Steps, Controller: controllers[c.Controller], Epoch: c.Epoch}, nil
}

// DisableXenHA disables XenHA on a pool.
func (s *Service) DisableXenHA(ctx context.Context, req *pb.DisableXenHARequest) (*pb.DisableXenHAResponse, error) {
	if err := s.needMembers(); err != nil {
		return nil, err
	}
	if err := checkPoolID("pool", req.GetPool(), true); err != nil {
		return nil, err
	}
	h, err := s.pools.Handle(req.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	c, err := s.members.DisableHA(ctx, h, req.GetDryRun())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.DisableXenHAResponse{DryRun: c.DryRun, Steps: c.Steps, Controller: controllers[c.Controller], Epoch: c.Epoch}, nil
}
