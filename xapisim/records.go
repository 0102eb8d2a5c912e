package xapisim

import (
	"strings"
	"time"
)

// Records are built from the model on demand, as maps keyed by the
// datamodel's field names, so JSON-RPC, XML-RPC, per-field getters and
// event snapshots all share one definition.

type record = map[string]any

// classes are the XenAPI classes the simulator serves, in API spelling.
var classes = []string{"pool", "host", "host_metrics", "VM", "SR", "PBD", "VDI"}

// className maps any spelling (event classes are lowercase) to API spelling.
func className(c string) (string, bool) {
	for _, k := range classes {
		if strings.EqualFold(k, c) {
			return k, true
		}
	}
	return "", false
}

func xapiTime(t time.Time) string { return t.UTC().Format("20060102T15:04:05Z") }

// records returns class → ref → record for one pool as seen by viewer: a
// host that believes it is master reports itself as pool.master, which is
// how an old master that came back shows a second "truth".
func (s *Sim) records(p *simPool, viewer *simHost) map[string]map[string]record {
	out := map[string]map[string]record{}
	for _, c := range classes {
		out[c] = map[string]record{}
	}
	master := p.master
	if viewer != nil && viewer.isMaster {
		master = viewer
	}
	masterRef := "OpaqueRef:NULL"
	if master != nil {
		masterRef = master.ref
	}
	haConfig := map[string]string{}
	if p.haEnabled {
		haConfig["timeout"] = itoa(int64(p.haTimeout / time.Second))
	}
	out["pool"][p.ref] = record{
		"uuid": p.uuid, "name_label": p.name, "name_description": "",
		"master": masterRef, "default_SR": defaultSR(p),
		"other_config":                 map[string]string{},
		"ha_enabled":                   p.haEnabled,
		"ha_configuration":             haConfig,
		"ha_statefiles":                strs(p.haStatefiles),
		"ha_host_failures_to_tolerate": p.ftt,
		"ha_plan_exists_for":           p.planExistsFor(),
		"ha_allow_overcommit":          false,
		"ha_overcommitted":             false,
		"ha_cluster_stack":             "xhad",
		"tags":                         []string{},
	}
	for _, h := range p.hosts {
		var resident, pbds []string
		for _, vm := range p.vms {
			if vm.residentOn == h {
				resident = append(resident, vm.ref)
			}
		}
		for _, pbd := range p.pbds {
			if pbd.host == h {
				pbds = append(pbds, pbd.ref)
			}
		}
		var statefiles, peers []string
		if p.haEnabled && h.haArmed {
			statefiles = p.haStatefiles
			for _, o := range p.hosts {
				if o != h && o.inLiveset && s.linkUp(h, o) {
					peers = append(peers, o.uuid)
				}
			}
		}
		out["host"][h.ref] = record{
			"uuid": h.uuid, "name_label": h.name, "name_description": "",
			"address": h.address, "hostname": h.name, "enabled": h.enabled,
			"metrics": h.metricsRef, "resident_VMs": strs(resident), "PBDs": strs(pbds),
			"ha_statefiles": strs(statefiles), "ha_network_peers": strs(peers),
			"software_version":  map[string]string{"product_version": "8.3.0", "platform_name": "XCP", "xapi": "24.19"},
			"other_config":      map[string]string{},
			"control_domain":    h.dom0.ref,
			"API_version_major": int64(2), "API_version_minor": int64(21),
			"API_version_vendor": "XenSource", "edition": "xcp-ng",
			"memory_overhead": int64(0), "power_on_mode": "", "power_on_config": map[string]string{},
			"tags": []string{},
		}
		out["host_metrics"][h.metricsRef] = record{
			"uuid": h.metricsUUID, "live": h.live, "last_updated": xapiTime(h.bootedAt),
			"memory_total": int64(256 << 30), "memory_free": int64(128 << 30),
			"other_config": map[string]string{},
		}
	}
	for _, vm := range p.vms {
		resident, domid := "OpaqueRef:NULL", int64(-1)
		if vm.residentOn != nil {
			resident, domid = vm.residentOn.ref, 1
			if vm.isControlDomain {
				domid = 0
			}
		}
		out["VM"][vm.ref] = record{
			"uuid": vm.uuid, "name_label": vm.name, "name_description": "",
			"power_state": vm.powerState, "resident_on": resident,
			"is_control_domain": vm.isControlDomain, "is_a_template": false, "is_a_snapshot": false,
			"ha_restart_priority": vm.haPriority, "ha_always_run": vm.haPriority == "restart",
			"other_config": map[string]string{}, "domid": domid,
			"memory_static_max": int64(4 << 30), "VCPUs_max": int64(2),
			"tags": []string{},
		}
	}
	for _, sr := range p.srs {
		var pbds []string
		for _, pbd := range p.pbds {
			if pbd.sr == sr {
				pbds = append(pbds, pbd.ref)
			}
		}
		out["SR"][sr.ref] = record{
			"uuid": sr.uuid, "name_label": sr.name, "name_description": "",
			"type": sr.typ, "shared": sr.shared, "PBDs": strs(pbds), "content_type": "",
			"other_config": map[string]string{}, "physical_size": int64(1 << 40),
			"tags": []string{},
		}
	}
	// Only XenHA's statefile VDIs are modelled.
	for _, ref := range p.haStatefiles {
		out["VDI"][ref] = record{
			"uuid": strings.TrimPrefix(ref, "OpaqueRef:"), "name_label": "Statefile for HA",
			"SR": p.haSR.ref, "type": "ha_statefile", "virtual_size": int64(356 << 20),
			"other_config": map[string]string{},
		}
	}
	for _, pbd := range p.pbds {
		out["PBD"][pbd.ref] = record{
			"uuid": pbd.uuid, "host": pbd.host.ref, "SR": pbd.sr.ref,
			"currently_attached": pbd.attached,
			"device_config":      map[string]string{},
			"other_config":       map[string]string{},
		}
	}
	return out
}

func defaultSR(p *simPool) string {
	for _, sr := range p.srs {
		if sr.shared {
			return sr.ref
		}
	}
	return "OpaqueRef:NULL"
}

// strs never returns nil, so an empty set encodes as [] and not null.
func strs(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
