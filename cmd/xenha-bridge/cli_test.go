package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// runProc runs the binary (this test binary re-executed as xenha-bridge,
// see TestMain) and returns its standard output, standard error and exit
// status: what a shell sees.
func runProc(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), "XENHA_TEST_BRIDGE=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("%v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// TestHelpExitsZero: every subcommand's --help (and -h) prints its usage
// and exits 0; no command, or a wrong flag, exits 2 with one error line.
func TestHelpExitsZero(t *testing.T) {
	for _, c := range []string{"status", "health", "journal", "sim", "version"} {
		for _, h := range []string{"--help", "-h"} {
			out, errOut, code := runProc(t, c, h)
			if code != 0 || !strings.HasPrefix(out, "usage: xenha-bridge "+c+" [flags]\n") || errOut != "" {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", c, h, code, out, errOut)
			}
		}
	}
	// serve's --help too: on stdout, exit 0.
	if out, errOut, code := runProc(t, "serve", "--help"); code != 0 || !strings.Contains(out, "-listen") || errOut != "" {
		t.Errorf("serve --help: exit %d, %q %q", code, out, errOut)
	}
	if out, _, code := runProc(t, "--help"); code != 0 || !strings.HasPrefix(out, "usage: xenha-bridge <command>") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
	if _, errOut, code := runProc(t); code != 2 || !strings.HasPrefix(errOut, "usage: xenha-bridge <command>") {
		t.Errorf("no command: exit %d, %q", code, errOut)
	}
	for _, c := range []string{"status", "health", "journal", "sim"} {
		_, errOut, code := runProc(t, c, "--no-such-flag")
		want := "xenha-bridge: " + c + ": flag provided but not defined: -no-such-flag (xenha-bridge " + c + " --help lists the flags)\n"
		if code != 2 || errOut != want {
			t.Errorf("%s --no-such-flag: exit %d, stderr %q, want %q", c, code, errOut, want)
		}
		_, errOut, code = runProc(t, c, "stray")
		want = "xenha-bridge: " + c + `: unexpected argument "stray" (xenha-bridge ` + c + " --help lists the flags)\n"
		if code != 2 || errOut != want {
			t.Errorf("%s stray: exit %d, stderr %q, want %q", c, code, errOut, want)
		}
	}
}

// TestSameConnectionFlags: the commands that talk to a bridge take the
// same connection flags.
func TestSameConnectionFlags(t *testing.T) {
	for _, c := range []string{"status", "health", "journal"} {
		out, _, _ := runProc(t, c, "--help")
		for _, f := range []string{"-addr string", "-token-file string", "-ca-file string", "-tls-server-name string", "-timeout duration"} {
			if !strings.Contains(out, "  "+f+"\n") {
				t.Errorf("%s has no %s:\n%s", c, f, out)
			}
		}
	}
}

// TestNoBridgeAnswers: without a bridge, every command says so in the same
// words, with the address tried and what to check: no raw gRPC error.
func TestNoBridgeAnswers(t *testing.T) {
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	hint := "no bridge answers at " + dead + " (connection refused): is `xenha-bridge serve` running? (--addr sets the address)"
	for _, args := range [][]string{
		{"status"}, {"status", "--pool", "sim", "--json"}, {"journal", "--pool", "sim"}, {"journal", "--backup", t.TempDir() + "/b.db"},
	} {
		out, errOut, code := runProc(t, append(args, "--addr", dead)...)
		want := "xenha-bridge: " + args[0] + ": " + hint + "\n"
		if code != 2 || out != "" || errOut != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q, want %q", args, code, out, errOut, want)
		}
	}
	// health prints its one line on stdout, for probes, and exits 1.
	out, errOut, code := runProc(t, "health", "--addr", dead)
	if code != 1 || out != dead+" UNREACHABLE: "+hint+"\n" || errOut != "" {
		t.Errorf("health: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The default address is named too.
	if _, err := runCmd(t, "status", "--addr", dead, "--timeout", "2s"); err == nil || err.Error() != "status: "+hint {
		t.Errorf("status in process: %v", err)
	}
}

func TestExplain(t *testing.T) {
	addr, timeout := "127.0.0.1:50051", 10*time.Second
	c := &connFlags{addr: &addr, timeout: &timeout}
	journalDown, _ := status.New(codes.Unavailable, "the journal cannot be read: input/output error").
		WithDetails(&errdetails.ErrorInfo{Reason: "JOURNAL_UNREADABLE", Domain: "xenha-bridge"})
	for _, tc := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:50051: connect: connection refused"`),
			"no bridge answers at 127.0.0.1:50051 (connection refused): is `xenha-bridge serve` running? (--addr sets the address)"},
		{status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`),
			"cannot set up TLS with the bridge at 127.0.0.1:50051 (certificate signed by unknown authority): check --ca-file and --tls-server-name"},
		{status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
			"no answer from the bridge at 127.0.0.1:50051 within 10s: is `xenha-bridge serve` running there and not stuck? (--timeout sets how long to wait)"},
		// The bridge's own answers keep their code and message.
		{journalDown.Err(), "Unavailable: the journal cannot be read: input/output error"},
		{status.Error(codes.Unavailable, "xapi transport: pool.get_all to http://10.0.0.1/jsonrpc: connection refused"),
			"Unavailable: xapi transport: pool.get_all to http://10.0.0.1/jsonrpc: connection refused"},
		{status.Error(codes.NotFound, `no pool "nope"`), `NotFound: no pool "nope"`},
		{errors.New("plain"), "plain"},
	} {
		if got := c.explain(tc.err).Error(); got != tc.want {
			t.Errorf("explain(%v):\n got %q\nwant %q", tc.err, got, tc.want)
		}
	}
	if c.explain(nil) != nil {
		t.Error("explain(nil) is not nil")
	}
}

// TestStatusShowsReachability: xapi's live and the bridge's probe side by
// side; a host xapi still calls live that the bridge does not reach is
// pointed out.
func TestStatusShowsReachability(t *testing.T) {
	rep := &statusReport{Addr: "127.0.0.1:50051", Time: time.Now(), Pools: []poolStatus{{
		Name: "p", Controller: "cloudstack", Policy: "auto", HostCount: 3, LiveHostCount: 3,
		Master: masterStatus{Name: "h1", Reachable: true},
		Hosts: []hostStatus{
			{Name: "h1", Address: "10.0.0.1", Live: true, Enabled: true, Probe: "master", Reached: true},
			{Name: "h2", Address: "10.0.0.2", Live: true, Enabled: true, Probe: "slave", Reached: true},
			{Name: "h0", Address: "10.0.0.3", Live: true, Enabled: true, Probe: "unreachable"},
		},
	}}}
	var b bytes.Buffer
	if err := printStatus(&b, rep, 0); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  hosts:      3 of 3 live (xapi), 2 reached by the bridge\n",
		"    NAME  ADDRESS   LIVE  PROBE        ENABLED  UUID\n",
		"    h0    10.0.0.3  yes   unreachable  yes      \n",
		"    LIVE yes with PROBE unreachable: xapi has not declared the host dead yet (it waits up to 600 s), but the bridge does not reach it.\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q in:\n%s", want, b.String())
		}
	}
	// Before any probe, nothing is claimed.
	for i := range rep.Pools[0].Hosts {
		rep.Pools[0].Hosts[i].Probe = ""
	}
	b.Reset()
	printStatus(&b, rep, 0)
	if !strings.Contains(b.String(), "  hosts:      3 of 3 live\n") || strings.Contains(b.String(), "LIVE yes with") {
		t.Errorf("unprobed hosts:\n%s", b.String())
	}
}
