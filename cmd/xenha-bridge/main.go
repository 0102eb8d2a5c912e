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
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var exit exitError
		switch {
		case errors.As(err, &exit):
			os.Exit(exit.code) // its message is printed
		case !errors.Is(err, flag.ErrHelp):
			fmt.Fprintln(os.Stderr, "xenha-bridge:", err)
		}
		os.Exit(2)
	}
}

const usage = `usage: xenha-bridge <command> [flags]

commands:
  serve    run the gRPC service (--config FILE, --listen ADDR, --metrics ADDR, --simulate, --new-journal)
  status   print each pool's controller, master, hosts, warnings, epoch and last journal entries (--pool NAME, --json)
  health   ask a running bridge's health service; exit 0 only when SERVING (--addr ADDR)
  journal  print a pool's journal from a running bridge (--pool NAME), back the journal up while it serves
           (--backup FILE), or verify a journal file no bridge holds (--check FILE)
  sim      run a simulated XenServer pool on loopback and print its addresses
  version  print the version
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "sim":
		return runSim(ctx, args[1:], stdout, stderr)
	case "journal":
		return runJournal(ctx, args[1:], stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "health":
		return runHealth(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "xenha-bridge", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hosts := fs.Int("hosts", 3, "pool members")
	standalone := fs.Int("standalone", 0, "extra standalone hosts (one-host pools, for pool.join)")
	vms := fs.Int("vms", 2, "guest VMs per host (0 for none)")
	seed := fs.Int64("seed", 1, "seed for UUIDs: the same seed gives the same pool")
	password := fs.String("password", "xenroot", "xapi root password of the simulated hosts")
	haTimeout := fs.Duration("enable-ha", 0, "enable XenHA at start with this timeout T (e.g. 60s); 0 leaves it off")
	jsonOut := fs.Bool("json", false, "print the addresses as one JSON line (for scripts)")
	verbose := fs.Bool("v", false, "log simulator decisions to stderr")
	if err := fs.Parse(args); err != nil {
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
