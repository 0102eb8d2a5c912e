package io.github.cloudstackxenha.cloudstack;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.core.io.Resource;
import org.springframework.core.io.support.PathMatchingResourcePatternResolver;

import com.cloud.agent.AgentManager;
import com.cloud.agent.Listener;
import com.cloud.dc.ClusterVO;
import com.cloud.dc.dao.ClusterDao;
import com.cloud.host.Host;
import com.cloud.host.dao.HostDao;
import com.cloud.host.dao.HostDetailsDao;
import com.cloud.hypervisor.Hypervisor.HypervisorType;
import org.apache.cloudstack.outofbandmanagement.OutOfBandManagement;
import org.apache.cloudstack.outofbandmanagement.dao.OutOfBandManagementDao;

import cloudstack.xenha.v1.Xenha.AttachPoolRequest;
import cloudstack.xenha.v1.Xenha.FenceHostResponse;
import cloudstack.xenha.v1.Xenha.FenceOutcome;
import io.github.cloudstackxenha.client.FakeBridge;

/**
 * The module as a stock management server loads it ({@link CloudStackModel}):
 * its module.properties, its Spring XML, the registries and the HA
 * manager's order of calls, CloudStack's beans found by type.
 */
class ModuleInCloudStackTest {
    static final String UUID0 = FenceBuilderTest.UUID0;

    @TempDir
    Path dir;
    private FakeBridge bridge;
    private final List<Listener> listeners = new CopyOnWriteArrayList<>();
    private final Map<Long, List<Host>> hostsByCluster = new HashMap<>();
    private final Host attached = Fakes.xen(5, UUID0, "10.0.0.11", 3);
    private final Host other = Fakes.xen(9, "0566c74d-1003-4c4d-bbbb-0407d1e2c640", "10.9.9.9", 4);
    private CloudStackModel cs;
    private final Map<Object, OutOfBandManagement> oobm = new HashMap<>();
    private final Map<Object, String> clusterNames = new HashMap<>();

    @BeforeEach
    void setUp() throws Exception {
        bridge = FakeBridge.startOnLoopback();
        hostsByCluster.put(3L, List.of(attached, Fakes.xen(6, "1566c74d-1003-4c4d-bbbb-0407d1e2c641", "10.0.0.12", 3)));
        hostsByCluster.put(4L, List.of(other));
        // A healthy pool: its master answers (the STARTED snapshot of a pool whose master is lost asks for an election).
        bridge.service().onHaMode(r -> bridge.service().defaultHaMode(r.getPool()).toBuilder()
                .setMaster(cloudstack.xenha.v1.Xenha.Master.newBuilder().setName("xs-5").setUuid(UUID0).setAddress("10.0.0.11")
                        .setReachable(true)).build());
    }

    @AfterEach
    void tearDown() {
        if (cs != null) {
            cs.close();
        }
        bridge.close();
        System.clearProperty(XenHaBridgeContext.CONFIG_FILE_PROPERTY);
    }

