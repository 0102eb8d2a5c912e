// Package xapisim is a simulated XenServer/XCP-ng pool: xapi on every host
// (JSON-RPC and XML-RPC over real loopback listeners), xhad's XenHA
// decisions, a Redfish-style BMC per host, CloudStack's storage heartbeat,
// and fault injection through a Go API and an HTTP control endpoint.
//
// Everything runs on a Clock, so tests drive XenHA's timeout T and xapi's
// 600 s liveness interval with a FakeClock instead of waiting.
//
// As on a real network, a powered-off, hung or cut-off host is silent: its
// connections hang until the caller's own deadline (Config.RefuseWhenDown
// opts into instant refusal). A running slave whose master dies keeps
// answering HOST_IS_SLAVE naming it; only an xapi start (boot, reboot,
// RestartToolstack, or a master_connection_retry_timeout that expires)
// without its master puts a slave in emergency mode.
package xapisim

import (
	"errors"
	"fmt"
	"math/rand"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config describes the simulated world. Zero values get the defaults noted.
type Config struct {
	Hosts      int // members of the pool (default 3)
	Standalone int // extra hosts, each the master of its own one-host pool (for pool.join)
	VMsPerHost int // guest VMs running on each member at start (default 2; -1 for none)

	Username string // xapi root account (default "root")
	Password string // its password (default "xenroot")

	BMCUsername string // Redfish BMC account (default "admin")
	BMCPassword string // its password (default "bmcpass")

	Clock Clock // default RealClock
	Seed  int64 // UUIDs derive from it: the same seed gives the same pool

	SharedSRTypes []string // shared SRs, by driver type (default one "lvmoiscsi")

	DeadInterval     time.Duration // without XenHA, host_metrics.live falls after this (xapi: 600 s)
	RebootTime       time.Duration // a rebooting host is unreachable this long (default 120 s)
	AuthFailureDelay time.Duration // xapi waits ~5 s before SESSION_AUTHENTICATION_FAILED (default 0)
	DefaultHATimeout time.Duration // T when enable_ha gives none (xapi: 60 s)

	HeartbeatInterval time.Duration // CloudStack's xenheartbeat.sh interval (default 60 s)
	HeartbeatTimeout  time.Duration // it reboots its host after this long without a write (default 120 s)
	// DisableHeartbeatSelfFence stops the simulated xenheartbeat.sh from
	// rebooting a host that cannot write its heartbeat.
	DisableHeartbeatSelfFence bool

	EventRetention int // events kept per pool for event.from (default 4096)

	// RefuseWhenDown makes a powered-off host refuse connections at once
	// (its listener closes, requests under way are dropped). By default a
	// powered-off host is silent, as on a real network: connections are
	// accepted and never answered, so only the caller's own timeout ends
	// them. SetRefuseWhenDown changes it per host.
	RefuseWhenDown bool
	// MasterConnectionRetryTimeout is xapi's master_connection_retry_timeout
	// on every host: a slave that cannot reach its master for this long
	// restarts its xapi (and, master still unreachable, enters emergency
	// mode). Zero or negative: retry forever, xapi's default (-1).
	// SetMasterConnectionRetryTimeout changes it at run time.
	MasterConnectionRetryTimeout time.Duration
	// EmergencyRetryInterval is how often a slave in emergency mode tries
	// its master again (xapi.ml server_init: 5 s after a failed Pool.hello).
	// Default 5 s.
	EmergencyRetryInterval time.Duration

	// Audit, when set, is told of every destructive call a client makes
	// (never of the fault API), under the simulator's lock: it must not
	// call back into the simulator.
	Audit func(AuditRecord)

	// ControlAddr is where the control endpoint listens (default
	// 127.0.0.1 on a free port).
	ControlAddr string
	// Port is every host's XAPI port (each host has its own address, so
	// one port serves all, as 443 does on a real pool); 0 picks a free
	// port per host. SamePort picks one free port for all of them.
	Port     int
	SamePort bool

	Logger hclog.Logger
}

func (c *Config) defaults() error {
	if c.Hosts == 0 {
		c.Hosts = 3
	}
	if c.Hosts < 1 || c.Hosts > 64 {
		return fmt.Errorf("xapisim: Hosts must be 1..64, got %d", c.Hosts)
	}
	if c.Standalone < 0 || c.Standalone > 16 {
		return fmt.Errorf("xapisim: Standalone must be 0..16, got %d", c.Standalone)
	}
	switch {
	case c.VMsPerHost == 0:
		c.VMsPerHost = 2
	case c.VMsPerHost < 0:
		c.VMsPerHost = 0
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Username, "root")
	def(&c.Password, "xenroot")
	def(&c.BMCUsername, "admin")
	def(&c.BMCPassword, "bmcpass")
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.SharedSRTypes == nil {
		c.SharedSRTypes = []string{"lvmoiscsi"}
	}
	dur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	dur(&c.DeadInterval, 600*time.Second)
	dur(&c.RebootTime, 120*time.Second)
	dur(&c.DefaultHATimeout, 60*time.Second)
	dur(&c.HeartbeatInterval, 60*time.Second)
	dur(&c.HeartbeatTimeout, 120*time.Second)
	if c.EmergencyRetryInterval < 0 {
		return fmt.Errorf("xapisim: EmergencyRetryInterval must not be negative, got %v", c.EmergencyRetryInterval)
	}
	dur(&c.EmergencyRetryInterval, 5*time.Second)
	if c.EventRetention == 0 {
		c.EventRetention = 4096
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}

// Sim is a running simulated world: one pool of Config.Hosts members plus
// any standalone hosts. All state sits behind one mutex; the simulated
// hosts are small enough that this is never the bottleneck.
type Sim struct {
	mu    sync.Mutex
	cfg   Config
	clock Clock
	log   hclog.Logger
	rng   *rand.Rand

	hosts    []*simHost
	pools    []*simPool
	links    map[[2]int]time.Time // cut host links, by host index pair, since when
	sessions map[string]*session

	retryTimeout time.Duration // master_connection_retry_timeout; <= 0: never

	control *controlServer
	closed  bool

	// done is closed by Close: every hung or silent request waits on it
	// too, so none outlives the simulator.
	done chan struct{}
	// Requests being served by the host and BMC listeners, so that Close
	// can wait for the ones it released.
	reqMu      sync.Mutex
	reqClosing bool
	reqs       sync.WaitGroup
	reqCount   atomic.Int64
}

// nextIP hands every simulated host (and BMC) of this process its own
// loopback address, so a HOST_IS_SLAVE redirect names exactly one member,
// as a real management IP does.
var nextIP atomic.Uint32

func allocIP() string {
	for {
		n := nextIP.Add(1)
		b2, b3 := byte(n>>8), byte(n)
		if b3 == 0 || b3 == 255 {
			continue
		}
		return fmt.Sprintf("127.77.%d.%d", b2, b3)
	}
}

// New builds the world and starts every listener.
func New(cfg Config) (*Sim, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Sim{
		cfg:      cfg,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		rng:      rand.New(rand.NewSource(cfg.Seed)),
		links:    map[[2]int]time.Time{},
		sessions: map[string]*session{},
		done:     make(chan struct{}),

		retryTimeout: cfg.MasterConnectionRetryTimeout,
	}
	s.mu.Lock()
	s.build()
	s.mu.Unlock()

	for _, h := range s.hosts {
		if err := h.startListeners(s); err != nil {
			s.Close()
			return nil, err
		}
		if s.cfg.SamePort && s.cfg.Port == 0 { // the first host's free port, for all
			_, port, _ := net.SplitHostPort(h.srv.addr)
			s.cfg.Port, _ = strconv.Atoi(port)
		}
	}
	ctl, err := newControlServer(s)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.control = ctl

	s.mu.Lock()
	for _, p := range s.pools {
		s.settle(p)
	}
	s.mu.Unlock()
	return s, nil
}

// build creates the initial objects: the main pool with its shared SRs and
// VMs, then one one-host pool per standalone host.
func (s *Sim) build() {
	now := s.clock.Now()
	main := s.newPool("pool-0")
	for range s.cfg.Hosts {
		s.newHost(main, now)
	}
	for i, typ := range s.cfg.SharedSRTypes {
		sr := s.newSR(main, fmt.Sprintf("shared-%s-%d", typ, i), typ, true, nil)
		for _, h := range main.hosts {
			s.newPBD(main, h, sr)
		}
	}
	for _, h := range main.hosts {
		for j := range s.cfg.VMsPerHost {
			s.newVM(main, fmt.Sprintf("vm-%s-%d", h.name, j), h)
		}
	}
	main.master = main.hosts[0]
	for _, h := range main.hosts {
		h.isMaster = h == main.master
		h.masterAddr = main.master.address
	}
	for i := range s.cfg.Standalone {
		p := s.newPool(fmt.Sprintf("standalone-%d", i))
		h := s.newHost(p, now)
		p.master, h.isMaster, h.masterAddr = h, true, h.address
	}
}

func (s *Sim) uuid() string {
	b := make([]byte, 16)
	s.rng.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *Sim) newPool(name string) *simPool {
	p := &simPool{uuid: s.uuid(), name: name, ftt: 1}
	p.ref = "OpaqueRef:" + p.uuid
	p.events = newEventLog(s.cfg.EventRetention)
	s.pools = append(s.pools, p)
	return p
}

func (s *Sim) newHost(p *simPool, now time.Time) *simHost {
	idx := len(s.hosts)
	h := &simHost{
		idx:        idx,
		uuid:       s.uuid(),
		name:       fmt.Sprintf("host-%d", idx),
		address:    allocIP(),
		bmcIP:      allocIP(),
		powered:    true,
		enabled:    true,
		live:       true,
		hbStart:    now,
		hbLast:     now,
		bootedAt:   now,
		refuseDown: s.cfg.RefuseWhenDown,
	}
	h.ref = "OpaqueRef:" + h.uuid
	h.metricsUUID = s.uuid()
	h.metricsRef = "OpaqueRef:" + h.metricsUUID
	s.hosts = append(s.hosts, h)
	p.hosts = append(p.hosts, h)
	h.pool = p
	dom0 := s.newVM(p, "Control domain on "+h.name, h)
	dom0.isControlDomain = true
	h.dom0 = dom0
	h.localSR = s.newSR(p, "Local storage on "+h.name, "ext", false, h)
	s.newPBD(p, h, h.localSR)
	return h
}

func (s *Sim) newSR(p *simPool, name, typ string, shared bool, local *simHost) *simSR {
	sr := &simSR{uuid: s.uuid(), name: name, typ: typ, shared: shared, local: local}
	sr.ref = "OpaqueRef:" + sr.uuid
	p.srs = append(p.srs, sr)
	return sr
}

func (s *Sim) newPBD(p *simPool, h *simHost, sr *simSR) *simPBD {
	pbd := &simPBD{uuid: s.uuid(), host: h, sr: sr, attached: true}
	pbd.ref = "OpaqueRef:" + pbd.uuid
	p.pbds = append(p.pbds, pbd)
	return pbd
}

func (s *Sim) newVM(p *simPool, name string, on *simHost) *simVM {
	vm := &simVM{uuid: s.uuid(), name: name, powerState: "Running", residentOn: on}
	vm.ref = "OpaqueRef:" + vm.uuid
	p.vms = append(p.vms, vm)
	return vm
}

// Close stops every listener and ends every request still held: hung,
// silent (a powered-off or cut-off host), slowed or waiting in event.from.
// It returns once those requests have let go (or after a few seconds).
func (s *Sim) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	hosts := append([]*simHost(nil), s.hosts...)
	s.mu.Unlock()

	s.reqMu.Lock()
	s.reqClosing = true // no request starts from now on
	s.reqMu.Unlock()
	for _, h := range hosts {
		h.stopListeners()
	}
	if s.control != nil {
		s.control.close()
	}
	close(s.done)

	released := make(chan struct{})
	go func() { s.reqs.Wait(); close(released) }()
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		s.log.Warn("requests still held after Close", "count", s.reqCount.Load())
	}
}

