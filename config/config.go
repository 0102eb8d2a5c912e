// Package config loads and validates the xenha-bridge configuration file,
// the YAML file given to `xenha-bridge serve --config FILE`.
//
// Load reads the file, Parse does the same from bytes. Both reject what they
// do not understand: an unknown key is an error naming the key and its line,
// a bad value is an error naming the field by its path
// (pools[1].storage_timeout) and, when it comes from the file, its line.
// Nothing is accepted silently and nothing panics.
//
// Secrets never live in the YAML file itself: pool passwords and the API
// token are read from the files it names (password_file, token_file), which
// must not be readable by "other". Once loaded, a secret is reachable only
// through Pool.Password and Auth.Token; it is kept out of every error string
// and out of fmt's output (%v, %+v, %#v, %s...) of every type here.
package config

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Defaults.
const (
	DefaultListen           = "127.0.0.1:50051"
	DefaultLogLevel         = "info"
	DefaultRetention        = 10000
	DefaultSubscriberBuffer = 1024
	DefaultStorageTimeout   = 120 * time.Second
	DefaultProbeInterval    = 30 * time.Second
	// DefaultMasterProbeInterval: the master is checked this often.
	DefaultMasterProbeInterval = 2 * time.Second
	// DefaultAutopilotDelay: how long the master stays lost before
	// autopilot elects. Short, because the BMC, not the wait, decides:
	// a master that has power is never replaced under the default policy.
	DefaultAutopilotDelay = 3 * time.Second
)

// What an election does with a master that does not answer while its BMC
// reports power on (pools[].unreachable_master).
const (
	// UnreachableRefuse: refuse; the master may be alive (the default).
	UnreachableRefuse = "refuse"
	// UnreachableFence: power it off through its BMC, read it back, then
	// promote.
	UnreachableFence = "fence"
)

// Limits.
const (
	MaxRetention        = 10_000_000
	MaxSubscriberBuffer = 1_000_000
	MinProbeInterval    = time.Second
	MaxPoolNameLen      = 63
)

// Pool policies: who may act on a pool (see the Policy enum of the API).
const (
	// PolicyAuto lets XenHA lead when it is on, the bridge when it is off.
	PolicyAuto = "auto"
	// PolicyRequireXenHA: XenHA must be on; when it is off nobody acts.
	PolicyRequireXenHA = "require_xenha"
	// PolicyRequireCloudStack: the bridge leads; a pool with XenHA on is a
	// conflict that is reported.
	PolicyRequireCloudStack = "require_cloudstack"
	// PolicyObserve: watch and report only, never act.
	PolicyObserve = "observe"
)

// Policies lists the valid values of Pool.Policy.
var Policies = []string{PolicyAuto, PolicyRequireXenHA, PolicyRequireCloudStack, PolicyObserve}

// LogLevels lists the valid values of Log.Level.
var LogLevels = []string{"trace", "debug", "info", "warn", "error"}

// Config is the whole configuration file.
type Config struct {
	// Listen is the gRPC listen address, host:port.
	Listen  string
	Log     Log
	TLS     ServerTLS
	Auth    Auth
	Events  Events
	Journal Journal
	// Lease: several management servers (journal.store mysql).
	Lease   Lease
	Metrics Metrics
	// Pools are the pools watched from start-up. More may be attached at
	// run time.
	Pools []Pool
}

// Metrics is the Prometheus endpoint: plaintext HTTP without
// authentication, so off by default and on loopback unless allowed.
type Metrics struct {
	// Listen is the HTTP address serving /metrics, host:port. Empty: off.
	Listen string
	// AllowRemote permits a Listen address that is not loopback.
	AllowRemote bool
}

// DefaultMetricsPort is the port the documentation suggests for Listen.
const DefaultMetricsPort = 9102

// Enabled reports whether the metrics are served.
func (m Metrics) Enabled() bool { return m.Listen != "" }

