package xapisim

import (
	"time"
)

// AuditRecord is one destructive call that reached the simulator from a
// client (never the fault API): what was asked, and the world as it was
// just before, so a test can judge whether the caller had the right to.
type AuditRecord struct {
	Time      time.Time
	Action    string // the XenAPI method, or "bmc:ForceOff", "bmc:On", "bmc:ForceRestart"
	Pool      string // pool uuid
	HAEnabled bool   // XenHA was on in the pool
	Target    string // host uuid the action is about
	// The target's state before the call.
	TargetPowered bool
	TargetAnswers bool // its xapi answers the bridge (powered, not hung, not cut off)
	TargetBeating bool // it writes its storage heartbeat
	TargetMaster  bool // it believed it was master
	VM            string
	VMResident    bool // the VM had a resident host (the target)
	// After the call: the other hosts of the pool that have power and
	// believe they are master.
	OtherMasters []string
	Err          string // the API error, "" on success
}

// auditable lists the calls that change who is master, power or VM state.
var auditable = map[string]bool{
	"pool.emergency_transition_to_master": true,
	"pool.emergency_reset_master":         true,
	"pool.recover_slaves":                 true,
	"pool.designate_new_master":           true,
	"pool.enable_ha":                      true,
	"pool.disable_ha":                     true,
	"pool.join":                           true,
	"pool.eject":                          true,
	"host.disable":                        true,
	"host.shutdown":                       true,
	"host.reboot":                         true,
	"VM.power_state_reset":                true,
}

// auditStart captures the world before a call on host h. Call with s.mu held.
func (s *Sim) auditStart(h *simHost, action string, args []any) *AuditRecord {
	if s.cfg.Audit == nil {
		return nil
	}
	p := h.pool
	rec := &AuditRecord{Time: s.clock.Now(), Action: action, Pool: p.uuid, HAEnabled: p.haEnabled}
	target := h
	switch action {
	case "pool.designate_new_master", "pool.eject", "host.disable", "host.shutdown", "host.reboot":
		if len(args) > 0 {
			ref, _ := args[0].(string)
			if t := p.member(ref); t != nil {
				target = t
			}
		}
	case "VM.power_state_reset":
		if len(args) > 0 {
			ref, _ := args[0].(string)
			for _, vm := range p.vms {
				if vm.ref == ref {
					rec.VM = vm.uuid
					if vm.residentOn != nil {
						target = vm.residentOn
						rec.VMResident = true
					}
				}
			}
		}
	}
	rec.Target = target.uuid
	rec.TargetPowered = target.powered
	rec.TargetAnswers = target.powered && !target.hang && !target.bridgeCut && !target.booting
	rec.TargetBeating = target.beating()
	rec.TargetMaster = target.isMaster
	return rec
}

// auditEnd completes and delivers a record. Call with s.mu held.
func (s *Sim) auditEnd(rec *AuditRecord, h *simHost, err *apiError) {
	if rec == nil {
		return
	}
	if err != nil {
		rec.Err = err.code
	}
	for _, o := range h.pool.hosts {
		if o.uuid != rec.Target && o.powered && o.isMaster {
			rec.OtherMasters = append(rec.OtherMasters, o.uuid)
		}
	}
	s.cfg.Audit(*rec)
}