    /** CloudStack's beans the module looks up by type: DAOs over {@link #hostsByCluster}, an AgentManager keeping listeners. */
    private Map<String, Object> cloudStackBeans() {
        Map<String, Object> beans = new HashMap<>();
        beans.put("agentManager", java.lang.reflect.Proxy.newProxyInstance(AgentManager.class.getClassLoader(), new Class<?>[] {AgentManager.class},
                        (p, m, a) -> {
                            if (m.getName().equals("registerForHostEvents")) {
                                listeners.add((Listener) a[0]);
                                return listeners.size();
                            }
                            return m.getName().equals("toString") ? "AgentManager" : null;
                        }));
        beans.put("hostDaoImpl", java.lang.reflect.Proxy.newProxyInstance(HostDao.class.getClassLoader(), new Class<?>[] {HostDao.class},
                (p, m, a) -> m.getName().equals("findByClusterId") ? new ArrayList<>(hostsByCluster.getOrDefault(a[0], List.of()))
                        : m.getName().equals("toString") ? "HostDao" : null));
        beans.put("hostDetailsDaoImpl", java.lang.reflect.Proxy.newProxyInstance(HostDetailsDao.class.getClassLoader(),
                new Class<?>[] {HostDetailsDao.class}, (p, m, a) -> m.getName().equals("findDetails")
                        ? Map.of("username", "root", "password", "xs-password", "url", "http://x") : m.getName().equals("toString") ? "HostDetailsDao" : null));
        beans.put("outOfBandManagementDaoImpl", java.lang.reflect.Proxy.newProxyInstance(OutOfBandManagementDao.class.getClassLoader(),
                new Class<?>[] {OutOfBandManagementDao.class}, (p, m, a) -> m.getName().equals("findByHost") ? oobm.get(a[0])
                        : m.getName().equals("toString") ? "OutOfBandManagementDao" : null));
        beans.put("clusterDaoImpl", java.lang.reflect.Proxy.newProxyInstance(ClusterDao.class.getClassLoader(), new Class<?>[] {ClusterDao.class},
                (p, m, a) -> m.getName().equals("findById") ? new ClusterVO() {
                    @Override
                    public String getName() {
                        return clusterNames.getOrDefault(a[0], "Cluster " + a[0]);
                    }
                } : m.getName().equals("toString") ? "ClusterDao" : null));
        return beans;
    }

    private void config(String text) throws Exception {
        Path cfg = dir.resolve("xenha-bridge.properties");
        Files.write(cfg, ("xenha.bridge.target=" + bridge.address() + "\n" + text).getBytes(StandardCharsets.UTF_8));
        System.setProperty(XenHaBridgeContext.CONFIG_FILE_PROPERTY, cfg.toString());
    }

    private XenHaBridgeFenceBuilder ourFencer() {
        return cs.beans(XenHaBridgeFenceBuilder.class).get(0);
    }

    private void connect(Host h) throws Exception {
        for (Listener l : listeners) {
            l.processConnect(h, null, false);
        }
    }

    private void awaitAttached(String pool) throws InterruptedException {
        PoolAttacherTest.await("pool " + pool + " attached", () -> bridge.service().hasPool(pool));
    }

    @Test
    void theModuleIsVersionedAndHangsUnderXenServerCompute() throws Exception {
        Resource[] found = new PathMatchingResourcePatternResolver().getResources("classpath*:META-INF/cloudstack/xenha-bridge-*/module.properties");
        assertEquals(1, found.length);
        Properties p = new Properties();
        try (InputStream in = found[0].getInputStream()) {
            p.load(in);
        }
        assertTrue(p.getProperty("name").matches("xenha-bridge-[0-9].*"), p.getProperty("name"));
        assertTrue(found[0].getURL().toString().endsWith("/" + p.getProperty("name") + "/module.properties"), "name matches its directory");
        assertEquals("xenserver-compute", p.getProperty("parent"));
    }

    @Test
    void theStockXenServerFencerKeepsClustersTheBridgeDoesNotHaveAndNoOtherSettingIsNeeded() throws Exception {
        config("");
        cs = CloudStackModel.withDefaults(cloudStackBeans()).load(getClass().getClassLoader());
        assertEquals(List.of("KVMFenceBuilder", "XenHaBridgeFenceBuilder"), CloudStackModel.names(cs.fenceBuilders),
                "the stock XenServerFenceBuilder is called through the bridge's fencer, not beside it");
        assertSame(cs.stockXenFencer, ourFencer().stockFencer());
        // cluster 4 is not the bridge's: the stock fencer decides, as before
        assertTrue(cs.fence(Fakes.vm("i-2-9-VM"), other));
        assertEquals(List.of("fenceOff i-2-9-VM xs-9"), cs.stockXenFencer.calls);
        // a KVM host: the bridge's fencer says nothing, KVM's fences
        Host kvm = Fakes.host(20, "kvm-1", "k", "10.1.1.1", 8L, HypervisorType.KVM);
        assertTrue(cs.fence(Fakes.vm("i-2-20-VM"), kvm));
        assertEquals(List.of("fenceOff i-2-20-VM kvm-1"), cs.stockKvmFencer.calls);
    }

