package fencing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
)

// powerOff tries the pool's levels in order until one is verified.
func (r *run) powerOff(ctx context.Context, ev evidence) bool {
	if ev.bmcOff {
		r.res.Method = "already-off"
		r.step("level:"+LevelBMC, "the BMC already reports the host off: counted as fenced", true)
		return true
	}
	for _, level := range r.o.Levels {
		if ctx.Err() != nil {
			r.step("level:"+level, "no time left: "+ctx.Err().Error(), false)
			return false
		}
		var err error
		switch level {
		case LevelBMC:
			err = r.bmc(ctx)
		case LevelXAPISoft:
			err = r.xapiSoft(ctx)
		case LevelHeartbeatWait:
			err = r.heartbeatWait(ctx, ev)
		default:
			err = fmt.Errorf("unknown level %q", level)
		}
		if r.lost != nil {
			return false // the lease is gone: no further level
		}
		if err == nil {
			r.res.Method = level
			if level == LevelBMC {
				r.res.Method = r.device.Driver()
			}
			return true
		}
		r.step("level:"+level, "failed, trying the next level: "+err.Error(), false)
	}
	r.step("decision", "every fencing level failed: the host is not confirmed dead, no VM is reset", false)
	return false
}

// bmc powers the host off through its BMC and reads the state back.
func (r *run) bmc(ctx context.Context) error {
	if r.device == nil {
		return errors.New("no BMC configured")
	}
	hctx, done, err := r.hold(ctx, "powering the host off through its BMC")
	if err != nil {
		return err
	}
	r.peer(func() { err = r.device.PowerOff(hctx) })
	done()
	if err != nil {
		return err // an unreachable BMC falls through, it is not retried forever
	}
	r.step("level:"+LevelBMC, r.device.Driver()+" power-off sent; reading the state back", true)
	return r.verify(ctx, func(ctx context.Context) (bool, string) {
		var state PowerState
		var err error
		r.peer(func() { state, err = r.device.PowerState(ctx) })
		if err != nil {
			return false, err.Error()
		}
		return state == PowerOff, "power " + state.String()
	})
}

// xapiSoft asks the master to disable and shut the host down, for a host
// whose XAPI still answers but is sick; verified when the host stops
// answering.
func (r *run) xapiSoft(ctx context.Context) error {
	ref := xapi.HostRef(r.host.Ref)
	hctx, done, err := r.hold(ctx, "shutting the host down through XAPI")
	if err != nil {
		return err
	}
	r.peer(func() {
		err = r.req.Pool.Do(hctx, func(c *xapi.Client) error {
			if err := c.HostDisable(hctx, ref); err != nil {
				return fmt.Errorf("host.disable: %w", err)
			}
			if err := c.HostShutdown(hctx, ref); err != nil {
				return fmt.Errorf("host.shutdown: %w", err)
			}
			return nil
		})
	})
	done()
	if err != nil {
		return err
	}
	r.step("level:"+LevelXAPISoft, "host.disable and host.shutdown accepted; waiting for the host to stop answering", true)
	quiet := 0
	return r.verify(ctx, func(ctx context.Context) (bool, string) {
		var p xapi.Probe
		r.peer(func() { p = r.req.Pool.Probe(ctx, r.host.Address) })
		if p.State == xapi.ProbeUnreachable {
			quiet++
		} else {
			quiet = 0
		}
		return quiet >= r.o.ProbeAttempts, "probe: " + p.State.String()
	})
}

// heartbeatWait waits, on the peer's clock, until CloudStack's
// xenheartbeat.sh must have rebooted the host (its timeout past the last
// beat, plus a margin) and checks that no new beat came meanwhile.
func (r *run) heartbeatWait(ctx context.Context, ev evidence) error {
	if !ev.hbKnown || ev.hbLast == 0 {
		return errors.New("the storage heartbeat cannot be read, so its self-fence cannot be confirmed")
	}
	deadline := ev.hbLast + int64((r.o.HeartbeatTimeout+r.o.HeartbeatMargin)/time.Second)
	r.step("level:"+LevelHeartbeatWait, fmt.Sprintf("waiting until %s on the peer's clock (last beat + %s + %s)",
		time.Unix(deadline, 0).UTC().Format(time.RFC3339), r.o.HeartbeatTimeout, r.o.HeartbeatMargin), true)
	for {
		now, last, _, err := r.readHeartbeat(ctx)
		switch {
		case err != nil:
			return fmt.Errorf("heartbeat unreadable while waiting: %w", err)
		case last > ev.hbLast:
			return fmt.Errorf("the host wrote a new heartbeat (%d after %d): it is not dead", last, ev.hbLast)
		case now >= deadline:
			r.step("level:"+LevelHeartbeatWait, "the self-fence timeout has passed with no new heartbeat", true)
			return nil
		}
		if err := r.wait(ctx, r.o.PollInterval); err != nil {
			return fmt.Errorf("the deadline came before the self-fence timeout: %w", err)
		}
	}
}

// verify polls check until it holds or VerifyTimeout passes.
func (r *run) verify(ctx context.Context, check func(context.Context) (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, r.o.VerifyTimeout)
	defer cancel()
	var last string
	for {
		ok, detail := check(ctx)
		last = detail
		if ok {
			r.step("verify", "confirmed: "+detail, true)
			return nil
		}
		if r.wait(ctx, r.o.PollInterval) != nil {
			return fmt.Errorf("not confirmed within %s (last: %s)", r.o.VerifyTimeout, last)
		}
	}
}

// resetVMs marks Halted every guest VM the pool still places on the dead
// host, reading the list fresh from the master.
func (r *run) resetVMs(ctx context.Context) {
	var vms map[xapi.VMRef]xapi.VMRecord
	var err error
	r.peer(func() {
		err = r.req.Pool.Do(ctx, func(c *xapi.Client) error {
			var err error
			vms, err = c.VMGetAllRecords(ctx)
			return err
		})
	})
	if err != nil {
		r.res.Incomplete = true
		r.step("vm-reset", "cannot list the VMs: "+err.Error(), false)
		return
	}
	refs := make([]xapi.VMRef, 0, len(vms))
	for ref := range vms {
		refs = append(refs, ref)
	}
	slices.Sort(refs) // a stable order in the trace
	for _, ref := range refs {
		vm := vms[ref]
		if string(vm.ResidentOn) != r.host.Ref || vm.IsControlDomain || vm.PowerState == xapi.PowerStateHalted {
			continue
		}
		hctx, done, err := r.hold(ctx, "resetting VM "+vm.UUID)
		if err != nil {
			r.res.Incomplete = true // the holder's retry finishes the job
			return
		}
		out := VMReset{UUID: vm.UUID, Name: vm.NameLabel}
		r.peer(func() {
			err = r.req.Pool.Do(hctx, func(c *xapi.Client) error { return c.VMPowerStateReset(hctx, ref) })
		})
		done()
		if err != nil {
			r.res.Incomplete = true
			out.Error = err.Error()
			r.step("vm-reset", fmt.Sprintf("VM %s (%s): %v", vm.NameLabel, vm.UUID, err), false)
		} else {
			out.Reset = true
			r.step("vm-reset", fmt.Sprintf("VM %s (%s) marked Halted", vm.NameLabel, vm.UUID), true)
		}
		r.res.VMResets = append(r.res.VMResets, out)
	}
}
