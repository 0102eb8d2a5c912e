package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/cloudstack-xenha/xenha-bridge/config"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
)

// runJournal prints a pool's journal from a running bridge (the journal
// file is held by the bridge, so this goes through the API).
func runJournal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("journal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", config.DefaultListen, "the bridge's gRPC address")
	pool := fs.String("pool", "", "pool name or UUID (required)")
	after := fs.Uint64("after", 0, "entries after this sequence number")
	limit := fs.Int("limit", 1000, "at most this many entries")
	tokenFile := fs.String("token-file", "", "a file holding the bridge's bearer token")
	caFile := fs.String("ca-file", "", "use TLS, trusting this CA (PEM)")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of the call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pool == "" {
		return errors.New("journal: --pool is required")
	}
	creds := insecure.NewCredentials()
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no PEM certificate", *caFile)
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	} else if !config.IsLoopback(*addr) {
		return fmt.Errorf("journal: %s is not a loopback address: pass --ca-file to use TLS", *addr)
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *tokenFile != "" {
		tok, err := os.ReadFile(*tokenFile)
		if err != nil {
			return err
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := pb.NewXenHAServiceClient(conn).Journal(ctx, &pb.JournalRequest{Pool: *pool, AfterSequence: *after, Limit: int32(*limit)})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tTIME\tKIND\tSTEP\tOK\tEPOCH\tHOST\tREQUEST\tDETAIL")
	for _, e := range resp.GetEntries() {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%v\t%d\t%s\t%s\t%s\n", e.GetSequence(), e.GetTime().AsTime().UTC().Format(time.RFC3339),
			e.GetKind(), e.GetStep(), e.GetOk(), e.GetEpoch(), short(e.GetHostUuid()), e.GetRequestId(), e.GetDetail())
	}
	return w.Flush()
}

func short(uuid string) string {
	if len(uuid) > 8 {
		return uuid[:8]
	}
	return uuid
}