    @Test
    void everyXenServerClusterCloudStackConnectsIsHandedToTheBridgeFromItsRecords() throws Exception {
        config("xenha.pool.policy=require_cloudstack\n");
        cs = CloudStackModel.withDefaults(cloudStackBeans()).load(getClass().getClassLoader());
        assertEquals(1, listeners.size(), "an AgentManager listener, as XcpServerDiscoverer is");
        connect(attached);
        awaitAttached("Cluster-3");
        AttachPoolRequest r = bridge.service().attachRequests.get(0);
        assertEquals(List.of("https://10.0.0.11", "https://10.0.0.12"), r.getMembersList(), "every host of the cluster, from HostDao");
        assertEquals("root", r.getUsername());
        assertEquals("xs-password", r.getPassword(), "from host_details, as XcpServerDiscoverer stored it");
        connect(attached);
        Thread.sleep(100);
        assertEquals(1, bridge.service().attachRequests.size(), "a cluster handed over a moment ago is not attached again at once");

        // its hosts are now fenced by the bridge only: refused (alive) means not fenced, and the stock fencer is not asked
        bridge.service().onFence(q -> FenceHostResponse.newBuilder().setOutcome(FenceOutcome.FENCE_OUTCOME_REFUSED_HOST_ALIVE).build());
        assertFalse(cs.fence(Fakes.vm("i-2-10-VM"), attached));
        assertEquals(1, bridge.service().fenceRequests.size());
        assertTrue(cs.stockXenFencer.calls.isEmpty(), "one captain per pool: " + cs.stockXenFencer.calls);
    }

    private void removed(long hostId, long clusterId) {
        for (Listener l : listeners) {
            l.processHostRemoved(hostId, clusterId);
        }
    }

    private List<String> lastAttachedMembers() {
        List<AttachPoolRequest> r = bridge.service().attachRequests;
        return r.isEmpty() ? List.of() : r.get(r.size() - 1).getMembersList();
    }

    /** The module loaded with {@code settings}, syncs {@code spacingMillis} apart, cluster 3 handed over from its records. */
    private void clusterThreeHandedOver(String settings, long spacingMillis) throws Exception {
        config(settings);
        cs = CloudStackModel.withDefaults(cloudStackBeans()).load(getClass().getClassLoader());
        cs.beans(XenServerClusterSync.class).get(0).syncSpacing(java.time.Duration.ofMillis(spacingMillis));
        connect(attached);
        awaitAttached("Cluster-3");
    }

    /** Cluster 3's hosts 5 and 6 removed from CloudStack, each removal heard here. */
    private void everyHostOfClusterThreeRemoved() {
        hostsByCluster.put(3L, List.of());
        removed(5, 3);
        removed(6, 3);
    }

    @Test
    void hostsAddedOrRemovedLaterReachTheBridgeAndRemovingTheLastDetachesThePool() throws Exception {
        Host second = hostsByCluster.get(3L).get(1);
        clusterThreeHandedOver("", 300);

        // A host added to the cluster connects right after another one did: served when the spacing ends, not dropped.
        Host added = Fakes.xen(7, "2566c74d-1003-4c4d-bbbb-0407d1e2c642", "10.0.0.13", 3);
        hostsByCluster.put(3L, List.of(attached, second, added));
        connect(added);
        PoolAttacherTest.await("the added host handed over", () -> lastAttachedMembers().contains("https://10.0.0.13"));
        assertEquals(List.of("https://10.0.0.11", "https://10.0.0.12", "https://10.0.0.13"), lastAttachedMembers());

        // A host removed: CloudStack notifies once its row is gone (ResourceManagerImpl.doDeleteHost).
        hostsByCluster.put(3L, List.of(attached, added));
        removed(6, 3);
        PoolAttacherTest.await("the removed host gone", () -> !lastAttachedMembers().contains("https://10.0.0.12"));
        assertEquals(List.of("https://10.0.0.11", "https://10.0.0.13"), lastAttachedMembers());
        assertTrue(bridge.service().hasPool("Cluster-3"));

        // The last one removed (a cluster is emptied before CloudStack deletes it): the pool this server attached is detached.
        hostsByCluster.put(3L, List.of());
        removed(5, 3);
        removed(7, 3);
        PoolAttacherTest.await("the pool detached", () -> !bridge.service().hasPool("Cluster-3"));
        XenHaBridgeContext ctx = cs.beans(XenHaBridgeContext.class).get(0);
        PoolAttacherTest.await("the cluster forgotten", () -> !ctx.pools().poolOfCluster(3).isPresent());
    }

