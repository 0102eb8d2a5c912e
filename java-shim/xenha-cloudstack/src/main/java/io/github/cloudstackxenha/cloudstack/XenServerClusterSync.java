package io.github.cloudstackxenha.cloudstack;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.springframework.context.ApplicationContext;
import org.springframework.context.ApplicationContextAware;

import com.cloud.agent.AgentManager;
import com.cloud.agent.Listener;
import com.cloud.agent.api.AgentControlAnswer;
import com.cloud.agent.api.AgentControlCommand;
import com.cloud.agent.api.Answer;
import com.cloud.agent.api.Command;
import com.cloud.agent.api.StartupCommand;
import com.cloud.dc.dao.ClusterDao;
import com.cloud.host.Host;
import com.cloud.host.Status;
import com.cloud.host.dao.HostDao;
import com.cloud.host.dao.HostDetailsDao;
import com.cloud.org.Cluster;
import com.cloud.utils.db.GenericDao;

import org.apache.cloudstack.outofbandmanagement.OutOfBandManagement;
import org.apache.cloudstack.outofbandmanagement.dao.OutOfBandManagementDao;

import cloudstack.xenha.v1.Xenha.BMC;
import cloudstack.xenha.v1.Xenha.HostBMC;
import io.github.cloudstackxenha.client.XenHaBridgeException;

/**
 * Hands every XenServer cluster CloudStack connects to the bridge, from
 * CloudStack's own records: no second list of pools to keep in sync.
 *
 * <p>An AgentManager listener, like the stock XcpServerDiscoverer
 * (it calls {@code registerForHostEvents(this, true, false, true)} in its
 * configure(); this listener registers without priority):
 * when a XenServer host connects (at start-up, when added, after a
 * reconnect), its cluster's hosts come from {@code HostDao.findByClusterId},
 * the credentials from the host's details ({@code HostDetailsDao.findDetails},
 * where XcpServerDiscoverer.find stored them, the password decrypted by
 * HostDetailsDaoImpl), the name from the cluster, each host's BMC from its
 * out-of-band management settings (the witness that lets the bridge replace
 * a dead master: without one it refuses). The attach runs on its own
 * thread, never inside CloudStack's connect. The DAOs need no managed
 * context there: every call on a GenericDaoBase bean goes through
 * CloudStack's TransactionContextInterceptor (advised on
 * {@code target(com.cloud.utils.db.GenericDaoBase)} in
 * spring-core-system-context-inheritable.xml), which opens a
 * TransactionLegacy for the call and closes it after. A cluster that cannot be
 * attached (bridge down, refused) stays on stock behaviour and is tried again
 * at its hosts' next connect; the reason is logged at ERROR.
 *
 * <p>A host added to the cluster connects (AgentManagerImpl.handleDirectConnectAgent
 * notifies processHostAdded, then processConnect), a host removed is
 * notified after its row is gone (ResourceManagerImpl.doDeleteHost calls
 * notifyMonitorsOfRemovedHost after its transaction): either way the
 * cluster is handed over again with the hosts it has now, and the bridge
 * follows. When its last XenServer host is removed (a cluster must be empty
 * before CloudStack deletes it), a pool this management server attached is
 * detached. Every {@code xenha.clusters.resync_interval} each cluster seen
 * here is handed over again, for what this server hears nothing of: hosts
 * added or removed through another management server, out-of-band
 * management settings edited since.
 */
public class XenServerClusterSync implements Listener, ApplicationContextAware {
    private static final Logger LOG = LogManager.getLogger(XenServerClusterSync.class);

