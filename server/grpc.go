package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
)

// Options configure the gRPC server.
type Options struct {
	Logger hclog.Logger
	// Token, when set, is required as "authorization: Bearer <token>" on
	// every RPC but health.
	Token string
	// TLS, when set, serves TLS. With ClientCAs set, every RPC but health
	// needs a client certificate signed by them (mTLS).
	TLS *tls.Config
	// MaxMessageBytes bounds a request (default 1 MiB).
	MaxMessageBytes int
}

// Server is the gRPC server with health, reflection and the interceptor
// chain: recovery → logging → auth.
type Server struct {
	grpc   *grpc.Server
	health *health.Server
	log    hclog.Logger
}

// New builds the server around svc.
func New(svc *Service, opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 1 << 20
	}
	mtls := false
	if opts.TLS != nil && opts.TLS.ClientCAs != nil {
		mtls = true
		opts.TLS = opts.TLS.Clone()
		// Verify a certificate when given; the auth step requires one for
		// everything but health, so probes need no client certificate.
		opts.TLS.ClientAuth = tls.VerifyClientCertIfGiven
	}
	rpcLog := log.Named("grpc")
	recover := recovery.WithRecoveryHandler(func(p any) error {
		rpcLog.Error("panic in a handler", "panic", fmt.Sprint(p))
		return status.Error(codes.Internal, "internal error")
	})
	logger := logging.LoggerFunc(func(_ context.Context, lvl logging.Level, msg string, fields ...any) {
		switch lvl {
		case logging.LevelDebug:
			rpcLog.Debug(msg, fields...)
		case logging.LevelInfo:
			rpcLog.Debug(msg, fields...) // every call at info would drown the log
		case logging.LevelWarn:
			rpcLog.Warn(msg, fields...)
		default:
			rpcLog.Error(msg, fields...)
		}
	})
	notHealth := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return c.Service != healthpb.Health_ServiceDesc.ServiceName
	})
	check := authFunc(opts.Token, mtls)
	sopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(opts.MaxMessageBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.ChainUnaryInterceptor(
			recovery.UnaryServerInterceptor(recover),
			logging.UnaryServerInterceptor(logger, logging.WithLogOnEvents(logging.FinishCall)),
			selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(check), notHealth),
		),
		grpc.ChainStreamInterceptor(
			recovery.StreamServerInterceptor(recover),
			logging.StreamServerInterceptor(logger, logging.WithLogOnEvents(logging.FinishCall)),
			selector.StreamServerInterceptor(auth.StreamServerInterceptor(check), notHealth),
		),
	}
	if opts.TLS != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	g := grpc.NewServer(sopts...)
	pb.RegisterXenHAServiceServer(g, svc)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(pb.XenHAService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	reflection.Register(g)
	return &Server{grpc: g, health: hs, log: log}
}

// Serve serves on ln until Stop.
func (s *Server) Serve(ln net.Listener) error { return s.grpc.Serve(ln) }

// Stop reports NOT_SERVING, lets running calls finish for up to grace,
// then cuts the rest (streams never finish by themselves).
func (s *Server) Stop(grace time.Duration) {
	s.health.Shutdown()
	t := time.AfterFunc(grace, s.grpc.Stop)
	defer t.Stop()
	s.grpc.GracefulStop()
}
