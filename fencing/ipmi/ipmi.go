// Package ipmi fences a host through its BMC over IPMI v2.0 (RMCP+,
// "lanplus"): it reads the chassis power state and cuts the power.
//
// Each operation opens its own session, does its work and closes the
// session again (BMCs allow few sessions), all within Config.Timeout and
// the caller's context. Errors wrap fencing.ErrUnreachable when the BMC did
// not answer (stopped, gone, a port where nobody listens, a timeout) and
// fencing.ErrAuth when it refused the credentials. The password never
// appears in an error string.
package ipmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/rmcpplus"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/cloudstack-xenha/xenha-bridge/fencing"
)

const (
	// DefaultPort is the RMCP port.
	DefaultPort = 623
	// DefaultTimeout bounds one operation when Config.Timeout is zero.
	DefaultTimeout = 10 * time.Second

	// maxPasswordLength is the longest IPMI v2.0 password.
	maxPasswordLength = 20
	// attemptTimeout is how long one UDP request waits for its answer
	// before go-ipmi sends it again (as ipmitool does for lanplus).
	attemptTimeout = time.Second
	// closeTimeout bounds closing a session once the operation is done.
	closeTimeout = 2 * time.Second
)

// cipherSuite is RAKP-HMAC-SHA1 / HMAC-SHA1-96 / AES-CBC-128, the suite
// every IPMI v2.0 BMC offers (ipmitool's -C 3). Naming it skips go-ipmi's
// discovery, which sends Get Channel Cipher Suites in RMCP+ session-zero
// framing: ipmi_sim never answers that, so discovery burns a whole
// retry cycle, and then tries suite 17 first, which ipmi_sim rejects.
const cipherSuite = types.CipherSuiteID3

// Config says how to reach one BMC.
type Config struct {
	Address  string        // host:port or host; the port defaults to 623
	Username string        // at most 16 bytes
	Password string        // at most 20 bytes
	Timeout  time.Duration // per operation; default 10s
}

// BMC is one host's BMC. It keeps no connection: every method opens and
// closes its own session, so a BMC is safe for concurrent use.
type BMC struct {
	host     string
	port     int
	user     string
	password string
	timeout  time.Duration
}

var _ fencing.Device = (*BMC)(nil)

// New checks cfg; it does not connect.
func New(cfg Config) (*BMC, error) {
	host, port, err := splitAddress(cfg.Address)
	if err != nil {
		return nil, err
	}
	if cfg.Username == "" {
		return nil, errors.New("ipmi: username is empty")
	}
	if len(cfg.Username) > rmcpplus.MaxUserNameLength {
		return nil, fmt.Errorf("ipmi: username is %d bytes long, IPMI allows %d", len(cfg.Username), rmcpplus.MaxUserNameLength)
	}
	if len(cfg.Password) > maxPasswordLength {
		return nil, fmt.Errorf("ipmi: password is %d bytes long, IPMI v2.0 allows %d", len(cfg.Password), maxPasswordLength)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("ipmi: negative timeout %v", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &BMC{host: host, port: port, user: cfg.Username, password: cfg.Password, timeout: cfg.Timeout}, nil
}

func splitAddress(addr string) (string, int, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", 0, errors.New("ipmi: address is empty")
	}
	if strings.Contains(addr, "@") {
		// Not echoed: what precedes the @ may be a password.
		return "", 0, errors.New("ipmi: the address must not carry credentials (user@ or user:password@): give the username and password on their own")
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		// No port: a bare host name, IPv4 address, or IPv6 address
		// (with or without brackets).
		host, portStr = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), ""
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
			return "", 0, fmt.Errorf("ipmi: address %q: want host:port or host", addr)
		}
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return "", 0, fmt.Errorf("ipmi: address %q: bad host", addr)
	}
	port := DefaultPort
	if portStr != "" {
		port, err = strconv.Atoi(portStr)
		if err != nil || port < 1 || port > 65535 {
			return "", 0, fmt.Errorf("ipmi: address %q: bad port", addr)
		}
	}
	return host, port, nil
}

// Driver names the protocol.
func (b *BMC) Driver() string { return "ipmi" }

