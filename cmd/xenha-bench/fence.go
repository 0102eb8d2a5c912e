package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/fencing/ipmi"
	"github.com/cloudstack-xenha/xenha-bridge/fencing/redfish"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// benchFence measures, per level, the time from FenceHost's start to a
// confirmed fence (VMs reset), split into the peers' time (XAPI and BMC
// calls), the configured waits (probe spacing, read-back polls) and the
// bridge's own. The host is "hung": XAPI hangs and its storage heartbeat
// stopped 150 s ago on the pool's clock.
func benchFence(runs int) {
	fmt.Printf("| level | runs | total p50 | peers p50 | configured waits p50 | bridge's own p50 | bridge's own max |\n|---|---|---|---|---|---|---|\n")
	for _, level := range []string{"redfish", "ipmi", fencing.LevelXAPISoft, fencing.LevelHeartbeatWait} {
		var total, peer, waited, own []time.Duration
		for range runs {
			r, took := fenceOnce(level)
			if r == nil {
				break
			}
			total = append(total, took)
			peer = append(peer, r.PeerTime)
			waited = append(waited, r.Waited)
			own = append(own, took-r.PeerTime-r.Waited)
		}
		if len(total) == 0 {
			fmt.Printf("| %s | 0 | (skipped: peer unavailable) | | | | |\n", level)
			continue
		}
		fmt.Printf("| %s | %d | %v | %v | %v | %v | %v |\n", level, len(total), p50(total), p50(peer), p50(waited), p50(own), maxOf(own))
	}
}

func p50(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(time.Microsecond)
}

func maxOf(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = max(m, x)
	}
	return m.Round(time.Microsecond)
}

func fenceOnce(level string) (*fencing.Result, time.Duration) {
	clock := xapisim.NewFakeClock()
	sim, err := xapisim.New(xapisim.Config{Hosts: 3, Clock: clock, Seed: 77, DisableHeartbeatSelfFence: true})
	if err != nil {
		log.Fatal(err)
	}
	defer sim.Close()
	info := sim.Info()
	m := xenha.NewManager(xenha.Options{XAPI: xapi.Options{Timeout: 5 * time.Second, ProbeTimeout: 200 * time.Millisecond}})
	defer m.Close()
	if _, _, err := m.Attach(context.Background(), xenha.PoolSpec{
		Name: "p", Members: sim.MemberURLs(), TLS: xapi.TLSOptions{AllowPlainHTTP: true},
		Credentials: xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
	}); err != nil {
		log.Fatal(err)
	}
	var dev fencing.Device
	levels := []string{fencing.LevelBMC}
	switch level {
	case "redfish":
		dev, _ = redfish.New(redfish.Config{URL: info.Hosts[2].BMCURL, Username: info.BMCUsername, Password: info.BMCPassword, AllowPlainHTTP: true})
	case "ipmi":
		addr, stop, ok := startIPMISim(info.ControlURL, 2)
		if !ok {
			return nil, 0
		}
		defer stop()
		dev, _ = ipmi.New(ipmi.Config{Address: addr, Username: "admin", Password: "admin"})
	default:
		levels = []string{level}
	}
	must(sim.HangXAPI(2, true))
	must(sim.CutStorage(2, true))
	clock.Advance(150 * time.Second)
	if level == fencing.LevelXAPISoft {
		must(sim.HangXAPI(2, false)) // soft fencing needs the host to still take orders
		must(sim.CutBridge(2, true))
	}
	f := fencing.New(fencing.Options{
		Levels: levels, Devices: func(string, xenha.HostView) fencing.Device { return dev },
		ProbeSpacing: 100 * time.Millisecond, PollInterval: 100 * time.Millisecond,
	})
	h, _ := m.Handle("p")
	stop := make(chan struct{})
	defer close(stop)
	if level == fencing.LevelHeartbeatWait {
		go func() { // the pool's clock runs 100x faster than the wall
			for {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
					clock.Advance(time.Second)
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	res, err := f.Fence(ctx, fencing.Request{Pool: h, Host: info.Hosts[2].UUID, Force: level == fencing.LevelXAPISoft})
	took := time.Since(start)
	if err != nil || res.Outcome != fencing.Fenced {
		log.Fatalf("%s: %v %+v", level, err, res)
	}
	return res, took
}

// startIPMISim runs scripts/ipmi/start-sim driving host i of the simulator.
func startIPMISim(control string, host int) (string, func(), bool) {
	if _, err := exec.LookPath("ipmi_sim"); err != nil {
		return "", nil, false
	}
	l, _ := net.ListenPacket("udp", "127.0.0.1:0")
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	dir, _ := os.MkdirTemp("", "bench-ipmi-")
	cmd := exec.Command("scripts/ipmi/start-sim", dir, strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "XENHA_SIM_CONTROL="+control, "XENHA_SIM_HOST="+strconv.Itoa(host))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", nil, false
	}
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		os.RemoveAll(filepath.Clean(dir))
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dev, _ := ipmi.New(ipmi.Config{Address: addr, Username: "admin", Password: "admin", Timeout: 500 * time.Millisecond})
	for range 40 {
		if _, err := dev.PowerState(context.Background()); err == nil {
			return addr, stop, true
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return "", nil, false
}