    private XenHaBridgeContext bridge;
    private AgentManager agentManager;
    private HostDao hostDao;
    private HostDetailsDao hostDetailsDao;
    private ClusterDao clusterDao;
    private OutOfBandManagementDao oobmDao;
    private static final long SYNC_SPACING_NANOS = TimeUnit.SECONDS.toNanos(10);
    private volatile long spacingNanos = SYNC_SPACING_NANOS;
    /** Clusters with a sync scheduled and not started: one scheduled sync reads the records of every request before it. */
    private final Set<Long> scheduled = ConcurrentHashMap.newKeySet();
    private final Map<Long, Long> lastSync = new ConcurrentHashMap<>();
    /** One thread: syncs never overlap, and a request made while one runs is served by the next. */
    private final ScheduledExecutorService worker = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "xenha-cluster-sync");
        t.setDaemon(true);
        return t;
    });

    /**
     * CloudStack's beans, found by type in the module's parents; a setter
     * given one already wins (tests). Not Spring's autowiring: a missing or
     * ambiguous bean would fail the module's context, which CloudStack only
     * logs at WARN.
     */
    @Override
    public void setApplicationContext(ApplicationContext ctx) {
        agentManager = given(agentManager, ctx, AgentManager.class);
        hostDao = given(hostDao, ctx, HostDao.class);
        hostDetailsDao = given(hostDetailsDao, ctx, HostDetailsDao.class);
        clusterDao = given(clusterDao, ctx, ClusterDao.class);
        oobmDao = given(oobmDao, ctx, OutOfBandManagementDao.class);
    }

    /** {@code set}, else the only bean of {@code type} in ctx and its parents, else null. */
    private static <T> T given(T set, ApplicationContext ctx, Class<T> type) {
        return set != null ? set : ctx.getBeanProvider(type).getIfUnique();
    }

    public void setBridge(XenHaBridgeContext bridge) {
        this.bridge = bridge;
    }

    public void setAgentManager(AgentManager agentManager) {
        this.agentManager = agentManager;
    }

    public void setHostDao(HostDao hostDao) {
        this.hostDao = hostDao;
    }

    public void setHostDetailsDao(HostDetailsDao hostDetailsDao) {
        this.hostDetailsDao = hostDetailsDao;
    }

    public void setClusterDao(ClusterDao clusterDao) {
        this.clusterDao = clusterDao;
    }

    public void setOutOfBandManagementDao(OutOfBandManagementDao oobmDao) {
        this.oobmDao = oobmDao;
    }

    /** Spring init-method: listens for host connections when the context is active and auto-attach is on. */
    public void start() {
        if (bridge == null || !bridge.isActive()) {
            return;
        }
        if (!bridge.settings().autoAttach()) {
            LOG.info("xenha-bridge: {}=false: clusters are handed to the bridge only by its own configuration",
                    ShimSettings.Keys.CLUSTERS_AUTO_ATTACH);
            return;
        }
        if (agentManager == null || hostDao == null || hostDetailsDao == null || clusterDao == null) {
            LOG.error("xenha-bridge: CloudStack's AgentManager, HostDao, HostDetailsDao or ClusterDao was not found in the "
                    + "management server (is this CloudStack 4.20 or later?): no cluster is handed to the bridge automatically, "
                    + "every XenServer cluster keeps stock behaviour. Attach pools in the bridge's configuration instead");
            return;
        }
        agentManager.registerForHostEvents(this, true, false, false);
        bridge.setClusterResync(cluster -> sync(cluster, true));
        long every = bridge.settings().resyncInterval().toNanos();
        if (every > 0) {
            // Changes this server hears nothing of: hosts added or removed
            // through another management server, out-of-band management
            // (BMC) settings edited since.
            worker.scheduleWithFixedDelay(() -> {
                try {
                    lastSync.keySet().forEach(c -> sync(c, false));
                } catch (RuntimeException e) { // an escaping exception would end every later resync
                    LOG.error("xenha-bridge: resyncing the clusters failed ({}); tried again in {}", e.toString(),
                            bridge.settings().resyncInterval());
                }
            }, every, every, TimeUnit.NANOSECONDS);
        }
        LOG.info("xenha-bridge: every XenServer cluster CloudStack connects is handed to the bridge");
    }

    /** Tests: the spacing between two syncs of one cluster (10 s). */
    void syncSpacing(java.time.Duration d) {
        spacingNanos = d.toNanos();
    }

    /** Spring destroy-method. CloudStack's unregisterForHostEvents is not called: it removes by list index upstream. */
    public void stop() {
        worker.shutdownNow();
    }

    @Override
    public void processConnect(Host host, StartupCommand cmd, boolean forRebalance) {
        if (!Hosts.isXenServer(host) || host.getClusterId() == null || !bridge.isActive()) {
            return;
        }
        sync(host.getClusterId(), false);
    }

    /** Syncs {@code cluster} on the worker thread; {@code now}: even if it was synced a moment ago. */
    private void sync(long cluster, boolean now) {
        // Every connect syncs the cluster (an attach with the same members is
        // a no-op on the bridge and refreshes the BMCs), at most every
        // SYNC_SPACING: a cluster's hosts connect together. A request inside
        // the spacing is not dropped but served at its end, so a host added
        // just after another connect still reaches the bridge.
        if (!scheduled.add(cluster)) {
            return;
        }
        Long last = lastSync.get(cluster);
        long delay = now || last == null ? 0 : Math.max(0, spacingNanos - (System.nanoTime() - last));
        try {
            worker.schedule(() -> {
                scheduled.remove(cluster);
                lastSync.put(cluster, System.nanoTime()); // a request from now on reads records newer than this sync's
                try {
                    attach(cluster);
                } catch (RuntimeException e) {
                    LOG.error("xenha-bridge: cluster {} could not be handed to the bridge, or taken back from it ({}); tried again "
                            + "when its hosts next connect or at the next resync (xenha.clusters.resync_interval)", cluster, e.toString());
                }
            }, delay, TimeUnit.NANOSECONDS);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            scheduled.remove(cluster);
        }
    }

    /**
     * Attaches cluster {@code clusterId} from CloudStack's records.
     *
     * @return whether the bridge now has it
     */
    public boolean attach(long clusterId) {
        List<String> addresses = new ArrayList<>();
        List<HostBMC> bmcs = new ArrayList<>();
        Map<String, String> credentials = null;
        List<? extends Host> hosts = hostDao.findByClusterId(clusterId);
        for (Host h : hosts) {
            if (!Hosts.isXenServer(h) || h.getPrivateIpAddress() == null) {
                continue;
            }
            addresses.add(h.getPrivateIpAddress());
            bmc(h).ifPresent(bmcs::add);
            if (credentials == null) {
                Map<String, String> d = hostDetailsDao.findDetails(h.getId());
                if (d != null && d.get("username") != null && d.get("password") != null) {
                    credentials = d;
                }
            }
        }
        if (addresses.isEmpty()) {
            // The cluster's last XenServer host was removed from CloudStack.
            // Forgotten once done: a detach that fails is tried again at the
            // next resync.
            bridge.pools().poolOfCluster(clusterId).ifPresent(pool -> {
                if (bridge.pools().attachedHere(pool)) {
                    bridge.poolAttacher().detachCluster(clusterId);
                } else {
                    bridge.poolAttacher().forgetCluster(clusterId); // the bridge's own (its configuration): kept there
                }
            });
            lastSync.remove(clusterId);
            return false;
        }
        if (credentials == null) {
            LOG.error("xenha-bridge: cluster {}: no host has a username and password in host_details: not handed to the bridge; "
                    + "it keeps stock behaviour", clusterId);
            return false;
        }
        GenericDao<? extends Cluster, Long> clusters = clusterDao;
        Cluster c = clusters.findById(clusterId);
        String name = XenServerPoolAttacher.poolName(c == null ? null : c.getName(), clusterId);
        String user = credentials.get("username");
        String password = credentials.get("password");
        try {
            // A pool the bridge has under another name (its own configuration,
            // with the BMCs it fences with) is followed as it is: one XenServer
            // pool is never two bridge pools.
            // One this server attached (under the cluster's old name, if it was
            // renamed since) is attached again as it is named: its members
            // and credentials follow.
            java.util.Optional<String> known = bridge.pools().poolWithMember(addresses);
            if (known.isPresent() && !known.get().equals(name) && !known.get().equals(name + "-" + clusterId)
                    && !bridge.pools().attachedHere(known.get())) {
                bridge.poolAttacher().adoptCluster(clusterId, known.get());
                return true;
            }
            if (bmcs.isEmpty()) {
                LOG.warn("xenha-bridge: cluster {} ({}): no host has out-of-band management (a BMC) enabled in CloudStack: "
                        + "the bridge cannot prove a dead master off and will not replace it. Configure out-of-band management "
                        + "(ipmitool or redfish) for its hosts", clusterId, name);
            }
            String as = known.orElse(name);
            try {
                bridge.poolAttacher().attachPool(clusterId, as, addresses, user, password, bmcs);
            } catch (XenHaBridgeException e) {
                if (e.code() == io.grpc.Status.Code.FAILED_PRECONDITION && known.isPresent()) {
                    // The new hosts leave out the pool's master: the bridge keeps
                    // the members it has until another host is master.
                    LOG.warn("xenha-bridge: cluster {}: pool {} keeps its members for now: {}. Tried again at the next resync",
                            clusterId, as, e.getMessage());
                    bridge.poolAttacher().adoptCluster(clusterId, as);
                    return true;
                }
                if (e.code() != io.grpc.Status.Code.ALREADY_EXISTS) {
                    throw e;
                }
                if (known.isPresent()) {
                    // The bridge has the pool with other settings: from its own
                    // configuration, or attached with another policy or TLS
                    // (only members and credentials follow an attach). Follow it as it is.
                    LOG.warn("xenha-bridge: cluster {}: the bridge has pool {} with other settings ({}); it keeps them and is "
                            + "followed as it is. Edit the bridge's configuration, or detach the pool, to hand it over anew",
                            clusterId, as, e.getMessage());
                    bridge.poolAttacher().adoptCluster(clusterId, as);
                    return true;
                }
                // Another pool has the cluster's name (two clusters named alike): the id tells them apart.
                bridge.poolAttacher().attachPool(clusterId, name + "-" + clusterId, addresses, user, password, bmcs);
            }
            return true;
        } catch (XenHaBridgeException e) {
            String meanwhile = bridge.pools().poolOfCluster(clusterId)
                    .map(p -> "It stays with the bridge's pool " + p + " as handed over before")
                    .orElse("It keeps CloudStack's stock behaviour until it is");
            LOG.error("xenha-bridge: cluster {} ({}) could not be handed to the bridge: {}. {}; tried again when its hosts next "
                    + "connect or at the next resync. Check that xenha-bridge serve runs and answers at {}",
                    clusterId, name, e.getMessage(), meanwhile, bridge.client().config().target());
            return false;
        }
    }

    /**
     * The host's BMC from CloudStack's out-of-band management settings
     * (OutOfBandManagementDao.findByHost; the password decrypted on load),
     * keyed by the host's XenServer UUID: IPMITOOL as {@code ipmi} at
     * address:port (623 by default), REDFISH as {@code redfish} at
     * https://address (an address with a scheme is taken as the URL).
     */
    java.util.Optional<HostBMC> bmc(Host h) {
        if (oobmDao == null) {
            return java.util.Optional.empty();
        }
        OutOfBandManagement o = oobmDao.findByHost(h.getId());
        java.util.Optional<String> uuid = Hosts.xenUuid(h);
        if (o == null || !o.isEnabled() || o.getDriver() == null || o.getAddress() == null || o.getAddress().isEmpty()
                || !uuid.isPresent()) {
            return java.util.Optional.empty();
        }
        String port = o.getPort() == null ? "" : o.getPort().trim();
        BMC.Builder b = BMC.newBuilder().setUsername(o.getUsername() == null ? "" : o.getUsername())
                .setPassword(o.getPassword() == null ? "" : o.getPassword());
        switch (o.getDriver().toLowerCase(java.util.Locale.ROOT)) {
            case "ipmitool":
                String host = o.getAddress().contains(":") && !o.getAddress().startsWith("[") ? "[" + o.getAddress() + "]" : o.getAddress();
                b.setDriver("ipmi").setAddress(host + ":" + (port.isEmpty() ? "623" : port));
                break;
            case "redfish":
                String a = o.getAddress();
                b.setDriver("redfish").setAddress(a.contains("://") ? a : "https://" + a + (port.isEmpty() ? "" : ":" + port));
                break;
            default:
                LOG.warn("xenha-bridge: {}: out-of-band management driver {} is not one the bridge can use (ipmitool, redfish)",
                        Hosts.describe(h), o.getDriver());
                return java.util.Optional.empty();
        }
        return java.util.Optional.of(HostBMC.newBuilder().setHost(uuid.get()).setBmc(b).build());
    }

    @Override
    public boolean processAnswers(long agentId, long seq, Answer[] answers) {
        return false;
    }

    @Override
    public boolean processCommands(long agentId, long seq, Command[] commands) {
        return false;
    }

    @Override
    public AgentControlAnswer processControlCommand(long agentId, AgentControlCommand cmd) {
        return null;
    }

    @Override
    public void processHostAdded(long hostId) {
    }

    @Override
    public boolean processDisconnect(long agentId, Status state) {
        return false;
    }

    @Override
    public void processHostAboutToBeRemoved(long hostId) {
    }

    @Override
    public void processHostRemoved(long hostId, long clusterId) {
        if (bridge.isActive()) { // registered only with auto-attach on
            sync(clusterId, true);
        }
    }

    @Override
    public boolean isRecurring() {
        return false;
    }

    @Override
    public int getTimeout() {
        return 0;
    }

    @Override
    public boolean processTimeout(long agentId, long seq) {
        return false;
    }
}