// Journal is where the bridge records every destructive step, the result
// of each request id and each pool's epoch.
type Journal struct {
	// Store is bolt (default: a file of this bridge's, for one management
	// server) or mysql (shared by the bridges of several management
	// servers, in CloudStack's database; pools are then leased).
	Store string
	// Path of the embedded journal file (bbolt). Default
	// /var/lib/xenha-bridge/journal.db.
	Path  string
	MySQL MySQL
}

// Journal stores.
const (
	StoreBolt  = "bolt"
	StoreMySQL = "mysql"
)

// DefaultJournalPath is Journal.Path's default.
const DefaultJournalPath = "/var/lib/xenha-bridge/journal.db"

// MySQL is the shared store's database.
type MySQL struct {
	// DSN in go-sql-driver/mysql's form, without the password:
	// xenha@tcp(db.example:3306)/cloud_xenha.
	DSN string
	// PasswordFile holds the database user's password.
	PasswordFile string
	// Timeout bounds every statement (default 5 s).
	Timeout time.Duration

	password *secret
}

// Password returns the password read from PasswordFile.
func (m MySQL) Password() string { return m.password.reveal() }

// DefaultMySQLTimeout is MySQL.Timeout's default.
const DefaultMySQLTimeout = 5 * time.Second

// Lease tunes the pool leases of several management servers: only the
// bridge holding a pool's lease acts on it.
type Lease struct {
	// ID names this bridge among those sharing the database (default: the
	// host name). It must differ on every management server.
	ID string
	// Advertise is the host:port where this bridge serves gRPC, told to
	// callers that reach another bridge (default: listen).
	Advertise string
	// Duration is how long a lease lasts after each renewal, on the
	// database's clock (default 15 s).
	Duration time.Duration
	// Renew is the interval between renewals (default 2 s).
	Renew time.Duration
	// Margin: the holder stops acting this long before its lease can
	// expire (default 5 s).
	Margin time.Duration
}

// Lease defaults (client-go's leader election uses the same numbers).
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultLeaseRenew    = 2 * time.Second
	DefaultLeaseMargin   = 5 * time.Second
	MinLeaseMargin       = time.Second
	MinLeaseRenew        = 100 * time.Millisecond
)

// Fencing tunes how the bridge fences the hosts of a pool it controls.
type Fencing struct {
	// Levels are tried in order: bmc, xapi-soft, heartbeat-wait.
	Levels []string
	// Delay is waited (and the witnesses asked again) before acting.
	Delay time.Duration
	// StormPercent: refuse to fence when more than this share of the pool
	// looks dead at once (the fault is likely the bridge's). Default 50.
	StormPercent int
	// HeartbeatTimeout is CloudStack's xenserver.heartbeat.timeout.
	HeartbeatTimeout time.Duration
	// BMCs are the hosts' out-of-band controllers.
	BMCs []BMC
}

// BMC is one host's out-of-band controller.
type BMC struct {
	// Host is the host's UUID, name or management address.
	Host string
	// Driver is ipmi or redfish.
	Driver string
	// Address is host:port for IPMI, a base URL for Redfish.
	Address  string
	Username string
	// PasswordFile holds the BMC password.
	PasswordFile string
	// CAFile is a PEM bundle of CAs to trust instead of the system roots
	// (Redfish only), e.g. the BMC's own self-signed certificate.
	CAFile string
	// PinSHA256 is the SHA-256 fingerprint of the BMC's certificate
	// (Redfish only). Without CAFile the pin alone is the verification.
	PinSHA256 string

	password *secret
}

// Password returns the BMC password read from PasswordFile.
func (b *BMC) Password() string { return b.password.reveal() }

// FencingLevels lists the valid level names.
var FencingLevels = []string{"bmc", "xapi-soft", "heartbeat-wait"}

// Log configures logging.
type Log struct {
	// Level is one of trace, debug, info, warn, error.
	Level string
	// JSON selects JSON log lines instead of text.
	JSON bool
}

