package io.github.cloudstackxenha.cloudstack;

import java.time.Duration;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

import cloudstack.xenha.v1.Xenha.Controller;
import cloudstack.xenha.v1.Xenha.EventType;
import cloudstack.xenha.v1.Xenha.PoolEvent;
import io.github.cloudstackxenha.client.PoolEventsHandler;
import io.github.cloudstackxenha.client.Resync;
import io.github.cloudstackxenha.client.XenHaBridgeException;
import io.grpc.Status;

/**
 * Follows an attached pool's events for the management server: each event
 * goes to CloudStack's log (a master lost or changed, a host fenced, a
 * warning raised shows where operators look), HOST_FENCED and HOST_UP keep
 * the {@link FenceLedger} current even for fences another client asked for,
 * and a pool the bridge no longer knows (it restarted: pools attached at
 * run time are not persisted) is attached again. MASTER_LOST starts the
 * {@link MasterRecovery} (so does a snapshot without a reachable master),
 * MASTER_CHANGED ends it.
 */
final class PoolWatch implements PoolEventsHandler {
    private static final Logger LOG = LogManager.getLogger(PoolWatch.class);

    private final String pool;
    private final XenHaBridgeContext bridge;

    PoolWatch(String pool, XenHaBridgeContext bridge) {
        this.pool = pool;
        this.bridge = bridge;
    }

    @Override
    public void onEvent(PoolEvent e) {
        if (e.getType() == EventType.EVENT_TYPE_HOST_FENCED && !e.getHostUuid().isEmpty()) {
            bridge.fences().recordFenced(e.getHostUuid());
        } else if (e.getType() == EventType.EVENT_TYPE_HOST_UP && !e.getHostUuid().isEmpty()) {
            bridge.fences().clear(e.getHostUuid());
        } else if (e.getType() == EventType.EVENT_TYPE_MASTER_LOST) {
            bridge.masterRecovery().masterLost(pool);
        } else if (e.getType() == EventType.EVENT_TYPE_MASTER_CHANGED) {
            bridge.masterRecovery().masterFound(pool);
        }
        LOG.info("xenha-bridge: pool {}: {} (event {}, epoch {})", pool, e.getMessage(), e.getSequence(), e.getEpoch());
    }

    @Override
    public void onResync(Resync resync) {
        if (resync.snapshot().getObserved() && !resync.snapshot().getMaster().getReachable()
                && (resync.snapshot().getController() == Controller.CONTROLLER_CLOUDSTACK
                        || resync.snapshot().getController() == Controller.CONTROLLER_XENHA)) {
            // The master was lost before this listener started, or among the
            // events not received: the snapshot says.
            bridge.masterRecovery().masterLost(pool);
        }
        if (resync.reason() == Resync.Reason.STARTED) {
            LOG.info("xenha-bridge: pool {}: following its events: controller {}, master {}, epoch {}", pool,
                    resync.snapshot().getController(), resync.snapshot().getMaster().getName(), resync.snapshot().getEpoch());
        } else {
            LOG.warn("xenha-bridge: pool {}: events between {} and {} were not received ({}); the pool now: controller {}, "
                    + "master {}, epoch {}", pool, resync.previous(), resync.from(), resync.reason(),
                    resync.snapshot().getController(), resync.snapshot().getMaster().getName(), resync.snapshot().getEpoch());
        }
    }

    @Override
    public void onDisconnected(XenHaBridgeException cause, Duration retryIn) {
        if (cause.code() == Status.Code.NOT_FOUND) {
            try {
                if (bridge.pools().reattach(pool)) {
                    LOG.warn("xenha-bridge: the bridge had forgotten pool {} (restarted?): attached it again", pool);
                    return;
                }
            } catch (XenHaBridgeException e) {
                LOG.warn("xenha-bridge: attaching pool {} again failed: {}", pool, e.getMessage());
                return;
            }
            // Not attached from here with a request to repeat (followed as the
            // bridge had it): hand its clusters over anew from CloudStack's records.
            for (long cluster : bridge.pools().clustersOf(pool)) {
                bridge.resyncCluster(cluster);
            }
        }
        LOG.warn("xenha-bridge: pool {}: event stream interrupted, again in {} ms: {}", pool, retryIn.toMillis(), cause.getMessage());
    }

    @Override
    public void onStopped(XenHaBridgeException cause) {
        if (cause != null) {
            LOG.error("xenha-bridge: pool {}: no longer following its events: {}", pool, cause.getMessage());
        }
    }
}