    @Test
    void aPolicyThatLetsNobodyActSaysAtErrorThatTheClusterHasNoHA() throws Exception {
        try (LogCapture log = LogCapture.of(XenServerPoolAttacher.class)) {
            clusterThreeHandedOver("xenha.pool.policy=observe\n", 100);
            PoolAttacherTest.await("the ERROR", () -> log.all().contains("its VMs have no HA"));
            assertTrue(log.lines().stream().anyMatch(l -> l.startsWith("ERROR") && l.contains("Cluster-3")), log.all());
        }
    }

    @Test
    void aRenamedClustersPoolStillFollowsItsHosts() throws Exception {
        clusterThreeHandedOver("", 100);
        clusterNames.put(3L, "Renamed");
        Host added = Fakes.xen(7, "2566c74d-1003-4c4d-bbbb-0407d1e2c642", "10.0.0.13", 3);
        hostsByCluster.put(3L, List.of(attached, hostsByCluster.get(3L).get(1), added));
        connect(added);
        PoolAttacherTest.await("the added host handed over", () -> lastAttachedMembers().contains("https://10.0.0.13"));
        List<AttachPoolRequest> r = bridge.service().attachRequests;
        assertEquals("Cluster-3", r.get(r.size() - 1).getName(), "the pool this server attached, under its name");
        assertFalse(bridge.service().hasPool("Renamed"));
    }

    @Test
    void changesThisServerHearsNothingOfReachTheBridgeAtTheNextResync() throws Exception {
        clusterThreeHandedOver("xenha.clusters.resync_interval=1s\n", 100);
        assertEquals(0, bridge.service().attachRequests.get(0).getBmcsCount());
        // Through another management server: a host added (it connects there), a BMC configured.
        hostsByCluster.put(3L, List.of(attached, hostsByCluster.get(3L).get(1), Fakes.xen(7, "2566c74d-1003-4c4d-bbbb-0407d1e2c642", "10.0.0.13", 3)));
        oobm.put(5L, oobm(true, "IPMITOOL", "10.0.1.11", ""));
        PoolAttacherTest.await("the change handed over", () -> lastAttachedMembers().contains("https://10.0.0.13"));
        AttachPoolRequest r = bridge.service().attachRequests.get(bridge.service().attachRequests.size() - 1);
        assertEquals(1, r.getBmcsCount(), "the BMC configured since");
    }

    @Test
    void aPoolOfTheBridgesConfigurationUnderTheClustersNameIsNeverDetachedFromHere() throws Exception {
        // The bridge's configuration lists the cluster's pool under the cluster's name, with the shim's own settings:
        // the attach answers as a no-op, and the pool stays the configuration's.
        XenHaBridgeContext ctx = clusterThreeInTheBridgesConfiguration(AttachPoolRequest.newBuilder().setName("Cluster-3")
                .addMembers("https://10.0.0.11").addMembers("https://10.0.0.12").setPolicy(cloudstack.xenha.v1.Xenha.Policy.POLICY_AUTO).build());
        assertFalse(ctx.pools().reattach("Cluster-3"), "not kept as this server's own");
        everyHostOfClusterThreeRemoved();
        PoolAttacherTest.await("the cluster forgotten", () -> !ctx.pools().poolOfCluster(3).isPresent());
        assertTrue(bridge.service().hasPool("Cluster-3"));
        assertEquals(0, bridge.service().count("DetachPool"));
    }

