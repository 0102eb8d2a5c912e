package io.github.cloudstackxenha.cloudstack;

import java.util.Collection;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

import com.google.protobuf.Duration;

import cloudstack.xenha.v1.Xenha.AttachPoolRequest;
import cloudstack.xenha.v1.Xenha.Controller;
import cloudstack.xenha.v1.Xenha.AttachPoolResponse;
import cloudstack.xenha.v1.Xenha.HostBMC;
import cloudstack.xenha.v1.Xenha.PoolSummary;
import io.github.cloudstackxenha.client.PoolEventsListener;
import io.github.cloudstackxenha.client.XenHaBridgeException;
import io.grpc.Status;

/**
 * Hands a XenServer cluster's pool to the bridge when CloudStack connects
 * the cluster: every member's XAPI URL (so the bridge can follow the master
 * when the last known one dies), the credentials CloudStack was given, and
 * the policy, storage timeout and XAPI TLS of the configuration.
 *
 * <p>{@link XenServerClusterSync} attaches a cluster when its hosts
 * connect, from CloudStack's records; other code may call
 * {@link #attachCluster} too
 * (through {@code XenHaBridgeContext.current()}). Attaching the same pool
 * again is a no-op on the bridge (its BMCs are replaced); with other
 * members or credentials the bridge takes them, keeping what it knew. The pool is named
 * after the cluster; its events are then followed ({@link PoolWatch}), which
 * also attaches it again if the bridge restarts.
 *
 * <p>One per {@link XenHaBridgeContext}: {@link XenHaBridgeContext#poolAttacher()}.
 */
public class XenServerPoolAttacher {
    private static final Logger LOG = LogManager.getLogger(XenServerPoolAttacher.class);
    private static final int MAX_NAME = 63;

    private final XenHaBridgeContext bridge;
    private final Map<String, PoolEventsListener> watches = new ConcurrentHashMap<>();

    XenServerPoolAttacher(XenHaBridgeContext bridge) {
        this.bridge = bridge;
    }

    /**
     * Attaches the pool of cluster {@code clusterId}.
     *
     * @param clusterName CloudStack's cluster name, which names the pool on the bridge
     * @param hostAddresses the management address of every member
     * @return the pool as the bridge now has it
     * @throws XenHaBridgeException when the bridge refuses (a different pool under that name:
     *         ALREADY_EXISTS; bad input: INVALID_ARGUMENT naming the field) or cannot be reached
     */
    public PoolSummary attachCluster(long clusterId, String clusterName, Collection<String> hostAddresses, String username,
            String password) {
        return attachCluster(clusterId, clusterName, hostAddresses, username, password, java.util.List.of());
    }

    /**
     * As {@link #attachCluster(long, String, Collection, String, String)}, with
     * the members' BMCs (CloudStack's out-of-band management settings), which
     * the bridge fences with and proves a dead master off with.
     */
    public PoolSummary attachCluster(long clusterId, String clusterName, Collection<String> hostAddresses, String username,
            String password, Collection<HostBMC> bmcs) {
        return attachPool(clusterId, poolName(clusterName, clusterId), hostAddresses, username, password, bmcs);
    }

