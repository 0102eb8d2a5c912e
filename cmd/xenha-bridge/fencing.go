package main

import (
	"fmt"
	"strings"
	"sync"

	"github.com/cloudstack-xenha/xenha-bridge/config"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/fencing/ipmi"
	"github.com/cloudstack-xenha/xenha-bridge/fencing/redfish"
	"github.com/cloudstack-xenha/xenha-bridge/server"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// newDevice builds a BMC client. Request BMCs (from CloudStack's
// out-of-band settings) trust the system roots only; configured ones may
// name plain http (the simulator) through allowHTTP.
func newDevice(driver, address, username, password string, allowHTTP bool) (fencing.Device, error) {
	switch strings.ToLower(driver) {
	case "ipmi", "ipmitool":
		return ipmi.New(ipmi.Config{Address: address, Username: username, Password: password})
	case "redfish":
		return redfish.New(redfish.Config{URL: address, Username: username, Password: password, AllowPlainHTTP: allowHTTP})
	}
	return nil, fmt.Errorf("unknown BMC driver %q: use ipmi or redfish", driver)
}

// bmcBook holds the BMCs of every pool: the configuration's, and those a
// pool was attached with (AttachPool's bmcs), which win.
type bmcBook struct {
	mu       sync.RWMutex
	pools    map[string][]bmcEntry
	attached map[string][]bmcEntry
}

// Build is server.PoolBMCs.Build.
func (b *bmcBook) Build(driver, address, username, password string, allowPlainHTTP bool) (fencing.Device, error) {
	return newDevice(driver, address, username, password, allowPlainHTTP)
}

// Set is server.PoolBMCs.Set.
func (b *bmcBook) Set(pool string, bmcs []server.HostDevice) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.attached == nil {
		b.attached = map[string][]bmcEntry{}
	}
	entries := make([]bmcEntry, 0, len(bmcs))
	for _, d := range bmcs {
		entries = append(entries, bmcEntry{host: d.Host, device: d.Device})
	}
	b.attached[pool] = entries
}

type bmcEntry struct {
	host   string // UUID, name or address
	device fencing.Device
}

func (b *bmcBook) add(pool, host string, d fencing.Device) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pools == nil {
		b.pools = map[string][]bmcEntry{}
	}
	b.pools[pool] = append(b.pools[pool], bmcEntry{host: host, device: d})
}

// lookup is fencing.Options.Devices.
func (b *bmcBook) lookup(pool string, h xenha.HostView) fencing.Device {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, entries := range [][]bmcEntry{b.attached[pool], b.pools[pool]} {
		for _, e := range entries {
			if e.host == h.UUID || e.host == h.Name || e.host == h.Address {
				return e.device
			}
		}
	}
	return nil
}

// addConfigured builds the BMCs a pool's configuration names, a Redfish
// BMC with its configured trust (ca_file, pin_sha256), as the pools' tls.
// The configuration's validator has checked them; an error here (a CA
// file changed since) names the configuration keys.
func (b *bmcBook) addConfigured(p config.Pool) error {
	for i, c := range p.Fencing.BMCs {
		key := fmt.Sprintf("fencing.bmcs[%d]", i)
		var d fencing.Device
		var err error
		if strings.EqualFold(c.Driver, "redfish") {
			d, err = redfish.New(redfish.Config{URL: c.Address, Username: c.Username, Password: c.Password(),
				CAFile: c.CAFile, PinSHA256: c.PinSHA256})
			if err != nil && (c.CAFile != "" || c.PinSHA256 != "") {
				err = fmt.Errorf("%w (check %s.ca_file and %s.pin_sha256)", err, key, key)
			}
		} else {
			d, err = newDevice(c.Driver, c.Address, c.Username, c.Password(), false)
		}
		if err != nil {
			return fmt.Errorf("pool %s: %s (BMC of %s): %w", p.Name, key, c.Host, err)
		}
		b.add(p.Name, c.Host, d)
	}
	return nil
}

// poolFencing turns the configuration into per-pool fencing settings.
func poolFencing(pools []config.Pool) func(string) fencing.PoolOptions {
	byName := map[string]fencing.PoolOptions{}
	for _, p := range pools {
		byName[p.Name] = fencing.PoolOptions{
			Levels: p.Fencing.Levels, FenceDelay: p.Fencing.Delay,
			StormRatio: float64(p.Fencing.StormPercent) / 100, HeartbeatTimeout: p.Fencing.HeartbeatTimeout,
		}
	}
	return func(name string) fencing.PoolOptions { return byName[name] }
}