    @Test
    void aDetachTheBridgeCannotTakeIsTriedAgainAtTheNextResync() throws Exception {
        clusterThreeHandedOver("xenha.clusters.resync_interval=1s\n", 100);
        io.grpc.StatusRuntimeException down = io.grpc.Status.UNAVAILABLE.withDescription("down").asRuntimeException();
        bridge.service().failNext("DetachPool", down, down);
        hostsByCluster.put(3L, List.of()); // both hosts removed; one notice heard here
        removed(6, 3);
        PoolAttacherTest.await("the pool detached once the bridge answers", () -> !bridge.service().hasPool("Cluster-3"));
        assertEquals(3, bridge.service().count("DetachPool"), "tried at the removal, then at each resync until it answers");
    }

    /** The bridge has cluster 3's pool from its own configuration as "cluster-a"; the module loaded, host 5 connected. */
    private XenHaBridgeContext clusterThreeInTheBridgesConfiguration() throws Exception {
        return clusterThreeInTheBridgesConfiguration(AttachPoolRequest.newBuilder().setName("cluster-a").addMembers("https://10.0.0.12").build());
    }

    /** The bridge has cluster 3's pool from its own configuration as {@code configured}; the module loaded, host 5 connected. */
    private XenHaBridgeContext clusterThreeInTheBridgesConfiguration(AttachPoolRequest configured) throws Exception {
        config("");
        bridge.service().addPool(configured);
        cs = CloudStackModel.withDefaults(cloudStackBeans()).load(getClass().getClassLoader());
        connect(attached);
        XenHaBridgeContext ctx = cs.beans(XenHaBridgeContext.class).get(0);
        PoolAttacherTest.await("cluster 3 known", () -> ctx.pools().poolOfCluster(3).isPresent());
        return ctx;
    }

    @Test
    void removingTheLastHostOfAPoolFromTheBridgesConfigurationLeavesItThere() throws Exception {
        XenHaBridgeContext ctx = clusterThreeInTheBridgesConfiguration();
        everyHostOfClusterThreeRemoved();
        PoolAttacherTest.await("the cluster forgotten", () -> !ctx.pools().poolOfCluster(3).isPresent());
        assertTrue(bridge.service().hasPool("cluster-a"), "the bridge's own pool changes only in its configuration");
        assertEquals(0, bridge.service().count("DetachPool"));
    }

    private static OutOfBandManagement oobm(boolean enabled, String driver, String address, String port) {
        Map<String, Object> a = new HashMap<>();
        a.put("isEnabled", enabled);
        a.put("getDriver", driver);
        a.put("getAddress", address);
        a.put("getPort", port);
        a.put("getUsername", "admin");
        a.put("getPassword", "bmc-secret");
        return Fakes.of(OutOfBandManagement.class, a);
    }

    @Test
    void theHostsBmcsComeFromCloudStacksOutOfBandManagement() throws Exception {
        config("");
        oobm.put(5L, oobm(true, "IPMITOOL", "10.0.1.11", ""));
        oobm.put(6L, oobm(true, "REDFISH", "10.0.1.12", "8443"));
        cs = CloudStackModel.withDefaults(cloudStackBeans()).load(getClass().getClassLoader());
        connect(attached);
        awaitAttached("Cluster-3");
        AttachPoolRequest r = bridge.service().attachRequests.get(0);
        assertEquals(2, r.getBmcsCount());
        assertEquals(UUID0, r.getBmcs(0).getHost(), "keyed by the host's XenServer UUID");
        assertEquals("ipmi", r.getBmcs(0).getBmc().getDriver());
        assertEquals("10.0.1.11:623", r.getBmcs(0).getBmc().getAddress());
        assertEquals("bmc-secret", r.getBmcs(0).getBmc().getPassword());
        assertEquals("redfish", r.getBmcs(1).getBmc().getDriver());
        assertEquals("https://10.0.1.12:8443", r.getBmcs(1).getBmc().getAddress());
        // disabled out-of-band management is not a BMC the bridge may use
        oobm.put(9L, oobm(false, "IPMITOOL", "10.0.1.19", "623"));
        connect(other);
        awaitAttached("Cluster-4");
        assertEquals(0, bridge.service().attachRequests.get(1).getBmcsCount());
    }

