package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/fencing/redfish"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

const (
	benchProbeTimeout = 500 * time.Millisecond
	benchProbeSpacing = 200 * time.Millisecond
	benchPoll         = 100 * time.Millisecond
)

// benchFailover measures a CloudStack-controlled failover: the master
// powered off, then ElectMaster, until the new master answers and every
// host follows it, split by the steps of the election's trace. The
// simulator is asked to make the powered-off host refuse connections at
// once (Config.RefuseWhenDown, its only behaviour before issue 13), so
// that no probe timeout hides the election's own steps: this is not a
// real-xapi failover, which benchE2E measures.
func benchFailover(runs int) {
	fmt.Printf("configured: probe timeout %s, probe spacing %s (3 probes: %s of waits), poll %s\n\n",
		benchProbeTimeout, benchProbeSpacing, 2*benchProbeSpacing, benchPoll)
	fmt.Printf("| hosts | runs | total p50 | detection | harmless | promotion | recovery+verify | view follows | beyond configured waits p50 / max |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, n := range []int{3, 5, 16} {
		var total, det, harm, prom, rec, follow, beyond []time.Duration
		for range runs {
			r, took := failoverOnce(n)
			at := map[string]time.Time{}
			for _, s := range r.Trace {
				key := s.Step
				if s.Step == "promote" && at["promote"].IsZero() {
					key = "promote"
				} else if s.Step == "promote" {
					key = "promoted"
				}
				if at[key].IsZero() {
					at[key] = s.Time
				}
			}
			start := r.Trace[0].Time
			total = append(total, took)
			det = append(det, at["decision"].Sub(start))
			harm = append(harm, at["harmless"].Sub(at["decision"]))
			prom = append(prom, at["promoted"].Sub(at["promote"]))
			rec = append(rec, at["verify"].Sub(at["promoted"]))
			follow = append(follow, at["result"].Sub(at["verify"]))
			beyond = append(beyond, took-2*benchProbeSpacing)
		}
		fmt.Printf("| %d | %d | %v | %v | %v | %v | %v | %v | %v / %v |\n", n, runs, p50(total), p50(det), p50(harm), p50(prom), p50(rec), p50(follow), p50(beyond), maxOf(beyond))
	}
}

func failoverOnce(n int) (*elect.Result, time.Duration) {
	sim, err := xapisim.New(xapisim.Config{Hosts: n, VMsPerHost: 1, Seed: 5, DisableHeartbeatSelfFence: true, RefuseWhenDown: true})
	if err != nil {
		log.Fatal(err)
	}
	defer sim.Close()
	info := sim.Info()
	m := xenha.NewManager(xenha.Options{XAPI: xapi.Options{Timeout: 5 * time.Second, ProbeTimeout: benchProbeTimeout}})
	defer m.Close()
	if _, _, err := m.Attach(context.Background(), xenha.PoolSpec{
		Name: "p", Members: sim.MemberURLs(), TLS: xapi.TLSOptions{AllowPlainHTTP: true},
		Credentials: xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
	}); err != nil {
		log.Fatal(err)
	}
	e := elect.New(elect.Options{ProbeSpacing: benchProbeSpacing, PollInterval: benchPoll,
		Devices: func(_ string, h xenha.HostView) fencing.Device {
			for _, hi := range info.Hosts {
				if hi.UUID == h.UUID {
					d, _ := redfish.New(redfish.Config{URL: hi.BMCURL, Username: info.BMCUsername, Password: info.BMCPassword, AllowPlainHTTP: true})
					return d
				}
			}
			return nil
		}})
	h, _ := m.Handle("p")
	must(sim.PowerOff(0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	res, err := e.Elect(ctx, elect.Request{Pool: h})
	took := time.Since(start)
	if err != nil || res.ElectedBy != elect.ByCloudStack || len(sim.LiveMasters()) != 1 {
		log.Fatalf("%d hosts: %v %+v", n, err, res)
	}
	return res, took
}
