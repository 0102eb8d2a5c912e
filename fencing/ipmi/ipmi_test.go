package ipmi

import (
	"context"
	"errors"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
)

func newBMC(t testing.TB, addr, password string, timeout time.Duration) *BMC {
	t.Helper()
	b, err := New(Config{Address: addr, Username: simUser, Password: password, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func noPassword(t testing.TB, err error, passwords ...string) {
	t.Helper()
	for _, pw := range passwords {
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error holds a password: %v", err)
		}
	}
}

func TestNew(t *testing.T) {
	good := []struct {
		addr, host string
		port       int
		str        string
	}{
		{"10.0.0.5", "10.0.0.5", 623, "ipmi://10.0.0.5:623"},
		{"10.0.0.5:6230", "10.0.0.5", 6230, "ipmi://10.0.0.5:6230"},
		{"bmc-3.example", "bmc-3.example", 623, "ipmi://bmc-3.example:623"},
		{"[fd00::5]:624", "fd00::5", 624, "ipmi://[fd00::5]:624"},
		{"fd00::5", "fd00::5", 623, "ipmi://[fd00::5]:623"},
		{"[fd00::5]", "fd00::5", 623, "ipmi://[fd00::5]:623"},
	}
	for _, g := range good {
		b, err := New(Config{Address: g.addr, Username: "root", Password: "hunter2"})
		if err != nil {
			t.Errorf("New(%q): %v", g.addr, err)
			continue
		}
		if b.host != g.host || b.port != g.port || b.String() != g.str {
			t.Errorf("New(%q): host %q port %d String %q", g.addr, b.host, b.port, b.String())
		}
		if b.timeout != DefaultTimeout {
			t.Errorf("default timeout %v", b.timeout)
		}
		if b.Driver() != "ipmi" {
			t.Errorf("Driver() = %q", b.Driver())
		}
	}
	bad := []Config{
		{Address: "", Username: "root"},
		{Address: "10.0.0.5:0", Username: "root"},
		{Address: "10.0.0.5:70000", Username: "root"},
		{Address: "10.0.0.5:ipmi", Username: "root"},
		{Address: ":623", Username: "root"},
		{Address: "http://10.0.0.5", Username: "root"},
		{Address: "10.0.0.5"},
		{Address: "10.0.0.5", Username: "a-user-name-longer-than-16"},
		{Address: "10.0.0.5", Username: "root", Password: "a-password-longer-than-20-bytes"},
		{Address: "10.0.0.5", Username: "root", Timeout: -time.Second},
	}
	for _, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		} else if c.Password != "" {
			noPassword(t, err, c.Password)
		}
	}
}

// An address carrying credentials (pasted from somewhere as user:pw@host)
// is refused without echoing them: the error reaches AttachPool's caller
// and logs.
func TestAddressWithCredentialsIsRefusedUnechoed(t *testing.T) {
	for _, a := range []string{"admin:very-secret-pw@10.0.1.5:623", "admin:very-secret-pw@10.0.1.5", "very-secret-pw@[::1]:623"} {
		_, err := New(Config{Address: a, Username: "admin", Password: "pw"})
		if err == nil || !strings.Contains(err.Error(), "must not carry credentials") {
			t.Fatalf("%s: %v", a, err)
		}
		noPassword(t, err, "very-secret-pw")
	}
}