    @Test
    void aPoolTheBridgeAlreadyHasIsFollowedNotAttachedTwice() throws Exception {
        XenHaBridgeContext ctx = clusterThreeInTheBridgesConfiguration();
        assertEquals("cluster-a", ctx.pools().poolOfCluster(3).get(), "found by member address");
        assertTrue(bridge.service().attachRequests.isEmpty(), "one XenServer pool is never two bridge pools");

        // The bridge loses that pool (restarted with another configuration): not fenced now, and the
        // cluster is handed over anew from CloudStack's records.
        bridge.service().forgetPools();
        bridge.service().onFence(q -> {
            throw FakeBridge.notFound("pool", "unknown pool \"" + q.getPool() + "\"");
        });
        assertFalse(cs.fence(Fakes.vm("i-2-10-VM"), attached));
        assertTrue(cs.stockXenFencer.calls.isEmpty(), cs.stockXenFencer.calls.toString());
        awaitAttached("Cluster-3");
        PoolAttacherTest.await("cluster 3 known as Cluster-3", () -> ctx.pools().poolOfCluster(3).orElse("").equals("Cluster-3"));
    }

    @Test
    void aClusterNotKnownWhileTheBridgeCannotBeAskedIsNotFencedByAnyone() throws Exception {
        aClusterNotKnownWhileTheBridgeCannotBeAskedIsNotFenced("");
    }

    @Test
    void withoutAutoAttachAClusterNotKnownWhileTheBridgeCannotBeAskedIsNotFencedByAnyone() throws Exception {
        // The pool may be one of the bridge's configured pools: the stock fencer beside it would be a second captain.
        aClusterNotKnownWhileTheBridgeCannotBeAskedIsNotFenced("xenha.clusters.auto_attach=false\n");
    }

    private void aClusterNotKnownWhileTheBridgeCannotBeAskedIsNotFenced(String settings) throws Exception {
        config(settings);
        cs = CloudStackModel.withDefaults(cloudStackBeans()).load(getClass().getClassLoader());
        io.grpc.StatusRuntimeException down = io.grpc.Status.UNAVAILABLE.withDescription("down").asRuntimeException();
        bridge.service().failNext("ListPools", down, down, down, down, down, down, down, down);
        assertFalse(cs.fence(Fakes.vm("i-2-9-VM"), other), "the pool may be the bridge's: one captain");
        assertTrue(cs.stockXenFencer.calls.isEmpty(), cs.stockXenFencer.calls.toString());
    }

    @Test
    void aPoolAttachedUnderTheClustersNameIsAttachedAgainNotAdopted() throws Exception {
        config("");
        // The management server restarted; its bridge kept the pool it had attached.
        bridge.service().addAttachedPool(AttachPoolRequest.newBuilder().setName("Cluster-3").addMembers("https://10.0.0.11")
                .addMembers("https://10.0.0.12").build());
        cs = CloudStackModel.withDefaults(cloudStackBeans()).load(getClass().getClassLoader());
        connect(attached);
        PoolAttacherTest.await("attached again", () -> !bridge.service().attachRequests.isEmpty());
        XenHaBridgeContext ctx = cs.beans(XenHaBridgeContext.class).get(0);
        PoolAttacherTest.await("cluster 3 known", () -> ctx.pools().poolOfCluster(3).isPresent());
        // the request is kept: after the bridge forgets the pool, it is attached again from it
        bridge.service().forgetPools();
        assertTrue(ctx.pools().reattach("Cluster-3"));
    }