// String is the BMC's address as ipmi://host:port. It never holds the
// credentials.
func (b *BMC) String() string { return "ipmi://" + b.addr() }

func (b *BMC) addr() string { return net.JoinHostPort(b.host, strconv.Itoa(b.port)) }

// PowerState reads the chassis power state (Get Chassis Status).
func (b *BMC) PowerState(ctx context.Context) (fencing.PowerState, error) {
	state := fencing.PowerUnknown
	err := b.do(ctx, "power state", func(ctx context.Context, c *client.Client) error {
		on, err := powerIsOn(ctx, c)
		if err != nil {
			return err
		}
		state = fencing.PowerOff
		if on {
			state = fencing.PowerOn
		}
		return nil
	})
	if err != nil {
		return fencing.PowerUnknown, err
	}
	return state, nil
}

// PowerOff cuts the power at once (Chassis Control: power down). A chassis
// that is already off is left alone and that is success. PowerOff does not
// wait for the power to drop: the caller reads PowerState back.
func (b *BMC) PowerOff(ctx context.Context) error {
	return b.do(ctx, "power off", func(ctx context.Context, c *client.Client) error {
		on, err := powerIsOn(ctx, c)
		if err != nil {
			return err
		}
		if !on {
			return nil
		}
		if _, err := c.ChassisControl(ctx, chassis.ChassisControlPowerDown); err != nil {
			return fmt.Errorf("chassis control power down: %w", err)
		}
		return nil
	})
}

func powerIsOn(ctx context.Context, c *client.Client) (bool, error) {
	st, err := c.GetChassisStatus(ctx)
	if err != nil {
		return false, fmt.Errorf("get chassis status: %w", err)
	}
	return st.PowerIsOn, nil
}

// do runs one operation in a session of its own. go-ipmi honours the
// context's deadline, but do does not rely on it alone: the operation runs
// in a goroutine, do returns as soon as the context is done, and closing
// the UDP socket (which do owns, see watch) stops whatever go-ipmi was
// still waiting for. That goroutine then ends within closeTimeout.
func (b *BMC) do(ctx context.Context, op string, fn func(context.Context, *client.Client) error) error {
	if err := ctx.Err(); err != nil {
		return b.fail(ctx, op, nil, err)
	}
	opCtx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()

	w := &watch{ctx: opCtx, addr: b.addr()}
	c, err := client.NewClient(b.host, b.port, b.user, b.password)
	if err != nil {
		return b.fail(ctx, op, nil, err)
	}
	per := min(attemptTimeout, max(b.timeout/3, 50*time.Millisecond))
	c.WithUDPProxy(w).
		WithTimeout(per).
		WithRetry(int(b.timeout/per) + 1). // the deadline, not the count, ends the retries
		WithCipherSuiteID(cipherSuite).
		WithMaxPrivilegeLevel(types.PrivilegeLevelOperator) // enough for Chassis Control

	done := make(chan error, 1)
	go func() {
		defer w.close()
		defer func() {
			if p := recover(); p != nil { // a go-ipmi bug must not take the process down
				select {
				case done <- fmt.Errorf("go-ipmi panicked: %v", p):
				default: // the result was already sent
				}
			}
		}()
		if err := c.Connect(opCtx); err != nil {
			// No session (and no keep-alive goroutine) to close: only
			// the socket, which the deferred w.close releases.
			done <- fmt.Errorf("open session: %w", err)
			return
		}
		done <- fn(opCtx, c)
		// Close the session even when the caller has given up, on a
		// budget of its own: a BMC that keeps dead sessions runs out.
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(opCtx), closeTimeout)
		_ = c.Close(cctx) // also stops go-ipmi's keep-alive goroutine
		ccancel()
	}()

	select {
	case err := <-done:
		if err == nil {
			return nil
		}
		return b.fail(ctx, op, w, err)
	case <-opCtx.Done():
		w.close() // unblock go-ipmi at once
		select {
		case err := <-done: // finished meanwhile: its own result is better
			if err == nil {
				return nil
			}
			return b.fail(ctx, op, w, err)
		default:
			return b.fail(ctx, op, w, opCtx.Err())
		}
	}
}