func TestStringHidesPassword(t *testing.T) {
	b, err := New(Config{Address: "127.0.0.1", Username: "admin", Password: "very-secret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{b.String(), b.Driver()} {
		if strings.Contains(s, "very-secret-pw") || strings.Contains(s, "admin") {
			t.Errorf("%q shows a credential", s)
		}
	}
	// A cause that quoted the password (go-ipmi does not, but nothing may
	// leak if it ever did) is redacted.
	err = b.fail(context.Background(), "power off", &watch{}, errors.New("BMC said very-secret-pw is wrong"))
	noPassword(t, err, "very-secret-pw")
}

func TestPowerStateAndPowerOff(t *testing.T) {
	sim := launchIPMISim(t, simOpts{})
	b := newBMC(t, sim.Addr, simPassword, 5*time.Second)
	ctx := context.Background()

	if st, err := b.PowerState(ctx); err != nil || st != fencing.PowerOn {
		t.Fatalf("PowerState = %v, %v; want on", st, err)
	}
	if err := b.PowerOff(ctx); err != nil {
		t.Fatalf("PowerOff: %v", err)
	}
	if got := sim.power(t); got != "0" {
		t.Fatalf("chassis power after PowerOff = %q, want 0", got)
	}
	if st, err := b.PowerState(ctx); err != nil || st != fencing.PowerOff {
		t.Fatalf("PowerState after PowerOff = %v, %v; want off", st, err)
	}
	if got, want := sim.sets(t), []string{"set power 0"}; !slices.Equal(got, want) {
		t.Fatalf("power commands %q, want %q", got, want)
	}

	// Already off: success, and nothing is sent.
	if err := b.PowerOff(ctx); err != nil {
		t.Fatalf("PowerOff when off: %v", err)
	}
	if got, want := sim.sets(t), []string{"set power 0"}; !slices.Equal(got, want) {
		t.Fatalf("power commands %q after a second PowerOff, want %q", got, want)
	}
}

func TestIPv6(t *testing.T) {
	pc, err := net.ListenPacket("udp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	pc.Close()
	sim := launchIPMISim(t, simOpts{IPv6: true})
	b := newBMC(t, sim.Addr, simPassword, 5*time.Second)
	if got := b.String(); got != "ipmi://"+sim.Addr {
		t.Errorf("String() = %q", got)
	}
	if err := b.PowerOff(context.Background()); err != nil {
		t.Fatalf("PowerOff: %v", err)
	}
	if got := sim.power(t); got != "0" {
		t.Fatalf("chassis power after PowerOff = %q, want 0", got)
	}
}

func TestPowerOffWhenStartedOff(t *testing.T) {
	sim := launchIPMISim(t, simOpts{Off: true})
	b := newBMC(t, sim.Addr, simPassword, 5*time.Second)
	if st, err := b.PowerState(context.Background()); err != nil || st != fencing.PowerOff {
		t.Fatalf("PowerState = %v, %v; want off", st, err)
	}
	if err := b.PowerOff(context.Background()); err != nil {
		t.Fatalf("PowerOff: %v", err)
	}
	if got := sim.sets(t); got != nil {
		t.Fatalf("power commands %q, want none", got)
	}
}

func TestConcurrentOperations(t *testing.T) {
	addr := startIPMISim(t, simOpts{})
	b := newBMC(t, addr, simPassword, 5*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			st, err := b.PowerState(context.Background())
			if err == nil && st != fencing.PowerOn {
				err = errors.New("state " + st.String())
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestBadCredentials(t *testing.T) {
	addr := startIPMISim(t, simOpts{})
	for _, c := range []struct{ name, user, password string }{
		{"wrong password", simUser, "not-the-password"},
		{"unknown user", "nobody", simPassword},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := New(Config{Address: addr, Username: c.user, Password: c.password, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = b.PowerState(context.Background())
			if !errors.Is(err, fencing.ErrAuth) || errors.Is(err, fencing.ErrUnreachable) {
				t.Fatalf("PowerState: %v; want ErrAuth", err)
			}
			err = b.PowerOff(context.Background())
			if !errors.Is(err, fencing.ErrAuth) {
				t.Fatalf("PowerOff: %v; want ErrAuth", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("refusals took %v", d)
			}
			noPassword(t, err, c.password, simPassword)
			t.Logf("%v", err)
		})
	}
}

// A BMC that is gone: ipmi_sim killed, or a port where nobody listens
// (loopback answers with ICMP port unreachable).
func TestNobodyListening(t *testing.T) {
	sim := launchIPMISim(t, simOpts{})
	b := newBMC(t, sim.Addr, simPassword, 2*time.Second)
	if _, err := b.PowerState(context.Background()); err != nil {
		t.Fatal(err)
	}
	sim.kill()
	unused := newBMC(t, "127.0.0.1:"+itoa(freeUDPPort(t, "127.0.0.1")), simPassword, 2*time.Second)
	for _, b := range []*BMC{b, unused} {
		start := time.Now()
		_, err := b.PowerState(context.Background())
		if !errors.Is(err, fencing.ErrUnreachable) || errors.Is(err, fencing.ErrAuth) {
			t.Errorf("%v: PowerState: %v; want ErrUnreachable", b, err)
		}
		err = b.PowerOff(context.Background())
		if !errors.Is(err, fencing.ErrUnreachable) {
			t.Errorf("%v: PowerOff: %v; want ErrUnreachable", b, err)
		}
		if d := time.Since(start); d > 2*2*time.Second+time.Second {
			t.Errorf("%v: took %v", b, d)
		}
		noPassword(t, err, simPassword)
		t.Logf("%v", err)
	}
}

// A BMC that does not answer (ipmi_sim frozen): UDP gives no error, only
// silence, so the operation's Timeout ends it.
func TestSilentBMCTimesOut(t *testing.T) {
	sim := launchIPMISim(t, simOpts{})
	const timeout = time.Second
	b := newBMC(t, sim.Addr, simPassword, timeout)
	sim.stop(t)
	for _, op := range []func(context.Context) error{
		func(ctx context.Context) error { _, err := b.PowerState(ctx); return err },
		b.PowerOff,
	} {
		start := time.Now()
		err := op(context.Background())
		d := time.Since(start)
		if !errors.Is(err, fencing.ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%v; want ErrUnreachable and DeadlineExceeded", err)
		}
		if d < timeout-50*time.Millisecond || d > timeout+500*time.Millisecond {
			t.Errorf("gave up after %v, Timeout is %v", d, timeout)
		}
		noPassword(t, err, simPassword)
	}
	if got := sim.sets(t); got != nil {
		t.Errorf("power commands %q reached the chassis", got)
	}
	// Thawed, it answers again.
	sim.resume(t)
	if st, err := b.PowerState(context.Background()); err != nil || st != fencing.PowerOn {
		t.Fatalf("PowerState after resume = %v, %v", st, err)
	}
}

func TestContextHonoured(t *testing.T) {
	sim := launchIPMISim(t, simOpts{})
	b := newBMC(t, sim.Addr, simPassword, 10*time.Second)
	sim.stop(t)

	// The caller's deadline, shorter than Timeout, wins.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	err := b.PowerOff(ctx)
	cancel()
	if d := time.Since(start); d > time.Second {
		t.Errorf("PowerOff returned after %v, the deadline was 300ms", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, fencing.ErrUnreachable) {
		t.Errorf("PowerOff past deadline: %v", err)
	}

	// Cancelled by the caller: that says nothing about the BMC.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	_, err = b.PowerState(ctx)
	if d := time.Since(start); d > time.Second {
		t.Errorf("PowerState returned %v after cancel", d)
	}
	if !errors.Is(err, context.Canceled) || errors.Is(err, fencing.ErrUnreachable) {
		t.Errorf("PowerState cancelled: %v", err)
	}

	// Already done: nothing is tried.
	start = time.Now()
	if err := b.PowerOff(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("PowerOff with a cancelled context: %v", err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("PowerOff with a cancelled context took %v", d)
	}
}

// Operations that give up leave no goroutine behind for long.
func TestNoGoroutineLeak(t *testing.T) {
	sim := launchIPMISim(t, simOpts{})
	b := newBMC(t, sim.Addr, simPassword, 10*time.Second)
	if _, err := b.PowerState(context.Background()); err != nil {
		t.Fatal(err)
	}
	settle := func(limit int) int {
		n := runtime.NumGoroutine()
		for deadline := time.Now().Add(closeTimeout + 2*time.Second); n > limit && time.Now().Before(deadline); n = runtime.NumGoroutine() {
			time.Sleep(20 * time.Millisecond)
		}
		return n
	}
	time.Sleep(100 * time.Millisecond) // the session closes after PowerState returns
	base := runtime.NumGoroutine()

	sim.stop(t)
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if err := b.PowerOff(ctx); err == nil {
			t.Fatal("PowerOff through a frozen BMC succeeded")
		}
		cancel()
	}
	if n := settle(base); n > base {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
	sim.resume(t)
	for range 5 {
		if _, err := b.PowerState(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := settle(base); n > base {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

// IPMI power drives a simulated XenServer host: ipmi_sim's chassis program
// calls the xenha-bridge simulator's control endpoint.
func TestDrivesSimulatedHost(t *testing.T) {
	sim, err := xapisim.New(xapisim.Config{Hosts: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	bmc := launchIPMISim(t, simOpts{Control: sim.Info().ControlURL, Host: 1})
	b := newBMC(t, bmc.Addr, simPassword, 5*time.Second)
	ctx := context.Background()

	if !sim.State().Hosts[1].Powered {
		t.Fatal("simulated host 1 starts powered off")
	}
	if st, err := b.PowerState(ctx); err != nil || st != fencing.PowerOn {
		t.Fatalf("PowerState = %v, %v; want on", st, err)
	}
	if err := b.PowerOff(ctx); err != nil {
		t.Fatalf("PowerOff: %v", err)
	}
	hosts := sim.State().Hosts
	if hosts[1].Powered {
		t.Fatal("simulated host 1 still powered after an IPMI power off")
	}
	if !hosts[0].Powered {
		t.Fatal("simulated host 0 lost power too")
	}
	if st, err := b.PowerState(ctx); err != nil || st != fencing.PowerOff {
		t.Fatalf("PowerState after PowerOff = %v, %v; want off", st, err)
	}
	if err := b.PowerOff(ctx); err != nil {
		t.Fatalf("PowerOff when off: %v", err)
	}
	// Only power-offs: IPMI runs over UDP, so under load go-ipmi may
	// resend a command whose answer was late, and ipmi_sim then runs it
	// again; the second PowerOff itself sent nothing (the host was off).
	got := bmc.sets(t)
	if len(got) == 0 || slices.ContainsFunc(got, func(c string) bool { return c != "set power 0" }) {
		t.Fatalf("power commands %q, want only \"set power 0\"", got)
	}
}