// enterRequest registers a request a listener is about to serve; false
// means the simulator is closing and the request must be dropped.
func (s *Sim) enterRequest() bool {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	if s.reqClosing {
		return false
	}
	s.reqs.Add(1)
	s.reqCount.Add(1)
	return true
}

func (s *Sim) leaveRequest() {
	s.reqCount.Add(-1)
	s.reqs.Done()
}

// HostInfo is what a test or an operator needs to reach one simulated host.
type HostInfo struct {
	Index   int    `json:"index"`
	UUID    string `json:"uuid"`
	Name    string `json:"name"`
	Address string `json:"address"` // management IP, as host.address
	URL     string `json:"url"`     // XAPI base URL (JSON-RPC at /jsonrpc, XML-RPC at /)
	BMCURL  string `json:"bmc_url"` // Redfish service root is BMCURL + "/redfish/v1"
	Pool    string `json:"pool"`    // pool uuid
}

// Info describes the world for clients: `xenha-bridge sim` prints it.
type Info struct {
	PoolUUID    string     `json:"pool_uuid"`
	Hosts       []HostInfo `json:"hosts"`      // members of the main pool
	Standalone  []HostInfo `json:"standalone"` // one-host pools
	ControlURL  string     `json:"control_url"`
	Username    string     `json:"username"`
	Password    string     `json:"password"`
	BMCUsername string     `json:"bmc_username"`
	BMCPassword string     `json:"bmc_password"`
}

