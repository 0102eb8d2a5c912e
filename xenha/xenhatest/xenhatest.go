// Package xenhatest gives tests a simulated pool attached to a manager.
package xenhatest

import (
	"context"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// AttachSim starts a simulated 3-host pool on a fake clock (seed 5, no
// heartbeat self-fence) and attaches it to pools as "sim", probed every
// second. The simulator closes when the test ends.
func AttachSim(t testing.TB, pools *xenha.Manager) *xapisim.Sim {
	t.Helper()
	sim, err := xapisim.New(xapisim.Config{Hosts: 3, Seed: 5, Clock: xapisim.NewFakeClock(), DisableHeartbeatSelfFence: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	info := sim.Info()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := pools.Attach(ctx, xenha.PoolSpec{Name: "sim", Members: sim.MemberURLs(),
		Credentials: xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
		TLS:         xapi.TLSOptions{AllowPlainHTTP: true}, ProbeInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	return sim
}
