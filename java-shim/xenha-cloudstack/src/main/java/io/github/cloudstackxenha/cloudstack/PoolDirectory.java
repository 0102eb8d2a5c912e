package io.github.cloudstackxenha.cloudstack;

import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

import com.cloud.host.Host;

import cloudstack.xenha.v1.Xenha.AttachPoolRequest;
import cloudstack.xenha.v1.Xenha.PoolSummary;
import io.github.cloudstackxenha.client.XenHaBridgeClient;
import io.github.cloudstackxenha.client.XenHaBridgeException;

/**
 * Which bridge pool a CloudStack host belongs to.
 *
 * <p>A cluster attached through {@link XenServerPoolAttacher} is known by
 * its id. Otherwise (a pool from the bridge's own configuration, or a
 * management server restarted since the attach) the bridge is asked: the
 * attached pool with the host's address among its member URLs, else the one
 * whose HAMode lists the host's UUID. The answer is remembered per cluster.
 * A host no attached pool has is "not mine": the adapters answer null and
 * CloudStack asks its other adapters.
 */
public final class PoolDirectory {
    private final XenHaBridgeClient client;
    private final Map<Long, String> byCluster = new ConcurrentHashMap<>();
    private final Map<String, AttachPoolRequest> attached = new ConcurrentHashMap<>();

    PoolDirectory(XenHaBridgeClient client) {
        this.client = client;
    }

    /**
     * The cluster {@code clusterId} was attached with {@code request}. The
     * request (credentials included) is kept in memory to attach the pool
     * again after the bridge restarts: the bridge does not persist pools
     * attached at run time.
     */
    void remember(long clusterId, AttachPoolRequest request) {
        byCluster.put(clusterId, request.getName());
        attached.put(request.getName(), request);
    }

    /**
     * The bridge already has the cluster's pool under {@code pool} (its own
     * configuration, or another management server attached it): known as the
     * bridge's without attaching it again.
     */
    void adopt(long clusterId, String pool) {
        byCluster.put(clusterId, pool);
    }

    /**
     * The pool the bridge already has with one of {@code addresses} among
     * its members, if any.
     *
     * @throws XenHaBridgeException when the bridge cannot be asked
     */
    Optional<String> poolWithMember(java.util.Collection<String> addresses) {
        return poolWithMember(addresses, client.listPools());
    }

    private static Optional<String> poolWithMember(java.util.Collection<String> addresses, java.util.List<PoolSummary> pools) {
        for (PoolSummary p : pools) {
            for (String member : p.getMembersList()) {
                if (addresses.contains(Hosts.hostOfUrl(member))) {
                    return Optional.of(p.getName());
                }
            }
        }
        return Optional.empty();
    }

    /** The cluster is no longer handed to the bridge. */
    void forget(long clusterId) {
        String pool = byCluster.remove(clusterId);
        if (pool != null && !byCluster.containsValue(pool)) {
            attached.remove(pool);
        }
    }

    /** The clusters known as {@code pool}. */
    java.util.List<Long> clustersOf(String pool) {
        java.util.List<Long> out = new java.util.ArrayList<>();
        byCluster.forEach((c, p) -> {
            if (p.equals(pool)) {
                out.add(c);
            }
        });
        return out;
    }

    /** Whether this management server attached {@code pool} (not only found it on the bridge). */
    boolean attachedHere(String pool) {
        return attached.containsKey(pool);
    }

    /** The pool name a cluster was attached as, if this management server attached it. */
    public Optional<String> poolOfCluster(long clusterId) {
        return Optional.ofNullable(byCluster.get(clusterId));
    }

    /**
     * Attaches {@code pool} again with what it was attached with, if this
     * management server attached it.
     *
     * @return false when the pool is not one this management server attached
     * @throws XenHaBridgeException when the bridge refuses or cannot be reached
     */
    public boolean reattach(String pool) {
        AttachPoolRequest request = attached.get(pool);
        if (request == null) {
            return false;
        }
        client.attachPool(request);
        return true;
    }

    /**
     * The bridge pool of {@code host}, or empty when no attached pool has it.
     *
     * @throws XenHaBridgeException when the bridge must be asked and cannot be
     */
    public Optional<String> poolOf(Host host) {
        Long cluster = host.getClusterId();
        if (cluster != null) {
            String known = byCluster.get(cluster);
            if (known != null) {
                return Optional.of(known);
            }
        }
        Optional<String> found = lookUp(host);
        if (found.isPresent() && cluster != null) {
            byCluster.put(cluster, found.get());
        }
        return found;
    }

    private Optional<String> lookUp(Host host) {
        String ip = host.getPrivateIpAddress();
        java.util.List<PoolSummary> pools = client.listPools();
        Optional<String> byAddress = ip == null ? Optional.empty() : poolWithMember(java.util.List.of(ip), pools);
        if (byAddress.isPresent()) {
            return byAddress;
        }
        if (Hosts.xenUuid(host).isPresent()) {
            for (PoolSummary p : pools) {
                if (Hosts.find(client.haMode(p.getName()), host).isPresent()) {
                    return Optional.of(p.getName());
                }
            }
        }
        return Optional.empty();
    }
}
