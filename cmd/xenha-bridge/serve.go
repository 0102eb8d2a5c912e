package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/cloudstack-xenha/xenha-bridge/config"
	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/membership"
	"github.com/cloudstack-xenha/xenha-bridge/metrics"
	"github.com/cloudstack-xenha/xenha-bridge/mysqlstore"
	"github.com/cloudstack-xenha/xenha-bridge/server"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML configuration file (see config/example.yaml); none: defaults, no pools")
	listen := fs.String("listen", "", "gRPC listen address, overriding the configuration's")
	simulate := fs.Bool("simulate", false, "start an embedded simulated 3-host pool and attach it as \"sim\"")
	simControl := fs.String("sim-control", "127.0.0.1:50052", "with --simulate: the simulator's control endpoint")
	simHosts := fs.Int("sim-hosts", 3, "with --simulate: hosts in the simulated pool")
	simStandalone := fs.Int("sim-standalone", 1, "with --simulate: extra standalone hosts (to try JoinHost)")
	simPort := fs.Int("sim-port", 50080, "with --simulate: the XAPI port of every simulated host (each has its own 127.77.x.y address); 0: free ports")
	journalPath := fs.String("journal", "", "journal file, overriding the configuration's (with --simulate and no configuration: a temporary file)")
	newJournal := fs.Bool("new-journal", false, "start a new, empty journal if the journal file is damaged, empty, or missing where one was "+
		"created (the damaged file is kept beside it); every pool's epochs start again from 1. A healthy journal is always kept")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://ADDR/metrics, overriding the configuration's metrics.listen")
	if err := parseFlags(fs, args, stdout, "Serve the gRPC API for the pools of the configuration (and, with --simulate, an embedded simulated pool)."); err != nil {
		return err
	}

	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	if *listen != "" {
		cfg.Listen = *listen
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
	}
	if *metricsAddr != "" {
		cfg.Metrics.Listen = *metricsAddr
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("--metrics: %w", err)
		}
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name: "xenha-bridge", Level: hclog.LevelFromString(cfg.Log.Level), JSONFormat: cfg.Log.JSON, Output: stderr,
	})
	tlsConf, err := serverTLS(cfg.TLS)
	if err != nil {
		return err
	}

	var jrnl interface {
		journal.Store
		metrics.JournalStats
	}
	var shared *mysqlstore.Store
	jdesc := ""
	if cfg.Journal.Store == config.StoreMySQL && *journalPath != "" {
		return errors.New("--journal names a journal file, but journal.store is mysql")
	}
	if cfg.Journal.Store == config.StoreMySQL && *newJournal {
		return errors.New("--new-journal starts a new embedded journal, but journal.store is mysql")
	}
	if cfg.Journal.Store != config.StoreMySQL {
		// The embedded journal is verified before anything listens: a
		// damaged one stops the bridge here, with what to do.
		jpath := cfg.Journal.Path
		switch {
		case *journalPath != "":
			jpath = *journalPath
		case *simulate && *cfgPath == "":
			dir, err := os.MkdirTemp("", "xenha-bridge-sim-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			jpath = filepath.Join(dir, "journal.db")
		}
		b, err := journal.OpenWith(jpath, journal.Options{StartNew: *newJournal})
		if err != nil {
			var d *journal.DamagedError
			if errors.As(err, &d) || errors.Is(err, journal.ErrJournalGone) {
				return err
			}
			return fmt.Errorf("%w (set journal.path or --journal)", err)
		}
		logOpened(log, b)
		jrnl, jdesc = b, jpath
		defer jrnl.Close()
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()

	if cfg.Journal.Store == config.StoreMySQL {
		if cfg.Lease.ID == "" {
			if cfg.Lease.ID, err = os.Hostname(); err != nil {
				return fmt.Errorf("lease.id: not set, and no host name to default to: %w", err)
			}
		}
		if cfg.Lease.Advertise == "" {
			cfg.Lease.Advertise = ln.Addr().String()
		}
		m := cfg.Journal.MySQL
		if shared, err = mysqlstore.Open(ctx, mysqlstore.Config{DSN: m.DSN, Password: m.Password(), Timeout: m.Timeout, Bridge: cfg.Lease.ID}); err != nil {
			return fmt.Errorf("journal.mysql: %w", err)
		}
		jrnl, jdesc = shared, "mysql (shared; bridge "+cfg.Lease.ID+")"
		defer jrnl.Close()
	}

	// Metrics are always kept (it costs little); they are served only when
	// metrics.listen or --metrics says where.
	obs := metrics.New(version)
	xapiOpts := xapi.Options{Observe: obs.ObserveXAPICall}
	pools := xenha.NewManager(xenha.Options{
		Logger: log, Retention: cfg.Events.Retention, SubscriberBuffer: cfg.Events.SubscriberBuffer, Epochs: jrnl,
		XAPI: xapiOpts,
	})
	defer pools.Close()
	obs.WatchPools(pools)
	obs.WatchJournal(jrnl)
	// Several management servers: only the holder of a pool's lease acts.
	var guard lease.Guard
	var keeper *lease.Keeper
	if shared != nil {
		l := cfg.Lease
		keeper, err = lease.New(shared, lease.Config{ID: l.ID, Address: l.Advertise, Duration: l.Duration, Renew: l.Renew,
			Margin: l.Margin, Logger: log.Named("lease")}, func() []lease.Pool {
			var out []lease.Pool
			for _, v := range pools.Pools() {
				out = append(out, lease.Pool{UUID: v.UUID, Name: v.Name})
			}
			return out
		})
		if err != nil {
			return err
		}
		guard = keeper
		obs.WatchLeases(pools, keeper)
		kctx, stopLeases := context.WithCancel(context.Background())
		leasesDone := make(chan struct{})
		go func() { keeper.Run(kctx); close(leasesDone) }()
		// On the way out this bridge stops acting at once and releases its
		// leases a margin later, before the store closes (defers run last
		// in, first out): the other bridges take over then, not after the
		// leases run out.
		defer func() { stopLeases(); <-leasesDone }()
	}
	bmcs := &bmcBook{}
	fencer := fencing.New(fencing.Options{
		Journal: jrnl, Logger: log.Named("fencing"), Devices: bmcs.lookup, Pool: poolFencing(cfg.Pools),
		Observe: obs.ObserveFence, Lease: guard,
	})
	preferred := map[string][]string{}
	autopilot := map[string]time.Duration{} // pools with autopilot on, and their delay
	unreachable := map[string]elect.UnreachablePolicy{}
	elector := elect.New(elect.Options{
		Journal: jrnl, Logger: log.Named("elect"), Devices: bmcs.lookup,
		Preferred: func(pool string) []string { return preferred[pool] },
		UnreachableMaster: func(pool string) elect.UnreachablePolicy {
			if p, ok := unreachable[pool]; ok {
				return p
			}
			return elect.RefuseUnreachable
		},
		Autopilot: func(pool string) (bool, time.Duration) { d, on := autopilot[pool]; return on, d },
		Observe:   obs.ObserveElection,
		Lease:     guard,
	})
	for _, p := range cfg.Pools {
		preferred[p.Name] = p.PreferredMasters
		unreachable[p.Name] = elect.UnreachablePolicy(p.UnreachableMaster)
		if p.Autopilot {
			autopilot[p.Name] = p.AutopilotDelay
		}
		if err := bmcs.addConfigured(p); err != nil {
			return err
		}
		spec := xenha.PoolSpec{
			Name: p.Name, Members: p.Members,
			Credentials: xapi.Credentials{Username: p.Username, Password: xapi.Secret(p.Password())},
			Policy:      xenha.Policy(p.Policy), StorageTimeout: p.StorageTimeout, ProbeInterval: p.ProbeInterval,
			MasterProbeInterval: p.MasterProbeInterval,
			TLS:                 xapi.TLSOptions{CAFile: p.TLS.CAFile, PinSHA256: p.TLS.PinSHA256, AllowPlainHTTP: p.TLS.AllowPlainHTTP},
			Source:              "config",
		}
		if _, _, err := pools.Attach(ctx, spec); err != nil {
			return fmt.Errorf("pool %s: %w", p.Name, err)
		}
	}
	if *simulate {
		sim, err := xapisim.New(xapisim.Config{
			Hosts: *simHosts, Standalone: *simStandalone, Seed: 1, ControlAddr: *simControl, Port: *simPort,
			SamePort: *simPort == 0, Logger: log.Named("sim"),
		})
		if err != nil {
			return fmt.Errorf("--simulate: %w", err)
		}
		defer sim.Close()
		info := sim.Info()
		for _, h := range append(info.Hosts, info.Standalone...) { // the simulated hosts' Redfish BMCs
			d, err := newDevice("redfish", h.BMCURL, info.BMCUsername, info.BMCPassword, true)
			if err != nil {
				return err
			}
			bmcs.add("sim", h.UUID, d)
		}
		if _, _, err := pools.Attach(ctx, xenha.PoolSpec{
			Name: "sim", Members: sim.MemberURLs(),
			Credentials:   xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
			TLS:           xapi.TLSOptions{AllowPlainHTTP: true},
			ProbeInterval: 2 * time.Second,
			Source:        "simulate",
		}); err != nil {
			return fmt.Errorf("--simulate: %w", err)
		}
		log.Info("simulated pool attached as \"sim\"", "pool_uuid", info.PoolUUID, "control", info.ControlURL)
	}

	var metricsSrv *http.Server
	errc := make(chan error, 2)
	if cfg.Metrics.Enabled() {
		mln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		metricsSrv = obs.NewHTTPServer(log.Named("metrics"))
		go func() {
			if err := metricsSrv.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		}()
		log.Info("serving metrics", "listen", "http://"+mln.Addr().String()+"/metrics")
	}
	devices := func(driver, address, username, password string) (fencing.Device, error) {
		return newDevice(driver, address, username, password, false)
	}
	go elector.Heal(ctx, pools) // old masters back from the dead are reset (CloudStack-controlled pools)
	members := &membership.Service{Pools: pools, XAPI: xapiOpts, Journal: jrnl, Lease: guard}
	opts := []server.Option{server.WithFencing(fencer, devices), server.WithElection(elector), server.WithJournal(jrnl),
		server.WithMembership(members), server.WithPoolBMCs(bmcs)}
	if keeper != nil {
		opts = append(opts, server.WithLeases(keeper))
	}
	srv := server.New(server.NewService(pools, log.Named("api"), opts...), server.Options{
		Logger: log, Token: cfg.Auth.Token(), TLS: tlsConf, Metrics: obs.GRPC(),
	})
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", "listen", ln.Addr().String(), "tls", tlsConf != nil, "token", cfg.Auth.Token() != "", "journal", jdesc)

	stop := func() {
		srv.Stop(5 * time.Second)
		if metricsSrv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			metricsSrv.Shutdown(sctx)
		}
	}
	select {
	case <-ctx.Done():
		log.Info("stopping")
		stop()
		return nil
	case err := <-errc:
		stop()
		return err
	}
}

// logOpened says what opening the embedded journal found and did.
func logOpened(log hclog.Logger, b *journal.Bolt) {
	o := b.Opened()
	switch {
	case o.Replaced != "":
		log.Warn("--new-journal: started a new journal; every pool's epochs start again from 1", "journal", b.Path(),
			"why", o.Replaced, "damaged_file_kept_as", o.KeptAt)
	case o.Created:
		log.Info("created a new journal (a first start)", "journal", b.Path(), "marker", journal.MarkerPath(b.Path()))
	case o.StartNewIgnored:
		log.Warn("--new-journal ignored: the journal is healthy and was kept; remove the flag", "journal", b.Path())
	}
	if o.HealedMeta {
		log.Warn("one of the journal's two meta pages was torn (a crash while it was written) and was rewritten from the other",
			"journal", b.Path())
	}
}

// serverTLS builds the listener's TLS from the configuration (nil: plaintext).
func serverTLS(c config.ServerTLS) (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.MutualTLS() {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("tls.client_ca_file: no PEM certificate in it")
		}
		conf.ClientCAs = pool
	}
	return conf, nil
}