    @Test
    void aMasterAlreadyLostWhenTheWatchStartsIsRecovered() throws Exception {
        config("xenha.master.retry_interval=1s\n");
        bridge.service().onHaMode(r -> bridge.service().defaultHaMode(r.getPool()).toBuilder().setEpoch(7)
                .setMaster(cloudstack.xenha.v1.Xenha.Master.newBuilder().setName("xs-5").setUuid(UUID0).setAddress("10.0.0.11")
                        .setReachable(false)).build());
        cs = CloudStackModel.withDefaults(cloudStackBeans()).load(getClass().getClassLoader());
        connect(attached);
        PoolAttacherTest.await("an election asked for", () -> !bridge.service().electRequests.isEmpty());
        assertEquals("cloudstack-master-lost-Cluster-3-7", bridge.service().electRequests.get(0).getRequestId());
        assertEquals(7, bridge.service().electRequests.get(0).getExpectedEpoch());
    }

    @Test
    void aLostMasterNobodyMayReplaceIsReportedOnceNotEveryRetry() throws Exception {
        config("xenha.master.retry_interval=1s\n");
        // The master is lost when the watch starts; then nobody may act on the pool (its policy changed to
        // observe, say): every retry finds the same.
        java.util.concurrent.atomic.AtomicInteger asked = new java.util.concurrent.atomic.AtomicInteger();
        bridge.service().onHaMode(r -> bridge.service().defaultHaMode(r.getPool()).toBuilder()
                .setController(asked.getAndIncrement() == 0 ? cloudstack.xenha.v1.Xenha.Controller.CONTROLLER_CLOUDSTACK
                        : cloudstack.xenha.v1.Xenha.Controller.CONTROLLER_NONE)
                .setMaster(cloudstack.xenha.v1.Xenha.Master.newBuilder().setName("xs-5").setUuid(UUID0).setAddress("10.0.0.11")
                        .setReachable(false)).build());
        try (LogCapture log = LogCapture.of(MasterRecovery.class)) {
            cs = CloudStackModel.withDefaults(cloudStackBeans()).load(getClass().getClassLoader());
            connect(attached);
            PoolAttacherTest.await("asked three times", () -> bridge.service().count("HAMode") >= 4);
            Thread.sleep(1500); // one more retry at least
            assertEquals(1, log.lines().stream().filter(l -> l.contains("nobody may elect")).count(), log.all());
        }
        assertTrue(bridge.service().electRequests.isEmpty());
    }

    @Test
    void aBadConfigurationLeavesEveryClusterOnStockBehaviourAndSaysSoAtError() throws Exception {
        config("xenha.pool.policy=sometimes\n");
        try (LogCapture log = LogCapture.of(XenHaBridgeContext.class)) {
            cs = CloudStackModel.withDefaults(cloudStackBeans()).load(getClass().getClassLoader());
            assertTrue(cs.warnings.isEmpty(), "the module loads: " + cs.warnings);
            String err = log.all();
            assertTrue(err.startsWith("ERROR") && err.contains("xenha.pool.policy") && err.contains("stock behaviour")
                    && err.contains("restart"), err);
        }
        assertEquals(List.of("KVMFenceBuilder", "XenServerFenceBuilder", "XenHaBridgeFenceBuilder"), CloudStackModel.names(cs.fenceBuilders),
                "the stock fencer stays registered");
        assertTrue(listeners.isEmpty(), "no cluster is handed over");
        assertNull(ourFencer().fenceOff(Fakes.vm("i-2-10-VM"), attached), "the inactive module says nothing");
        assertTrue(cs.fence(Fakes.vm("i-2-10-VM"), attached), "the stock fencer fences, as without the module");
        assertNull(cs.beans(XenHaBridgeInvestigator.class).get(0).getHostAgentStatus(attached));
    }