// ServerTLS is the gRPC listener's TLS. All empty means plaintext, which is
// allowed on a loopback address only.
type ServerTLS struct {
	CertFile string
	KeyFile  string
	// ClientCAFile, when set, makes client certificates signed by these CAs
	// mandatory (mutual TLS).
	ClientCAFile string
}

// Enabled reports whether the listener serves TLS.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" && t.KeyFile != "" }

// MutualTLS reports whether clients must present a certificate.
func (t ServerTLS) MutualTLS() bool { return t.Enabled() && t.ClientCAFile != "" }

// Auth configures API authentication.
type Auth struct {
	// TokenFile holds the bearer token every RPC but the health check must
	// carry. Empty: no token is required.
	TokenFile string

	token *secret // loaded from TokenFile
}

// Token returns the bearer token loaded from TokenFile, "" if none.
func (a Auth) Token() string { return a.token.reveal() }

// Format prints the Auth with the token redacted, for every verb.
func (a Auth) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, "config.authView", "config.Auth", authView{
		TokenFile: a.TokenFile,
		Token:     a.token.redacted(),
	})
}

// String returns the Auth as %v prints it: the token redacted.
func (a Auth) String() string { return fmt.Sprint(a) }

// GoString returns the Auth as %#v prints it: the token redacted.
func (a Auth) GoString() string { return fmt.Sprintf("%#v", a) }

type authView struct {
	TokenFile string
	Token     string
}

// Events configures the event history and the event streams.
type Events struct {
	// Retention is how many events are kept so that a PoolEvents stream
	// can resume.
	Retention int
	// SubscriberBuffer is how many events may queue for one stream before
	// the slow consumer is cut off.
	SubscriberBuffer int
}

// Pool is one XenServer pool to watch.
type Pool struct {
	// Name is unique in the bridge: letters, digits, '.', '_', '-', at
	// most 63 characters.
	Name string
	// Members are the XAPI URLs of every member of the pool.
	Members  []string
	Username string
	// PasswordFile is where the password was read from ("" for a pool
	// attached at run time with SetPassword).
	PasswordFile string
	// Policy is one of the Policy* constants.
	Policy string
	// StorageTimeout is the storage failover time of the pool.
	StorageTimeout time.Duration
	// ProbeInterval is how often every member is probed.
	ProbeInterval time.Duration
	// MasterProbeInterval is how often the master is asked a cheap
	// question on the bridge's session (a dead master is silent: this is
	// what notices it). Default 2 s.
	MasterProbeInterval time.Duration
	// UnreachableMaster is what an election does with a master that does
	// not answer while its BMC reports power on: UnreachableRefuse (the
	// default) or UnreachableFence.
	UnreachableMaster string
	TLS               PoolTLS
	Fencing           Fencing
	// PreferredMasters (UUIDs, names or addresses) are tried first when
	// the bridge elects a master.
	PreferredMasters []string
	// Autopilot makes the bridge elect by itself once the master has been
	// lost for AutopilotDelay (XenHA off only). Default off.
	Autopilot      bool
	AutopilotDelay time.Duration

	password *secret
}

// PoolTLS says how the members' certificates are verified.
type PoolTLS struct {
	// CAFile is a PEM bundle of CAs to trust instead of the system roots.
	CAFile string
	// PinSHA256 is the SHA-256 fingerprint of the members' certificate.
	PinSHA256 string
	// AllowPlainHTTP permits http:// members.
	AllowPlainHTTP bool
}

// NewPool returns a pool with the defaults filled in (policy auto, storage
// timeout 120s, probe interval 30s), for pools attached at run time.
// Call Validate before using it.
func NewPool(name string, members []string, username, password string) *Pool {
	p := defaultPool()
	p.Name = name
	p.Members = members
	p.Username = username
	p.SetPassword(password)
	return &p
}

