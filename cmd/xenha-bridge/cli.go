package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// One voice for every subcommand. Errors read "xenha-bridge: COMMAND:
// what went wrong" (main prints the first word, commandError the second);
// an error from a running bridge reads "Code: message", and a bridge that
// does not answer gets the address tried and a hint. --help prints the
// command's flags on standard output and exits 0.

// commandError prefixes a subcommand's error with its name, once.
type commandError struct {
	cmd string
	err error
}

func (e *commandError) Error() string {
	msg := e.err.Error()
	if strings.HasPrefix(msg, e.cmd+": ") || strings.HasPrefix(msg, e.cmd+" --") {
		return msg
	}
	return e.cmd + ": " + msg
}

func (e *commandError) Unwrap() error { return e.err }

// parseFlags parses a subcommand's flags, which take no arguments. With -h
// or --help it prints the usage on stdout and returns flag.ErrHelp (exit
// 0); a wrong flag is an error that says where the list is.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, about string) error {
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	fs.Usage = func() {
		fmt.Fprintf(&usage, "usage: xenha-bridge %s [flags]\n\n%s\n\nflags:\n", fs.Name(), about)
		fs.PrintDefaults()
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		stdout.Write(usage.Bytes())
		return flag.ErrHelp
	case err != nil:
		return fmt.Errorf("%w (xenha-bridge %s --help lists the flags)", err, fs.Name())
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q (xenha-bridge %s --help lists the flags)", fs.Arg(0), fs.Name())
	}
	return nil
}

// explain turns an error of a call to the bridge into a sentence: the
// bridge's own errors as "Code: message", a bridge that is not there (or
// does not answer in time, or fails TLS) with the address tried and what
// to check.
func (c *connFlags) explain(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	switch {
	case st.Code() == codes.Unavailable && len(st.Details()) == 0 && isTransportError(msg):
		cause := transportCause(msg)
		if strings.Contains(msg, "handshake") || strings.Contains(msg, "tls:") || strings.Contains(msg, "x509") {
			return fmt.Errorf("cannot set up TLS with the bridge at %s (%s): check --ca-file and --tls-server-name", *c.addr, cause)
		}
		return fmt.Errorf("no bridge answers at %s (%s): is `xenha-bridge serve` running? (--addr sets the address)", *c.addr, cause)
	case st.Code() == codes.DeadlineExceeded:
		return fmt.Errorf("no answer from the bridge at %s within %s: is `xenha-bridge serve` running there and not stuck? (--timeout sets how long to wait)",
			*c.addr, *c.timeout)
	}
	return fmt.Errorf("%s: %s", st.Code(), msg)
}

// isTransportError tells grpc's own "could not reach the server" messages
// from an UNAVAILABLE the bridge answered.
func isTransportError(msg string) bool {
	for _, p := range []string{"connection error:", "last connection error:", "last resolver error:", "name resolver error", "connection closed"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// transportCause is the end of grpc's dial error: "connection refused",
// "no such host", ...
func transportCause(msg string) string {
	msg = strings.TrimRight(msg, `"`)
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		return msg[i+2:]
	}
	return msg
}