    @Test
    void excludingTheBridgesFencerLeavesTheStockOneAndTheModuleInactive() throws Exception {
        config("");
        cs = new CloudStackModel(cloudStackBeans(), Set.of("RecreatableFencer", "XenHaBridgeFenceBuilder"), List.of());
        try (LogCapture log = LogCapture.of(XenHaBridgeContext.class)) {
            cs.load(getClass().getClassLoader());
            assertTrue(log.all().contains("ha.fence.builders.exclude"), log.all());
        }
        assertEquals(List.of("KVMFenceBuilder", "XenServerFenceBuilder"), CloudStackModel.names(cs.fenceBuilders));
        assertFalse(cs.beans(XenHaBridgeContext.class).get(0).isActive());
    }

    @Test
    void twoVersionsOfTheJarStartOneModuleAndTheOtherSaysSoAtError() throws Exception {
        config("");
        // a second copy of the module, as an older bundle left in lib/ would bring
        Path second = dir.resolve("old-bundle/META-INF/cloudstack/xenha-bridge-0.0.9");
        Files.createDirectories(second);
        Resource[] mine = new PathMatchingResourcePatternResolver().getResources("classpath*:META-INF/cloudstack/xenha-bridge-*/*");
        for (Resource r : mine) {
            String text = new String(r.getInputStream().readAllBytes(), StandardCharsets.UTF_8).replaceAll("xenha-bridge-[0-9][^<\"\\s]*",
                    "xenha-bridge-0.0.9");
            Files.write(second.resolve(r.getFilename()), text.getBytes(StandardCharsets.UTF_8));
        }
        try (URLClassLoader both = new URLClassLoader(new URL[] {dir.resolve("old-bundle").toUri().toURL()}, getClass().getClassLoader());
                LogCapture log = LogCapture.of(XenHaBridgeContext.class)) {
            cs = CloudStackModel.withDefaults(cloudStackBeans()).load(both);
            assertTrue(cs.warnings.isEmpty(), "the management server starts: " + cs.warnings);
            List<XenHaBridgeContext> ctxs = cs.beans(XenHaBridgeContext.class);
            assertEquals(2, ctxs.size());
            assertEquals(1, ctxs.stream().filter(XenHaBridgeContext::isActive).count(), "one copy acts");
            assertTrue(log.all().contains("ERROR") && log.all().contains("another copy of the module is active")
                    && log.all().contains("exactly one"), log.all());
        }
        assertTrue(cs.fence(Fakes.vm("i-2-9-VM"), other), "clusters the bridge does not have keep the stock fencer");
        assertEquals(1, cs.stockXenFencer.calls.size(), "called once, through the active copy: " + cs.stockXenFencer.calls);
    }

    @Test
    void theSameModuleNameTwiceStopsCloudStackAsUpstreamDoes() throws Exception {
        config("");
        Path copy = dir.resolve("copy");
        for (Resource r : new PathMatchingResourcePatternResolver().getResources("classpath*:META-INF/cloudstack/xenha-bridge-*/*")) {
            Path to = copy.resolve("META-INF/cloudstack").resolve(Path.of(r.getURL().getPath()).getParent().getFileName()).resolve(r.getFilename());
            Files.createDirectories(to.getParent());
            Files.write(to, r.getInputStream().readAllBytes());
        }
        try (URLClassLoader both = new URLClassLoader(new URL[] {copy.toUri().toURL()}, getClass().getClassLoader())) {
            CloudStackModel model = CloudStackModel.withDefaults(cloudStackBeans());
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> model.load(both));
            assertTrue(e.getMessage().contains("do not appear to be the same resource"), e.getMessage());
            model.close();
        }
    }

    @Test
    void withoutAFileTheDefaultsApply() {
        System.setProperty(XenHaBridgeContext.CONFIG_FILE_PROPERTY, dir.resolve("absent.properties").toString());
        XenHaBridgeContext c = new XenHaBridgeContext();
        c.start();
        assertEquals("127.0.0.1:50051", c.client().config().target());
        assertSame(c, XenHaBridgeContext.current().orElseThrow(), "reachable from the XenServer plugin's code");
        c.close();
        assertTrue(c.client().isTerminated(), "close ends the channel");
        assertTrue(XenHaBridgeContext.current().isEmpty(), "not current once closed");
    }
}
