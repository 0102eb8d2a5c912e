package io.github.cloudstackxenha.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.reflect.Proxy;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

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
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import cloudstack.xenha.v1.Xenha.EventType;
import cloudstack.xenha.v1.Xenha.HAModeResponse;
import cloudstack.xenha.v1.Xenha.JournalEntry;
import cloudstack.xenha.v1.Xenha.PoolEvent;
import cloudstack.xenha.v1.Xenha.PoolSummary;
import io.github.cloudstackxenha.client.PoolEventsListener;
import io.github.cloudstackxenha.client.XenHaBridgeClient;
import io.github.cloudstackxenha.cloudstack.CloudStackModel;
import io.github.cloudstackxenha.cloudstack.Fakes;
import io.github.cloudstackxenha.cloudstack.XenHaBridgeContext;

/**
 * The drop-in in a management server, end to end: the module loaded by the
 * rules of CloudStack's loader ({@link CloudStackModel}), CloudStack's
 * records behind its DAOs, its HA manager's order of calls and its XenServer
 * resource's reconnect ({@link XapiLogin}), against the real bridge on its
 * simulated pool. Nothing here calls the shim's classes directly: CloudStack
 * connects hosts, asks its investigators and fence builders, and logs in.
 *
 * <p>The bridge starts with no pool, as in production: clusters 1 (the
 * simulated pool, three hosts, their Redfish BMCs in CloudStack's out-of-band
 * management) and 3 (the simulator's standalone host) come from CloudStack's
 * records; 2 is a XenServer cluster the bridge cannot have (no credentials in
 * host_details), 4 a KVM cluster.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ManagementServerIT {
    private static final Duration WAIT = Duration.ofSeconds(30);

    private Path work;
    private BridgeProcess bridge;
    private SimProcess simulator;
    private SimControl sim;
    private XapiLogin xapi;
    private final List<Host> pool = new ArrayList<>();
    private Host unattached;
    private Host solo;
    private final Host kvm = Fakes.host(400, "kvm-1", "kvm-guid", "10.1.1.1", 4L, HypervisorType.KVM);
    private final Map<Long, List<Host>> clusters = new HashMap<>();
    private final Map<Long, Map<String, String>> details = new HashMap<>();
    private final Map<Long, OutOfBandManagement> oobm = new HashMap<>();
    private final List<Listener> listeners = new CopyOnWriteArrayList<>();
    private CloudStackModel cs;
    private final EventLog events = new EventLog();
    private PoolEventsListener watching;

    @BeforeAll
    void start() throws Exception {
        work = Files.createTempDirectory("xenha-ms-");
        simulator = new SimProcess(1);
        sim = new SimControl(simulator.controlUrl());
        bridge = new BridgeProcess(work, List.of(), false); // no pool until CloudStack hands one over
        bridge.start();
        JsonObject info = simulator.info;
        for (JsonElement e : info.getAsJsonArray("hosts")) {
            pool.add(host(e.getAsJsonObject(), 1));
        }
        JsonObject standalone = info.getAsJsonArray("standalone").get(0).getAsJsonObject();
        solo = host(standalone, 3);
        unattached = Fakes.host(200, "xs-lost", "5566c74d-1003-4c4d-bbbb-0407d1e2c600", "127.77.9.9", 2L, HypervisorType.XenServer);
        int port = simulator.xapiPort;
        String user = info.get("username").getAsString();
        String password = info.get("password").getAsString();
        xapi = new XapiLogin(port, user, password);
        clusters.put(1L, pool);
        clusters.put(2L, List.of(unattached));
        clusters.put(3L, List.of(solo));
        clusters.put(4L, List.of(kvm));
        int i = 0;
        for (Host h : pool) {
            details.put(h.getId(), Map.of("username", user, "password", password, "url", "http://" + h.getPrivateIpAddress()));
            // Out-of-band management as an operator configures it in CloudStack: the simulated hosts' Redfish BMCs.
            Map<String, Object> o = new HashMap<>();
            o.put("isEnabled", true);
            o.put("getDriver", "REDFISH");
            o.put("getAddress", info.getAsJsonArray("hosts").get(i++).getAsJsonObject().get("bmc_url").getAsString());
            o.put("getPort", "");
            o.put("getUsername", info.get("bmc_username").getAsString());
            o.put("getPassword", info.get("bmc_password").getAsString());
            oobm.put(h.getId(), Fakes.of(OutOfBandManagement.class, o));
        }
        details.put(solo.getId(), Map.of("username", user, "password", password));
        details.put(unattached.getId(), Map.of("url", "http://127.77.9.9"));

        Path cfg = work.resolve("xenha-bridge.properties");
        Files.write(cfg, String.join("\n", "xenha.bridge.target=" + bridge.target(), "xenha.bridge.events.retry_initial=100ms",
                "xenha.bridge.events.retry_max=1s", "xenha.xapi.scheme=http", "xenha.xapi.port=" + port,
                "xenha.xapi.tls.allow_plain_http=true", "xenha.investigator.max_view_age=30s", "xenha.master.retry_interval=2s", "")
                .getBytes(StandardCharsets.UTF_8));
        System.setProperty(XenHaBridgeContext.CONFIG_FILE_PROPERTY, cfg.toString());
    }

    @AfterAll
    void stop() throws Exception {
        System.clearProperty(XenHaBridgeContext.CONFIG_FILE_PROPERTY);
        if (watching != null) {
            watching.close();
        }
        if (cs != null) {
            cs.close();
        }
        if (bridge != null) {
            bridge.close();
            System.out.println("bridge log: " + bridge.log());
        }
        if (simulator != null) {
            simulator.close();
        }
        BridgeProcess.deleteTree(work);
    }

    private static Host host(JsonObject h, long cluster) {
        return Fakes.host((cluster * 100) + h.get("index").getAsInt(), h.get("name").getAsString(), h.get("uuid").getAsString(),
                h.get("address").getAsString(), cluster, HypervisorType.XenServer);
    }

    /** CloudStack's beans behind the module: its DAOs over this test's records, its AgentManager. */
    private Map<String, Object> cloudStack() {
        Map<String, Object> beans = new HashMap<>();
        beans.put("agentManager", proxy(AgentManager.class, (m, a) -> {
            listeners.add((Listener) a[0]);
            return listeners.size();
        }));
        beans.put("hostDaoImpl", proxy(HostDao.class, (m, a) -> new ArrayList<>(clusters.getOrDefault(a[0], List.of()))));
        beans.put("hostDetailsDaoImpl", proxy(HostDetailsDao.class, (m, a) -> details.getOrDefault(a[0], Map.of())));
        beans.put("outOfBandManagementDaoImpl", proxy(OutOfBandManagementDao.class, (m, a) -> oobm.get(a[0])));
        beans.put("clusterDaoImpl", proxy(ClusterDao.class, (m, a) -> new ClusterVO() {
            @Override
            public String getName() {
                return a[0].equals(1L) ? "Production" : "xen-" + a[0];
            }
        }));
        return beans;
    }

    private interface Answer {
        Object answer(String method, Object[] args);
    }

    private static <T> T proxy(Class<T> type, Answer a) {
        return type.cast(Proxy.newProxyInstance(type.getClassLoader(), new Class<?>[] {type},
                (p, m, args) -> m.getName().equals("toString") ? type.getSimpleName() : a.answer(m.getName(), args)));
    }

    /** The AgentManager connecting every host, as at the management server's start. */
    private void connectAll() throws Exception {
        for (List<Host> hs : clusters.values()) {
            for (Host h : hs) {
                for (Listener l : listeners) {
                    l.processConnect(h, null, false);
                }
            }
        }
    }

    private XenHaBridgeClient client() {
        return XenHaBridgeContext.current().orElseThrow().client();
    }

    private static void await(String what, Duration timeout, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + timeout + " waiting for " + what);
            }
            TimeUnit.MILLISECONDS.sleep(200);
        }
    }

    @Test
    @Order(1)
    void aBrokenConfigurationLeavesStockBehaviour() throws Exception {
        Path bad = work.resolve("bad.properties");
        Files.write(bad, "xenha.bridge.target=10.0.0.5:50051\n".getBytes(StandardCharsets.UTF_8));
        String good = System.getProperty(XenHaBridgeContext.CONFIG_FILE_PROPERTY);
        System.setProperty(XenHaBridgeContext.CONFIG_FILE_PROPERTY, bad.toString());
        try (CloudStackModel broken = CloudStackModel.withDefaults(cloudStack()).load(getClass().getClassLoader())) {
            assertTrue(broken.warnings.isEmpty(), "CloudStack starts: " + broken.warnings);
            assertEquals(List.of("KVMFenceBuilder", "XenServerFenceBuilder", "XenHaBridgeFenceBuilder"),
                    CloudStackModel.names(broken.fenceBuilders));
            assertTrue(listeners.isEmpty(), "no cluster handed over");
            assertTrue(broken.fence(Fakes.vm("vm-host-1-0"), pool.get(1)), "the stock fencer fences, as without the module");
            assertEquals(1, broken.stockXenFencer.calls.size());
            try (XenHaBridgeClient c = client0()) {
                assertFalse(c.listPools().stream().anyMatch(p -> p.getName().equals("xen-3")), "nothing attached");
            }
        } finally {
            System.setProperty(XenHaBridgeContext.CONFIG_FILE_PROPERTY, good);
        }
    }

    /** A client of this test's own (the module's is not started yet in test 1). */
    private XenHaBridgeClient client0() throws IOException {
        return XenHaBridgeClient.connect(io.github.cloudstackxenha.client.XenHaBridgeConfig.builder().target(bridge.target()).build());
    }

    @Test
    @Order(2)
    void everyXenServerClusterIsHandedOverFromCloudStacksRecords() throws Exception {
        cs = CloudStackModel.withDefaults(cloudStack()).load(getClass().getClassLoader());
        assertTrue(cs.warnings.isEmpty(), cs.warnings.toString());
        assertEquals(List.of("KVMFenceBuilder", "XenHaBridgeFenceBuilder"), CloudStackModel.names(cs.fenceBuilders));
        connectAll();
        XenHaBridgeContext ctx = XenHaBridgeContext.current().orElseThrow();
        await("clusters 1 and 3 attached", WAIT,
                () -> ctx.pools().poolOfCluster(1).isPresent() && ctx.pools().poolOfCluster(3).isPresent());
        assertEquals("Production", ctx.pools().poolOfCluster(1).get(), "named after the cluster");
        assertEquals("xen-3", ctx.pools().poolOfCluster(3).get());
        List<String> names = client().listPools().stream().map(PoolSummary::getName).sorted().collect(Collectors.toList());
        assertEquals(List.of("Production", "xen-3"), names, "the bridge had no pool: every one came from CloudStack's records");
        assertTrue(ctx.pools().poolOfCluster(2).isEmpty(), "no credentials: not handed over");
        watching = client().poolEvents("Production", events);
        assertTrue(watching.awaitSynced(Duration.ofSeconds(10)));
        await("Production observed with its master", WAIT, () -> {
            HAModeResponse m = client().haMode("Production");
            return m.getObserved() && m.getMaster().getReachable();
        });
    }

    @Test
    @Order(3)
    void aClusterTheBridgeDoesNotHaveKeepsStockBehaviour() {
        assertTrue(cs.fence(Fakes.vm("i-2-30-VM"), unattached));
        assertEquals(List.of("fenceOff i-2-30-VM xs-lost"), cs.stockXenFencer.calls, "the stock fencer decided, once");
        assertTrue(cs.fence(Fakes.vm("i-2-40-VM"), kvm));
        assertEquals(List.of("fenceOff i-2-40-VM kvm-1"), cs.stockKvmFencer.calls);
        cs.stockXenInvestigator.calls.clear();
        cs.investigate(unattached);
        assertEquals(List.of("getHostAgentStatus xs-lost"), cs.stockXenInvestigator.calls);
        cs.stockXenFencer.calls.clear();
    }

    @Test
    @Order(4)
    void aMasterLosingPowerIsReplacedAndCloudStackReconnectsToTheNewOne() throws Exception {
        Host old = pool.get(0);
        for (Host h : pool) {
            assertEquals(old.getPrivateIpAddress(), xapi.connect(h.getPrivateIpAddress()), "before: " + h.getName() + " leads to the master");
        }
        long epoch = client().haMode("Production").getEpoch();
        sim.host(0, "power-off");

        // Nobody calls ElectMaster here: the shim's listener hears MASTER_LOST and asks.
        PoolEvent changed = events.await("MASTER_CHANGED", e -> e.getType() == EventType.EVENT_TYPE_MASTER_CHANGED, Duration.ofSeconds(60));
        assertNotEquals(old.getGuid(), changed.getHostUuid());
        HAModeResponse m = client().haMode("Production");
        assertTrue(m.getEpoch() > epoch);
        String master = m.getMaster().getAddress();
        List<JournalEntry> journal = client().journal("Production", 0, 0);
        assertTrue(journal.stream().anyMatch(e -> e.getRequestId().startsWith("cloudstack-master-lost-Production-")),
                "elected at the shim's request: " + journal.stream().map(JournalEntry::getRequestId).distinct().collect(Collectors.toList()));

        // CloudStack's resources log in to their own host and follow HOST_IS_SLAVE: to the new master now.
        for (Host h : pool.subList(1, 3)) {
            assertEquals(master, xapi.connect(h.getPrivateIpAddress()), h.getName() + " reconnects to the new master");
        }
        try {
            xapi.connect(old.getPrivateIpAddress());
            throw new AssertionError("the old master answered");
        } catch (IOException expected) {
            // powered off: silent
        }
    }

    @Test
    @Order(5)
    void theOldMastersVmsAreFencedOnceByTheBridgeOnly() throws Exception {
        Host old = pool.get(0);
        // CloudStack's HA worker retries a VM it could not fence (restart.retry.interval); here every 5 s,
        // until the bridge's witnesses allow it (the storage heartbeat goes stale after 120 s on the real clock).
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(200);
        boolean fenced = false;
        while (!fenced && System.nanoTime() < deadline) {
            fenced = cs.fence(Fakes.vm("vm-host-0-0"), old);
            if (!fenced) {
                TimeUnit.SECONDS.sleep(5);
            }
        }
        assertTrue(fenced, "fenced within 200 s");
        assertTrue(cs.fence(Fakes.vm("vm-host-0-1"), old), "its other VM: already fenced");
        assertTrue(cs.stockXenFencer.calls.isEmpty(), "one captain: the stock fencer was never asked " + cs.stockXenFencer.calls);
        // Each fenceOff that finds the host off is answered FENCED (a HOST_FENCED event each); its VMs were reset once.
        events.await("HOST_FENCED", e -> e.getType() == EventType.EVENT_TYPE_HOST_FENCED, WAIT);
        TimeUnit.SECONDS.sleep(1);
        List<String> fencedEvents = events.events.stream().filter(e -> e.getType() == EventType.EVENT_TYPE_HOST_FENCED)
                .map(PoolEvent::getMessage).collect(Collectors.toList());
        assertTrue(fencedEvents.stream().allMatch(m -> m.contains(old.getName())), fencedEvents.toString());
        assertEquals(1, fencedEvents.stream().filter(m -> !m.contains(" 0 VM(s) reset")).count(),
                "the VMs were reset by one fence only: " + fencedEvents);
        assertEquals(com.cloud.host.Status.Down, cs.investigate(old), "the bridge proved it off");
    }

    @Test
    @Order(6)
    void aBridgeRestartIsFollowed() throws Exception {
        XenHaBridgeContext ctx = XenHaBridgeContext.current().orElseThrow();
        String master = events.events.stream().filter(e -> e.getType() == EventType.EVENT_TYPE_MASTER_CHANGED)
                .reduce((a, b) -> b).orElseThrow().getHostUuid();
        int resyncs = events.resyncs.size();
        bridge.restart();
        // The bridge keeps no pool attached at run time: the shim attaches both again.
        await("the restart seen and both pools attached again", WAIT, () -> {
            try {
                return events.resyncs.size() > resyncs && ctx.client().listPools().stream().map(PoolSummary::getName).sorted()
                        .collect(Collectors.toList()).equals(List.of("Production", "xen-3"));
            } catch (RuntimeException e) {
                return false;
            }
        });
        await("Production observed again, with the elected master", WAIT, () -> {
            try {
                HAModeResponse m = ctx.client().haMode("Production");
                return m.getObserved() && m.getMaster().getReachable() && m.getMaster().getUuid().equals(master);
            } catch (RuntimeException e) {
                return false;
            }
        });
        // The BMCs came back with the attach: a dry-run election proves the (powered-off) old host through its BMC.
        cloudstack.xenha.v1.Xenha.FenceHostResponse dry = ctx.client().fenceHost(cloudstack.xenha.v1.Xenha.FenceHostRequest
                .newBuilder().setPool("Production").setHost(pool.get(0).getGuid()).setRequestId("e2e-dry-" + System.nanoTime())
                .setDryRun(true).build());
        assertTrue(dry.getTraceList().stream().anyMatch(t -> t.getStep().startsWith("witness:bmc") && t.getDetail().contains("off")),
                "the BMC is known again after the restart: " + dry.getTraceList());
        // Still the bridge's: a live host of cluster 1 is not fenced, and the stock fencer is not asked.
        assertFalse(cs.fence(Fakes.vm("vm-host-2-0"), pool.get(2)));
        assertTrue(cs.stockXenFencer.calls.isEmpty(), cs.stockXenFencer.calls.toString());
    }
}
