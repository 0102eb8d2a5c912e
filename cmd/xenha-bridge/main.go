// Command xenha-bridge is the CloudStack ↔ XenServer HA sidecar: `serve`
// runs the gRPC service, `sim` a simulated XAPI pool.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// exitCode prints what err says, as "xenha-bridge: COMMAND: ...", and
// returns the process's exit status: 0 for success and for --help, an
// exitError's own code (its message is printed already), else 2.
func exitCode(err error, stderr io.Writer) int {
	var exit exitError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &exit):
		return exit.code
	}
	fmt.Fprintln(stderr, "xenha-bridge:", err)
	return 2
}

const usage = `usage: xenha-bridge <command> [flags]

commands:
  serve    run the gRPC service (--config FILE, --listen ADDR, --metrics ADDR, --simulate, --new-journal)
  status   print each pool's controller, master, hosts, warnings, epoch and last journal entries (--pool NAME, --json)
  health   ask a running bridge's health service; exit 0 only when SERVING (--service NAME, --wait DURATION)
  journal  print a pool's journal from a running bridge (--pool NAME), back the journal up while it serves
           (--backup FILE), or verify a journal file no bridge holds (--check FILE)
  sim      run a simulated XenServer pool on loopback and print its addresses
  version  print the version

status, health and journal reach a running bridge with the same flags:
  --addr ADDR  --token-file FILE  --ca-file FILE  --tls-server-name NAME  --timeout DURATION
xenha-bridge COMMAND --help lists a command's flags.
`

// run runs one command. Its errors name the command (commandError);
// flag.ErrHelp means help was asked for and printed.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError{2}
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "sim":
		err = runSim(ctx, args[1:], stdout, stderr)
	case "journal":
		err = runJournal(ctx, args[1:], stdout, stderr)
	case "status":
		err = runStatus(ctx, args[1:], stdout, stderr)
	case "health":
		err = runHealth(ctx, args[1:], stdout, stderr)
	case "version":
		fs := flag.NewFlagSet("version", flag.ContinueOnError)
		if err = parseFlags(fs, args[1:], stdout, "Prints the version."); err == nil {
			fmt.Fprintln(stdout, "xenha-bridge", version)
		}
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
	var exit exitError
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.As(err, &exit) {
		return err
	}
	return &commandError{cmd: args[0], err: err}
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	hosts := fs.Int("hosts", 3, "pool members")
	standalone := fs.Int("standalone", 0, "extra standalone hosts (one-host pools, for pool.join)")
	vms := fs.Int("vms", 2, "guest VMs per host (0 for none)")
	seed := fs.Int64("seed", 1, "seed for UUIDs: the same seed gives the same pool")
	password := fs.String("password", "xenroot", "xapi root password of the simulated hosts")
	haTimeout := fs.Duration("enable-ha", 0, "enable XenHA at start with this timeout T (e.g. 60s); 0 leaves it off")
	jsonOut := fs.Bool("json", false, "print the addresses as one JSON line (for scripts)")
	port := fs.Int("port", 0, "the XAPI port of every host (each has its own 127.77.x.y address); 0: a free port per host")
	control := fs.String("control", "", "the control endpoint's address (default 127.0.0.1 on a free port)")
	verbose := fs.Bool("v", false, "log simulator decisions to stderr")
	if err := parseFlags(fs, args, stdout, "Runs a simulated XenServer pool on loopback and prints its addresses; Ctrl-C stops it."); err != nil {
		return err
	}
	if *vms == 0 {
		*vms = -1
	}
	level := hclog.Warn
	if *verbose {
		level = hclog.Info
	}
	sim, err := xapisim.New(xapisim.Config{
		Hosts: *hosts, Standalone: *standalone, VMsPerHost: *vms, Seed: *seed, Password: *password,
		Port: *port, ControlAddr: *control,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "sim", Level: level, Output: stderr}),
	})
	if err != nil {
		return err
	}
	defer sim.Close()
	if *haTimeout > 0 {
		if err := sim.EnableHA(0, *haTimeout); err != nil {
			return fmt.Errorf("enable XenHA: %w", err)
		}
	}
	info := sim.Info()
	if *jsonOut {
		if err := json.NewEncoder(stdout).Encode(info); err != nil {
			return err
		}
	} else {
		printInfo(stdout, info)
	}
	<-ctx.Done()
	// Give in-flight requests a moment; Close cuts the rest.
	time.Sleep(50 * time.Millisecond)
	return nil
}

func printInfo(w io.Writer, in xapisim.Info) {
	fmt.Fprintf(w, "simulated pool %s (user %s, password %s)\n", in.PoolUUID, in.Username, in.Password)
	for _, h := range in.Hosts {
		role := "slave "
		if h.Index == 0 {
			role = "master"
		}
		fmt.Fprintf(w, "  %s %-7s %s  xapi %s  bmc %s\n", role, h.Name, h.UUID, h.URL, h.BMCURL)
	}
	for _, h := range in.Standalone {
		fmt.Fprintf(w, "  alone  %-7s %s  xapi %s  bmc %s\n", h.Name, h.UUID, h.URL, h.BMCURL)
	}
	fmt.Fprintf(w, "control endpoint %s (GET /state; POST /hosts/{index|uuid}/power-off ...)\n", in.ControlURL)
	fmt.Fprintf(w, "BMC credentials %s / %s; Ctrl-C stops the pool\n", in.BMCUsername, in.BMCPassword)
}