    /** Attaches cluster {@code clusterId} as pool {@code pool} (a name {@link #poolName} gave). */
    PoolSummary attachPool(long clusterId, String pool, Collection<String> hostAddresses, String username, String password,
            Collection<HostBMC> bmcs) {
        ShimSettings s = bridge.settings();
        TreeSet<String> members = new TreeSet<>();
        for (String a : hostAddresses) {
            if (a != null && !a.trim().isEmpty()) {
                members.add(s.memberUrl(a.trim()));
            }
        }
        AttachPoolRequest.Builder req = AttachPoolRequest.newBuilder().setName(pool)
                .addAllMembers(members).setUsername(username).setPassword(password).setPolicy(s.policy()).setTls(s.xapiTls()).addAllBmcs(bmcs);
        if (s.storageTimeout() != null) {
            req.setStorageTimeout(Duration.newBuilder().setSeconds(s.storageTimeout().getSeconds())
                    .setNanos(s.storageTimeout().getNano()));
        }
        AttachPoolRequest request = req.build();
        AttachPoolResponse r = bridge.client().attachPool(request);
        if ("api".equals(r.getPool().getSource())) {
            bridge.pools().remember(clusterId, request);
        } else {
            // The bridge's own pool (its configuration) answered as the same
            // one: followed, never attached again or detached from here.
            bridge.pools().adopt(clusterId, request.getName());
        }
        LOG.info("xenha-bridge: cluster {} {} as pool {} ({}, {} member(s), controller {})", clusterId,
                r.getCreated() ? "attached" : "was already attached", request.getName(), r.getPool().getPoolUuid(),
                members.size(), r.getPool().getController());
        if (r.getPool().getObserved() && r.getPool().getController() == Controller.CONTROLLER_NONE) {
            // The bridge has the pool, so the stock fencer is not asked, and
            // the bridge may not act: its hosts' VMs have no HA until this changes.
            LOG.error("xenha-bridge: cluster {} (pool {}): nobody may fence its hosts or replace its master (controller none, "
                    + "policy {}): its VMs have no HA. Use policy auto ({}), or enable XenHA if the policy requires it; "
                    + "see xenha-bridge status", clusterId, request.getName(), r.getPool().getPolicy(), ShimSettings.Keys.POOL_POLICY);
        }
        watch(request.getName());
        return r.getPool();
    }

    /**
     * Cluster {@code clusterId} is the bridge's pool {@code pool} already
     * (found by member address): its events are followed, nothing is attached.
     */
    public void adoptCluster(long clusterId, String pool) {
        bridge.pools().adopt(clusterId, pool);
        LOG.info("xenha-bridge: cluster {} is the bridge's pool {} already: following it", clusterId, pool);
        watch(pool);
    }

    /** Stops the bridge watching the cluster's pool (the cluster was removed from CloudStack). */
    public void detachCluster(long clusterId) {
        String pool = bridge.pools().poolOfCluster(clusterId).orElse(null);
        if (pool == null) {
            return;
        }
        PoolEventsListener w = watches.remove(pool);
        if (w != null) {
            w.close();
        }
        try {
            bridge.client().detachPool(pool);
        } catch (XenHaBridgeException e) {
            if (e.code() != Status.Code.NOT_FOUND) {
                throw e;
            }
        }
        bridge.pools().forget(clusterId);
        LOG.info("xenha-bridge: cluster {} detached (pool {})", clusterId, pool);
    }

    private void watch(String pool) {
        watches.compute(pool, (p, w) -> w != null && !w.isStopped() ? w : bridge.client().poolEvents(p, new PoolWatch(p, bridge)));
    }

    /**
     * The bridge no longer has cluster {@code clusterId}'s pool and it could
     * not be attached again: forgotten, so that its hosts' next connect hands
     * it over anew.
     */
    void forgetCluster(long clusterId) {
        String pool = bridge.pools().poolOfCluster(clusterId).orElse(null);
        bridge.pools().forget(clusterId);
        if (pool != null) {
            PoolEventsListener w = watches.remove(pool);
            if (w != null) {
                w.close();
            }
        }
    }

    /**
     * The bridge's name for a cluster's pool: the cluster name with anything
     * but letters, digits, '.', '_' and '-' replaced by '-', at most 63
     * characters; {@code cluster-<id>} when nothing is left.
     */
    static String poolName(String clusterName, long clusterId) {
        String n = clusterName == null ? "" : clusterName.trim().replaceAll("[^A-Za-z0-9._-]+", "-").replaceAll("^-+|-+$", "");
        if (n.length() > MAX_NAME) {
            n = n.substring(0, MAX_NAME);
        }
        return n.isEmpty() ? "cluster-" + clusterId : n;
    }
}