// Info returns addresses and credentials. The pool is the one created first;
// hosts that joined or left it since are listed where they are now.
func (s *Sim) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	main := s.pools[0]
	in := Info{
		PoolUUID: main.uuid, ControlURL: s.control.url,
		Username: s.cfg.Username, Password: s.cfg.Password,
		BMCUsername: s.cfg.BMCUsername, BMCPassword: s.cfg.BMCPassword,
		Hosts: []HostInfo{}, Standalone: []HostInfo{},
	}
	for _, h := range s.hosts {
		hi := h.info()
		if h.pool == main {
			in.Hosts = append(in.Hosts, hi)
		} else {
			in.Standalone = append(in.Standalone, hi)
		}
	}
	return in
}

// MemberURLs lists the XAPI URLs of the main pool's members.
func (s *Sim) MemberURLs() []string {
	var urls []string
	for _, h := range s.Info().Hosts {
		urls = append(urls, h.URL)
	}
	return urls
}

// ErrNoSuchHost is returned by the fault API for an unknown host index or uuid.
var ErrNoSuchHost = errors.New("xapisim: no such host")

func (s *Sim) host(i int) (*simHost, error) {
	if i < 0 || i >= len(s.hosts) {
		return nil, fmt.Errorf("%w: index %d", ErrNoSuchHost, i)
	}
	return s.hosts[i], nil
}

// HostIndex resolves a host uuid, name or decimal index to its index.
func (s *Sim) HostIndex(id string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.hosts {
		if h.uuid == id || h.name == id || fmt.Sprint(h.idx) == id || h.address == id {
			return h.idx, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrNoSuchHost, id)
}

func (s *Sim) hostByAddress(addr string) *simHost {
	for _, h := range s.hosts {
		if h.address == addr {
			return h
		}
	}
	return nil
}

func (s *Sim) hostByRef(ref string) *simHost {
	for _, h := range s.hosts {
		if h.ref == ref {
			return h
		}
	}
	return nil
}

func sortedByUUID(hs []*simHost) []*simHost {
	out := append([]*simHost(nil), hs...)
	sort.Slice(out, func(i, j int) bool { return out[i].uuid < out[j].uuid })
	return out
}

// listenOn binds addr, reusing the port a host had before it went down.
func listenOn(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}
