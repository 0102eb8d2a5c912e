package ipmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/fencing"
)

// A real IPMI peer for the tests: Debian's ipmi_sim (package openipmi) on
// 127.0.0.1, configured from scripts/ipmi (lan.conf.tmpl, bmc.emu) with
// scripts/ipmi/chassis-control as its power program.

const (
	simUser     = "admin"
	simPassword = "Xh4-sim-pw"
)

// simOpts configures one ipmi_sim.
type simOpts struct {
	User, Password string // the BMC account (default simUser / simPassword)
	Off            bool   // the chassis starts powered off (power-file mode)
	IPv6           bool   // listen on [::1] instead of 127.0.0.1
	// Control, when set, is a xenha-bridge simulator's control URL:
	// chassis power then drives host Host of that simulator.
	Control string
	Host    int
}

// ipmiSim is one running ipmi_sim.
type ipmiSim struct {
	Addr      string // 127.0.0.1:port or [::1]:port
	Dir       string // its configuration and state
	PowerFile string // the chassis power, 1 or 0 (power-file mode)
	SetLog    string // chassis-control's record of every "set power N"
	cmd       *exec.Cmd
	kill      func() // ends ipmi_sim (stopped or not) and whatever it runs
}

// startIPMISim starts an ipmi_sim for the test and returns its address; it
// is killed when the test ends.
func startIPMISim(t testing.TB, opts simOpts) string {
	t.Helper()
	return launchIPMISim(t, opts).Addr
}

// requireIPMISim fails the test when ipmi_sim is missing, unless
// XENHA_SKIP_IPMI=1 asks to skip instead.
func requireIPMISim(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ipmi_sim"); err == nil {
		return
	}
	if os.Getenv("XENHA_SKIP_IPMI") == "1" {
		t.Skip("ipmi_sim not installed (XENHA_SKIP_IPMI=1)")
	}
	t.Fatal("ipmi_sim not found: these tests need a real IPMI peer; apt-get install openipmi (or set XENHA_SKIP_IPMI=1 to skip them)")
}

func scriptsDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "scripts", "ipmi"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"lan.conf.tmpl", "bmc.emu", "chassis-control"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("ipmi_sim harness: %v", err)
		}
	}
	return dir
}

// freeUDPPort finds a UDP port on host that nobody is bound to.
func freeUDPPort(t testing.TB, host string) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func launchIPMISim(t testing.TB, opts simOpts) *ipmiSim {
	t.Helper()
	requireIPMISim(t)
	if opts.User == "" {
		opts.User = simUser
	}
	if opts.Password == "" {
		opts.Password = simPassword
	}
	scripts := scriptsDir(t)
	tmpl, err := os.ReadFile(filepath.Join(scripts, "lan.conf.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &ipmiSim{Dir: dir, PowerFile: filepath.Join(dir, "power"), SetLog: filepath.Join(dir, "chassis.log")}
	power := "1\n"
	if opts.Off {
		power = "0\n"
	}
	if err := os.WriteFile(s.PowerFile, []byte(power), 0o644); err != nil {
		t.Fatal(err)
	}
	// ipmi_sim hands this to /bin/sh -c with "get power" or "set power N"
	// appended; the values are baked in rather than left to the
	// environment.
	cc := []string{shellQuote(filepath.Join(scripts, "chassis-control")), "--log", shellQuote(s.SetLog)}
	if opts.Control != "" {
		cc = append(cc, "--control", shellQuote(opts.Control), "--host", strconv.Itoa(opts.Host))
	} else {
		cc = append(cc, "--power-file", shellQuote(s.PowerFile))
	}
	for _, v := range []string{opts.User, opts.Password, strings.Join(cc, " ")} {
		if strings.ContainsAny(v, "\"\\\n") {
			t.Fatalf("ipmi_sim harness: %q cannot go into lan.conf", v)
		}
	}
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}

	host := "127.0.0.1"
	if opts.IPv6 {
		host = "::1"
	}
	var lastErr error
	for try := 0; try < 3; try++ { // another process may take the free port first
		port := freeUDPPort(t, host)
		conf := strings.NewReplacer(
			"{{NAME}}", "xenha-test",
			"{{ADDR}}", host,
			"{{PORT}}", strconv.Itoa(port),
			"{{USER}}", opts.User,
			"{{PASSWORD}}", opts.Password,
			"{{CHASSIS_CONTROL}}", strings.Join(cc, " "),
		).Replace(string(tmpl))
		confFile := filepath.Join(dir, "lan.conf")
		if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		s.Addr = net.JoinHostPort(host, strconv.Itoa(port))
		if lastErr = s.start(t, confFile, filepath.Join(scripts, "bmc.emu"), stateDir, opts); lastErr == nil {
			return s
		}
	}
	t.Fatalf("ipmi_sim did not come up: %v", lastErr)
	return nil
}

func (s *ipmiSim) start(t testing.TB, confFile, emuFile, stateDir string, opts simOpts) error {
	t.Helper()
	out, err := os.Create(filepath.Join(s.Dir, "ipmi_sim.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// -n: no console. ipmi_sim's console polls stdin and aborts where
	// stdin cannot be polled, so stdin is /dev/null (exec's default).
	cmd := exec.Command("ipmi_sim", "-c", confFile, "-f", emuFile, "-s", stateDir, "-n")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // chassis-control runs in its group
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ipmi_sim: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd = cmd
	s.kill = func() {
		select {
		case <-exited:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	t.Cleanup(s.kill)

	// Ready when the driver itself gets an answer.
	b, err := New(Config{Address: s.Addr, Username: opts.User, Password: opts.Password, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			log, _ := os.ReadFile(out.Name())
			return fmt.Errorf("ipmi_sim on %s exited: %s", s.Addr, log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := b.PowerState(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if !errors.Is(err, fencing.ErrUnreachable) || time.Now().After(deadline) {
			s.kill()
			log, _ := os.ReadFile(out.Name())
			return fmt.Errorf("ipmi_sim on %s: %v; its output: %s", s.Addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop freezes ipmi_sim (SIGSTOP): its port stays bound but nothing
// answers, like a hung BMC or one behind a dead link.
func (s *ipmiSim) stop(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

// resume undoes stop.
func (s *ipmiSim) resume(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// power reads the power file: "1" or "0".
func (s *ipmiSim) power(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(s.PowerFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// sets returns chassis-control's record of the power commands it got,
// such as "set power 0".
func (s *ipmiSim) sets(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(s.SetLog)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func itoa(n int) string { return strconv.Itoa(n) }
