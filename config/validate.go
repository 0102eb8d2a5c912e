package config

import (
	"encoding/hex"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Validate checks the configuration's values: listen address, log level,
// TLS combination, event limits, every pool (Pool.Validate) and that pool
// names are unique. It does not touch the file system; Load and Parse
// also check the files named.
func (c *Config) Validate() error {
	r := &reporter{}
	c.validate(r, true)
	return r.err()
}

// Validate checks a pool on its own: the rules applied to every pool of the
// file, for pools attached at run time. Field paths in its errors are
// relative to the pool (members[1], storage_timeout). The password must be
// set (loaded from password_file, or SetPassword).
func (p *Pool) Validate() error {
	r := &reporter{}
	p.validate(r, "", true)
	return r.err()
}

func (c *Config) validate(r *reporter, checkPasswords bool) {
	validateListen(r, c.Listen, c.TLS)
	if !slices.Contains(LogLevels, c.Log.Level) {
		r.fieldf("log.level", "%s is not a log level: use trace, debug, info, warn or error", quoteShort(c.Log.Level))
	}
	c.TLS.validate(r)
	c.Metrics.validate(r, c.Listen)
	c.Journal.validate(r)
	c.Lease.validate(r, c.Journal.Store)
	if c.Events.Retention < 1 || c.Events.Retention > MaxRetention {
		r.fieldf("events.retention", "must be between 1 and %d (got %d)", MaxRetention, c.Events.Retention)
	}
	if c.Events.SubscriberBuffer < 1 || c.Events.SubscriberBuffer > MaxSubscriberBuffer {
		r.fieldf("events.subscriber_buffer", "must be between 1 and %d (got %d)", MaxSubscriberBuffer, c.Events.SubscriberBuffer)
	}
	first := map[string]int{}
	for i := range c.Pools {
		p := &c.Pools[i]
		path := index("pools", i)
		p.validate(r, path, checkPasswords)
		if p.Name == "" {
			continue
		}
		if j, dup := first[p.Name]; dup {
			at := ""
			if l := r.lineOf(join(index("pools", j), "name")); l > 0 {
				at = " (line " + strconv.Itoa(l) + ")"
			}
			r.fieldf(join(path, "name"), "duplicate pool name %s: already used by pools[%d]%s",
				quoteShort(p.Name), j, at)
			continue
		}
		first[p.Name] = i
	}
}

func validateListen(r *reporter, listen string, tls ServerTLS) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		r.fieldf("listen", "%s is not host:port, e.g. 127.0.0.1:50051", quoteShort(listen))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || port == "" {
		r.fieldf("listen", "port %s of %s must be a number from 0 to 65535", quoteShort(port), quoteShort(listen))
		return
	}
	if host != "" && !validHost(host) {
		r.fieldf("listen", "host %s of %s is not an IP address or a host name", quoteShort(host), quoteShort(listen))
		return
	}
	if tls.CertFile == "" && !IsLoopback(listen) {
		r.fieldf("listen", "refusing plaintext gRPC on non-loopback address %s: configure tls", listen)
	}
}

// validate checks the metrics endpoint: a host:port of its own, on
// loopback unless allow_remote says otherwise.
func (m Metrics) validate(r *reporter, grpcListen string) {
	if m.Listen == "" {
		return
	}
	host, port, err := net.SplitHostPort(m.Listen)
	if err != nil {
		r.fieldf("metrics.listen", "%s is not host:port, e.g. 127.0.0.1:%d", quoteShort(m.Listen), DefaultMetricsPort)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		r.fieldf("metrics.listen", "port %s of %s must be a number from 0 to 65535", quoteShort(port), quoteShort(m.Listen))
		return
	}
	if host != "" && !validHost(host) {
		r.fieldf("metrics.listen", "host %s of %s is not an IP address or a host name", quoteShort(host), quoteShort(m.Listen))
		return
	}
	if !m.AllowRemote && !IsLoopback(m.Listen) {
		r.fieldf("metrics.listen", "refusing to serve metrics on non-loopback address %s: they are plaintext and unauthenticated; "+
			"use 127.0.0.1:%d, or set metrics.allow_remote: true to expose them", m.Listen, DefaultMetricsPort)
		return
	}
	if port != "0" && m.Listen == grpcListen {
		r.fieldf("metrics.listen", "%s is also the gRPC listen address: give the metrics a port of their own (%d)", m.Listen, DefaultMetricsPort)
	}
}

