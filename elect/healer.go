package elect

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// Autopilot says, per pool, whether the bridge elects by itself once the
// master is lost (off by default: CloudStack calls ElectMaster), and how
// long the master must stay lost first.
type Autopilot func(pool string) (on bool, after time.Duration)

// Heal watches every pool's events until ctx ends. When a split brain
// appears in a pool CloudStack controls (typically an old master back
// from a reboot, still believing it is master), it resets the stale
// master; when a master is lost in such a pool with autopilot on, it
// elects once the master has stayed lost for the pool's delay. XenHA
// pools are left to XenHA.
func (e *Elector) Heal(ctx context.Context, pools *xenha.Manager) {
	for ctx.Err() == nil {
		sub, err := pools.Subscribe("", 0, "")
		if err != nil {
			return
		}
		e.healFrom(ctx, pools, sub)
		sub.Close()
	}
}

func (e *Elector) healFrom(ctx context.Context, pools *xenha.Manager, sub *xenha.Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.Done():
			return // cut off: subscribe again
		case ev := <-sub.C:
			h, err := pools.Handle(ev.Pool)
			if err != nil || h.View().Controller != xenha.ControllerCloudStack {
				continue
			}
			switch ev.Type {
			case xenha.EventSplitBrain:
				e.auto(ctx, h, "automatic: heal a split brain", "")
			case xenha.EventMasterLost:
				if on, after := e.opts.Autopilot(ev.Pool); on {
					go e.autopilot(ctx, h, after, ev.Seq)
				}
			}
		}
	}
}

// autopilot elects once the master has stayed lost for after. With
// several management servers only the lease holder elects: a bridge
// refused by the lease looks again every after, so that whichever bridge
// holds the lease next (this one, once the holder died with the master)
// still elects.
func (e *Elector) autopilot(ctx context.Context, h *xenha.Handle, after time.Duration, seq uint64) {
	for {
		select {
		case <-time.After(after):
		case <-ctx.Done():
			return
		}
		if v := h.View(); v.Master.Reachable || v.Controller != xenha.ControllerCloudStack {
			return // the master came back, or the controller changed
		}
		if !e.auto(ctx, h, "autopilot: the master stayed lost", fmt.Sprintf("autopilot-%d", seq)) {
			return
		}
	}
}

// auto runs an election of the bridge's own; it reports whether the lease
// refused it (another bridge's to run, or not known whose).
func (e *Elector) auto(ctx context.Context, h *xenha.Handle, reason, id string) (refused bool) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, err := e.Elect(cctx, Request{Pool: h, RequestID: id, Reason: reason})
	v := h.View()
	switch {
	case err == nil:
	case lease.IsRefusal(err):
		e.log.Debug("automatic election left to the lease holder", "pool", v.Name, "reason", reason, "error", err)
		return true
	default:
		e.log.Warn("automatic election did not complete", "pool", v.Name, "request_id", id, "epoch", v.Epoch, "reason", reason, "error", err)
	}
	return false
}
