package elect

import (
	"context"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// Heal watches every pool's events until ctx ends and, when a split brain
// appears in a pool CloudStack controls (typically an old master back
// from a reboot, still believing it is master), resets the stale master.
// XenHA pools are left to XenHA.
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
			if ev.Type != xenha.EventSplitBrain {
				continue
			}
			h, err := pools.Handle(ev.Pool)
			if err != nil || h.View().Controller != xenha.ControllerCloudStack {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			if _, err := e.Elect(cctx, Request{Pool: h, Reason: "automatic: heal a split brain"}); err != nil {
				e.log.Warn("could not heal a split brain", "pool", ev.Pool, "error", err)
			}
			cancel()
		}
	}
}