// IsLoopback reports whether a listen address, host:port or a bare host,
// is on the loopback interface: 127.0.0.0/8, ::1 or localhost. An empty
// host (":50051", every interface) is not loopback.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = strings.TrimSuffix(strings.TrimPrefix(listen, "["), "]")
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return addr.Unmap().IsLoopback()
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$`)

// validHost accepts an IP address (with an IPv6 zone) or a DNS name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return len(h) <= 253 && hostnameRE.MatchString(h) && !strings.Contains(h, "..")
}

func (t ServerTLS) validate(r *reporter) {
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		r.fieldf("tls.key_file", "is required with tls.cert_file (the certificate's private key)")
	case t.CertFile == "" && t.KeyFile != "":
		r.fieldf("tls.cert_file", "is required with tls.key_file (the certificate of the key)")
	}
	if t.ClientCAFile != "" && (t.CertFile == "" || t.KeyFile == "") {
		r.fieldf("tls.client_ca_file", "requires tls.cert_file and tls.key_file: client certificates are checked only over TLS")
	}
}

var poolNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func (p *Pool) validate(r *reporter, path string, checkPassword bool) {
	f := func(name string) string { return join(path, name) }

	switch {
	case p.Name == "":
		r.fieldf(f("name"), "is required")
	case len(p.Name) > MaxPoolNameLen || !poolNameRE.MatchString(p.Name):
		r.fieldf(f("name"), "%s is not a valid pool name: use letters, digits, '.', '_' and '-', at most %d characters",
			quoteShort(p.Name), MaxPoolNameLen)
	case p.Name == "." || p.Name == "..":
		r.fieldf(f("name"), "%q is not a valid pool name", p.Name)
	}

	if len(p.Members) == 0 {
		r.fieldf(f("members"), "at least one member is required: the XAPI URL of every host of the pool, e.g. [https://10.0.0.11, https://10.0.0.12]")
	}
	seen := map[string]int{}
	for i, m := range p.Members {
		mp := index(f("members"), i)
		key, msg := checkMember(m, p.TLS.AllowPlainHTTP)
		if msg != "" {
			r.fieldf(mp, "%s", msg)
			continue
		}
		if j, dup := seen[key]; dup {
			r.fieldf(mp, "%s is the same host as members[%d]", quoteShort(displayURL(m)), j)
			continue
		}
		seen[key] = i
	}

	if strings.TrimSpace(p.Username) == "" {
		r.fieldf(f("username"), "is required")
	}
	if checkPassword && p.Password() == "" {
		if p.PasswordFile != "" {
			r.fieldf(f("password"), "is required (password_file %s was not read: use Load or Parse)", p.PasswordFile)
		} else {
			r.fieldf(f("password"), "is required")
		}
	}
	if !slices.Contains(Policies, p.Policy) {
		r.fieldf(f("policy"), "%s is not a policy: use auto, require_xenha, require_cloudstack or observe", quoteShort(p.Policy))
	}
	if p.StorageTimeout <= 0 {
		r.fieldf(f("storage_timeout"), "must be greater than 0 (got %s)", p.StorageTimeout)
	}
	if p.ProbeInterval < MinProbeInterval {
		r.fieldf(f("probe_interval"), "must be at least %s (got %s)", MinProbeInterval, p.ProbeInterval)
	}
	p.Fencing.validate(r, f("fencing"))
	if p.MasterProbeInterval < 500*time.Millisecond || p.MasterProbeInterval > time.Hour {
		r.fieldf(f("master_probe_interval"), "must be between 500ms and 1h (got %s)", p.MasterProbeInterval)
	}
	if p.UnreachableMaster != UnreachableRefuse && p.UnreachableMaster != UnreachableFence {
		r.fieldf(f("unreachable_master"), "must be %q or %q (got %q)", UnreachableRefuse, UnreachableFence, p.UnreachableMaster)
	}
	if p.AutopilotDelay < time.Second || p.AutopilotDelay > time.Hour {
		r.fieldf(f("autopilot_delay"), "must be between 1s and 1h (got %s)", p.AutopilotDelay)
	}
	if p.TLS.PinSHA256 != "" && !validPin(p.TLS.PinSHA256) {
		r.fieldf(f("tls.pin_sha256"), "%s is not a SHA-256 fingerprint: 64 hex digits, colons allowed (openssl x509 -noout -fingerprint -sha256)",
			quoteShort(p.TLS.PinSHA256))
	}
}

func validPin(s string) bool {
	clean := strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	b, err := hex.DecodeString(clean)
	return err == nil && len(b) == 32
}

// checkMember validates a member URL and returns a key that is equal for
// two URLs of the same host, or a message naming the member (without any
// credentials it may hold).
func checkMember(raw string, allowHTTP bool) (key, msg string) {
	shown := quoteShort(displayURL(raw))
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return "", shown + " is not a URL such as https://10.0.0.11"
	}
	if u.User != nil {
		return "", shown + " must not hold a user name or password: the credentials are username and password_file"
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP {
			return "", "plain http member " + shown + " is refused (the login would send the password in clear): use https, or set tls.allow_plain_http: true for a test pool"
		}
	case "":
		return "", shown + " has no scheme: write https://" + strings.TrimPrefix(displayURL(raw), "//")
	default:
		return "", shown + " must be an https:// URL (scheme " + quoteShort(u.Scheme) + ")"
	}
	host := u.Hostname()
	if host == "" {
		return "", shown + " has no host"
	}
	if !validHost(host) {
		return "", shown + ": host " + quoteShort(host) + " is not an IP address or a host name"
	}
	if u.RawQuery != "" || u.ForceQuery {
		return "", shown + " must not have a query (?...)"
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return "", shown + " must not have a fragment (#...)"
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", shown + ": port " + quoteShort(port) + " must be a number from 1 to 65535"
	}
	path := strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/jsonrpc")
	return u.Scheme + "://" + strings.ToLower(net.JoinHostPort(host, port)) + strings.TrimRight(path, "/"), ""
}

// displayURL returns a URL fit for a message: whatever comes before the
// last '@' may be credentials and is replaced (a password may hold '/',
// '?' or '#', so the whole rest of the URL is searched), and so are a
// query and a fragment (?password=...).
func displayURL(raw string) string {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + 3
	}
	if at := strings.LastIndex(raw[start:], "@"); at >= 0 {
		raw = raw[:start] + "[redacted]@" + raw[start+at+1:]
	}
	if i := strings.IndexAny(raw[start:], "?#"); i >= 0 {
		raw = raw[:start+i+1] + "[redacted]"
	}
	return raw
}

func (fc *Fencing) validate(r *reporter, path string) {
	f := func(name string) string { return join(path, name) }
	seen := map[string]bool{}
	for i, l := range fc.Levels {
		if !slices.Contains(FencingLevels, l) {
			r.fieldf(index(f("levels"), i), "%s is not a fencing level: use bmc, xapi-soft or heartbeat-wait", quoteShort(l))
		}
		if seen[l] {
			r.fieldf(index(f("levels"), i), "%s is listed twice", quoteShort(l))
		}
		seen[l] = true
	}
	if len(fc.Levels) == 0 {
		r.fieldf(f("levels"), "name at least one level: bmc, xapi-soft, heartbeat-wait")
	}
	if fc.Delay < 0 || fc.Delay > 10*time.Minute {
		r.fieldf(f("delay"), "must be between 0s and 10m (got %s)", fc.Delay)
	}
	if fc.StormPercent < 1 || fc.StormPercent > 100 {
		r.fieldf(f("storm_percent"), "must be between 1 and 100 (got %d)", fc.StormPercent)
	}
	if fc.HeartbeatTimeout < 10*time.Second || fc.HeartbeatTimeout > time.Hour {
		r.fieldf(f("heartbeat_timeout"), "must be between 10s and 1h (got %s)", fc.HeartbeatTimeout)
	}
	hosts := map[string]int{}
	for i, b := range fc.BMCs {
		bp := index(f("bmcs"), i)
		if b.Host == "" {
			r.fieldf(join(bp, "host"), "is required: the host's UUID, name or management address")
		} else if j, dup := hosts[b.Host]; dup {
			r.fieldf(join(bp, "host"), "%s already has a BMC (bmcs[%d])", quoteShort(b.Host), j)
		}
		hosts[b.Host] = i
		switch b.Driver {
		case "ipmi", "redfish":
		default:
			r.fieldf(join(bp, "driver"), "%s is not a BMC driver: use ipmi or redfish", quoteShort(b.Driver))
		}
		if b.Address == "" {
			r.fieldf(join(bp, "address"), "is required: host:port for IPMI, a URL for Redfish")
		}
		if b.Username == "" {
			r.fieldf(join(bp, "username"), "is required")
		}
		if b.PasswordFile == "" {
			r.fieldf(join(bp, "password_file"), "is required: the file holding the BMC password")
		}
		b.validateTLS(r, bp)
	}
}

// validateTLS checks a BMC's TLS keys as a pool's tls keys are checked.
// Errors name config keys only.
func (b *BMC) validateTLS(r *reporter, bp string) {
	if b.PinSHA256 != "" && !validPin(b.PinSHA256) {
		r.fieldf(join(bp, "pin_sha256"), "%s is not a SHA-256 fingerprint: 64 hex digits, colons allowed (openssl x509 -noout -fingerprint -sha256)",
			quoteShort(b.PinSHA256))
	}
	if b.Driver == "ipmi" {
		for _, kv := range [][2]string{{"ca_file", b.CAFile}, {"pin_sha256", b.PinSHA256}} {
			if kv[1] != "" {
				r.fieldf(join(bp, kv[0]), "applies to redfish BMCs only: IPMI has no TLS (remove it, or use driver: redfish)")
			}
		}
		return
	}
	if b.Driver != "redfish" || b.Address == "" {
		return
	}
	u, err := url.Parse(strings.TrimSpace(b.Address))
	switch {
	case err != nil:
		r.fieldf(join(bp, "address"), "is not a URL: a Redfish BMC's address is https://host[:port]")
	case strings.EqualFold(u.Scheme, "http"):
		r.fieldf(join(bp, "address"), "is plain http: the BMC password would cross the network in clear. Use https://; for a BMC with a self-signed certificate set %s or %s",
			join(bp, "ca_file"), join(bp, "pin_sha256"))
	case !strings.EqualFold(u.Scheme, "https") || u.Host == "":
		r.fieldf(join(bp, "address"), "is not an https URL: a Redfish BMC's address is https://host[:port]")
	}
}

func (j *Journal) validate(r *reporter) {
	switch j.Store {
	case StoreBolt:
		if j.MySQL.DSN != "" || j.MySQL.PasswordFile != "" {
			r.fieldf("journal.mysql", "is set but journal.store is bolt: set journal.store: mysql to share the journal")
		}
	case StoreMySQL:
		m := j.MySQL
		if m.DSN == "" {
			r.fieldf("journal.mysql.dsn", "is required with journal.store mysql: user@tcp(host:3306)/database")
		} else if dsn, err := mysql.ParseDSN(m.DSN); err != nil {
			// The driver's message says what is wrong; the DSN is not shown,
			// it may hold a password by mistake.
			r.fieldf("journal.mysql.dsn", "is not a MySQL DSN (user@tcp(host:3306)/database): %v", err)
		} else {
			if dsn.Passwd != "" {
				r.fieldf("journal.mysql.dsn", "must not hold the password: put it in journal.mysql.password_file")
			}
			if dsn.DBName == "" {
				r.fieldf("journal.mysql.dsn", "names no database: end it with /database")
			}
		}
		if m.PasswordFile == "" {
			r.fieldf("journal.mysql.password_file", "is required: the file holding the database user's password")
		}
		if m.Timeout < 100*time.Millisecond || m.Timeout > time.Minute {
			r.fieldf("journal.mysql.timeout", "must be between 100ms and 1m (got %s)", m.Timeout)
		}
	default:
		r.fieldf("journal.store", "%s is not a journal store: use bolt (one management server) or mysql (several)", quoteShort(j.Store))
	}
}

func (l *Lease) validate(r *reporter, store string) {
	def := Default().Lease
	if store != StoreMySQL {
		if *l != def {
			r.fieldf("lease", "needs journal.store: mysql (leases are shared through the database; one management server needs none)")
		}
		return
	}
	if len(l.ID) > 128 || strings.ContainsAny(l.ID, " \t\n") {
		r.fieldf("lease.id", "must be at most 128 characters without spaces (got %s)", quoteShort(l.ID))
	}
	if l.Advertise != "" {
		if _, _, err := net.SplitHostPort(l.Advertise); err != nil {
			r.fieldf("lease.advertise", "must be host:port (got %s)", quoteShort(l.Advertise))
		}
	}
	switch {
	case l.Margin < MinLeaseMargin:
		r.fieldf("lease.margin", "must be at least %s (got %s): it covers pauses and clock drift", MinLeaseMargin, l.Margin)
	case l.Renew < MinLeaseRenew:
		r.fieldf("lease.renew", "must be at least %s (got %s)", MinLeaseRenew, l.Renew)
	case l.Duration-l.Margin <= l.Renew:
		// client-go's rule: lease duration > renew deadline > retry period.
		r.fieldf("lease.duration", "minus lease.margin (%s) must exceed lease.renew (%s), or the holder gives up before it renews (got duration %s)",
			l.Duration-l.Margin, l.Renew, l.Duration)
	}
}