func defaultPool() Pool {
	return Pool{
		Policy:              PolicyAuto,
		StorageTimeout:      DefaultStorageTimeout,
		ProbeInterval:       DefaultProbeInterval,
		MasterProbeInterval: DefaultMasterProbeInterval,
		UnreachableMaster:   UnreachableRefuse,
		AutopilotDelay:      DefaultAutopilotDelay,
		Fencing: Fencing{
			Levels:           append([]string(nil), FencingLevels...),
			StormPercent:     50,
			HeartbeatTimeout: 120 * time.Second,
		},
	}
}

// Password returns the pool's password, "" if none was loaded or set.
func (p *Pool) Password() string { return p.password.reveal() }

// SetPassword sets the password of a pool attached at run time.
func (p *Pool) SetPassword(pw string) {
	p.password = newSecret(pw)
}

// Format prints the Pool with the password redacted, for every verb.
func (p Pool) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, "config.poolView", "config.Pool", poolView{
		Name:           p.Name,
		Members:        p.Members,
		Username:       p.Username,
		PasswordFile:   p.PasswordFile,
		Password:       p.password.redacted(),
		Policy:         p.Policy,
		StorageTimeout: p.StorageTimeout,
		ProbeInterval:  p.ProbeInterval,
		TLS:            p.TLS,
	})
}

// String returns the Pool as %v prints it: the password redacted.
func (p Pool) String() string { return fmt.Sprint(p) }

// GoString returns the Pool as %#v prints it: the password redacted.
func (p Pool) GoString() string { return fmt.Sprintf("%#v", p) }

type poolView struct {
	Name           string
	Members        []string
	Username       string
	PasswordFile   string
	Password       string
	Policy         string
	StorageTimeout time.Duration
	ProbeInterval  time.Duration
	TLS            PoolTLS
}

// formatRedacted prints view, a copy of a type whose secret is replaced by
// "[redacted]", with the caller's verb and flags; %#v shows the real type
// name.
func formatRedacted(f fmt.State, verb rune, viewName, realName string, view any) {
	s := fmt.Sprintf(fmt.FormatString(f, verb), view)
	if verb == 'v' && f.Flag('#') {
		s = strings.Replace(s, viewName, realName, 1)
	}
	_, _ = io.WriteString(f, s)
}

// Default returns the configuration of an empty file: listen on
// 127.0.0.1:50051 in plaintext, log at info, default event limits, no pools.
func Default() *Config {
	return &Config{
		Listen:  DefaultListen,
		Log:     Log{Level: DefaultLogLevel},
		Events:  Events{Retention: DefaultRetention, SubscriberBuffer: DefaultSubscriberBuffer},
		Journal: Journal{Store: StoreBolt, Path: DefaultJournalPath, MySQL: MySQL{Timeout: DefaultMySQLTimeout}},
		Lease:   Lease{Duration: DefaultLeaseDuration, Renew: DefaultLeaseRenew, Margin: DefaultLeaseMargin},
	}
}

const redactedText = "[redacted]"

// secret holds a password or token. It is only ever stored as a pointer
// in an unexported field: fmt cannot call methods through an unexported
// field, but it prints a pointer to a string as an address, never as what
// it points to, whatever the verb and depth. (A pointer to a struct would
// not do: a bad verb such as %s prints it as &{...}.) Its own methods
// redact too, for code inside this package.
type secret string

func newSecret(s string) *secret {
	if s == "" {
		return nil
	}
	v := secret(s)
	return &v
}

func (s *secret) reveal() string {
	if s == nil {
		return ""
	}
	return string(*s)
}

// redacted is what a printed view shows: "" when there is no secret.
func (s *secret) redacted() string {
	if s == nil || *s == "" {
		return ""
	}
	return redactedText
}

func (s *secret) String() string               { return redactedText }
func (s *secret) GoString() string             { return redactedText }
func (s *secret) Format(f fmt.State, _ rune)   { _, _ = io.WriteString(f, redactedText) }
func (s *secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redactedText + `"`), nil }
func (s *secret) MarshalText() ([]byte, error) { return []byte(redactedText), nil }
