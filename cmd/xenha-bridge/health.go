package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cloudstack-xenha/xenha-bridge/config"
)

// exitError ends the program with its code; what it had to say is
// already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

const healthAbout = `Asks a running bridge's gRPC health service and prints one line; exits 0
only when the answer is SERVING (for container and systemd probes).`

// runHealth asks a bridge's gRPC health service, for container and systemd
// probes (the image has no shell and no grpc_health_probe). It prints one
// line and exits 0 only when the answer is SERVING.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	conn := addConnFlags(fs, 3*time.Second)
	service := fs.String("service", "", "the service to ask about (\"\": the whole server; cloudstack.xenha.v1.XenHAService: the API)")
	wait := fs.Duration("wait", 0, "keep asking until SERVING or this long has passed (e.g. 60s while the bridge starts)")
	if err := parseFlags(fs, args, stdout, healthAbout); err != nil {
		return err
	}
	cc, err := conn.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	deadline := time.Now().Add(*wait)
	for {
		line, serving := checkHealth(ctx, client, *service, conn)
		if serving || !time.Now().Before(deadline) || ctx.Err() != nil {
			fmt.Fprintf(stdout, "%s %s\n", *conn.addr, line)
			if serving {
				return nil
			}
			return exitError{1}
		}
		select {
		case <-time.After(min(500*time.Millisecond, time.Until(deadline))):
		case <-ctx.Done():
		}
	}
}

// checkHealth makes one Check call and says what it answered.
func checkHealth(ctx context.Context, client healthpb.HealthClient, service string, conn *connFlags) (string, bool) {
	cctx, cancel := context.WithTimeout(ctx, *conn.timeout)
	defer cancel()
	resp, err := client.Check(cctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return "UNREACHABLE: " + conn.explain(err).Error(), false
	}
	s := resp.GetStatus()
	return s.String(), s == healthpb.HealthCheckResponse_SERVING
}

// loopbackOrTLS refuses plaintext to an address that is not loopback: the
// bridge serves plaintext on loopback only.
func loopbackOrTLS(addr, caFile string) error {
	if caFile == "" && !config.IsLoopback(addr) {
		return fmt.Errorf("%s is not a loopback address: pass --ca-file to use TLS", addr)
	}
	return nil
}
