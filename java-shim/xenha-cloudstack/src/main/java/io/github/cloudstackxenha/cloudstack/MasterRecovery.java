package io.github.cloudstackxenha.cloudstack;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

import cloudstack.xenha.v1.Xenha.Controller;
import cloudstack.xenha.v1.Xenha.ElectMasterRequest;
import cloudstack.xenha.v1.Xenha.ElectMasterResponse;
import cloudstack.xenha.v1.Xenha.HAModeResponse;
import io.github.cloudstackxenha.client.Durations;
import io.github.cloudstackxenha.client.XenHaBridgeException;

/**
 * CloudStack's side of the dead-master path. A stock management server never
 * replaces a pool master (XenServerConnectionPool.connect only follows
 * HOST_IS_SLAVE redirects, to the dead master too), so when the bridge
 * reports an attached pool's master lost, this asks the bridge to elect.
 *
 * <p>Once per pool across management servers: the request id is made of the
 * pool and the epoch the loss was seen at ({@code cloudstack-master-lost-POOL-EPOCH}),
 * and the bridges share epochs, results and a lease per pool, so every
 * management server's ask is one election (the others get its answer, or
 * ABORTED once the epoch moved). Under XenHA the bridge waits for XenHA's
 * choice; with nobody allowed to act it refuses. A refusal (the old master
 * may be alive, no BMC) is retried every {@code xenha.master.retry_interval}
 * while the master stays lost; a master seen again ends it.
 *
 * <p>CloudStack's XenServer resources then find the new master by themselves:
 * each host's next call logs in to its own address and follows the slave's
 * HOST_IS_SLAVE redirect, now naming the new master (docs/java-shim.md).
 */
public final class MasterRecovery implements AutoCloseable {
    private static final Logger LOG = LogManager.getLogger(MasterRecovery.class);

    private final XenHaBridgeContext bridge;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "xenha-master-recovery");
        t.setDaemon(true);
        return t;
    });
    private final Map<String, ScheduledFuture<?>> pending = new ConcurrentHashMap<>();
    /** The last refusal logged per pool: the same one again is logged at DEBUG only. */
    private final Map<String, String> lastRefusal = new ConcurrentHashMap<>();

    MasterRecovery(XenHaBridgeContext bridge) {
        this.bridge = bridge;
    }

    /** The bridge reported {@code pool}'s master lost: elect soon (once per pool at a time). */
    public void masterLost(String pool) {
        if (!bridge.settings().recoverMaster()) {
            LOG.warn("xenha-bridge: pool {}: master lost; {}=false, so nobody on this management server asks for an election",
                    pool, ShimSettings.Keys.MASTER_RECOVER);
            return;
        }
        schedule(pool, 0);
    }

    /** A master is known again for {@code pool}: no more attempts. */
    public void masterFound(String pool) {
        lastRefusal.remove(pool);
        ScheduledFuture<?> f = pending.remove(pool);
        if (f != null) {
            f.cancel(false);
        }
    }

    private void schedule(String pool, long delayMillis) {
        pending.compute(pool, (p, f) -> {
            if (f != null && !f.isDone()) {
                return f;
            }
            return timer.schedule(() -> attempt(pool), delayMillis, TimeUnit.MILLISECONDS);
        });
    }

    /** One attempt: returns whether another is needed. Runs on the timer thread. */
    void attempt(String pool) {
        pending.remove(pool);
        boolean again;
        try {
            again = !recover(pool);
        } catch (RuntimeException e) {
            LOG.error("xenha-bridge: pool {}: electing a new master failed: {}", pool, e.toString());
            again = true;
        }
        if (again && !timer.isShutdown()) {
            schedule(pool, bridge.settings().masterRetry().toMillis());
        }
    }

    /** @return true when the pool has a master again or nobody here should ask any more */
    boolean recover(String pool) {
        return recover(pool, false);
    }

    private boolean recover(String pool, boolean retried) {
        HAModeResponse mode;
        try {
            mode = bridge.client().haMode(pool);
        } catch (XenHaBridgeException e) {
            if (firstTime(pool, "unreachable: " + e.code())) {
                LOG.warn("xenha-bridge: pool {}: master lost, but the bridge cannot be asked: {}", pool, e.getMessage());
            }
            return false;
        }
        if (mode.getMaster().getReachable()) {
            lastRefusal.remove(pool);
            LOG.info("xenha-bridge: pool {}: the bridge reaches master {} again", pool, mode.getMaster().getName());
            return true;
        }
        if (mode.getController() != Controller.CONTROLLER_CLOUDSTACK && mode.getController() != Controller.CONTROLLER_XENHA) {
            if (firstTime(pool, "controller: " + mode.getController())) {
                LOG.error("xenha-bridge: pool {}: master lost and nobody may elect one ({}, policy {}); see the bridge's warnings: "
                        + "xenha-bridge status", pool, mode.getController(), mode.getPolicy());
            }
            return false;
        }
        ElectMasterRequest request = ElectMasterRequest.newBuilder().setPool(pool)
                .setRequestId("cloudstack-master-lost-" + pool + "-" + mode.getEpoch()).setExpectedEpoch(mode.getEpoch())
                .setReason("the bridge reported the master lost; asked by CloudStack's management server").build();
        ElectMasterResponse r;
        try {
            r = bridge.client().electMaster(request);
        } catch (XenHaBridgeException e) {
            if (e.code() == io.grpc.Status.Code.ABORTED && !retried) {
                LOG.info("xenha-bridge: pool {} changed meanwhile ({}): reading it again", pool, e.getMessage());
                return recover(pool, true);
            }
            if (firstTime(pool, e.code() + ": " + e.reason())) {
                LOG.warn("xenha-bridge: pool {}: election not done: {}; asking again every {} while the master stays lost. "
                        + "Trace: {}", pool, e.getMessage(), Durations.format(bridge.settings().masterRetry()), e.violations());
            }
            return false;
        }
        lastRefusal.remove(pool);
        LOG.info("xenha-bridge: pool {}: master {} at {} ({}, epoch {}); CloudStack's hosts reconnect to it through their "
                + "HOST_IS_SLAVE redirect. Trace: {}", pool, r.getMaster().getName(), r.getMaster().getAddress(), r.getElectedBy(),
                r.getEpoch(), r.getTraceList().stream().map(XenHaBridgeFenceBuilder::step).collect(Collectors.joining("; ")));
        return !r.getMaster().getAddress().isEmpty();
    }

    /**
     * Whether {@code why} differs from the last outcome recorded for
     * {@code pool} (it becomes the last): a repeat, every retry interval for
     * as long as the master stays lost, is logged at DEBUG only.
     */
    private boolean firstTime(String pool, String why) {
        if (why.equals(lastRefusal.put(pool, why))) {
            LOG.debug("xenha-bridge: pool {}: master still lost ({}); asking again in {}", pool, why,
                    Durations.format(bridge.settings().masterRetry()));
            return false;
        }
        return true;
    }

    @Override
    public void close() {
        timer.shutdownNow();
    }
}
