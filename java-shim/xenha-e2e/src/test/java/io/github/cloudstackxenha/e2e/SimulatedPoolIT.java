package io.github.cloudstackxenha.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
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

import com.cloud.ha.Investigator;
import com.cloud.host.Host;
import com.cloud.host.Status;
import com.cloud.hypervisor.Hypervisor.HypervisorType;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import cloudstack.xenha.v1.Xenha.Controller;
import cloudstack.xenha.v1.Xenha.ElectedBy;
import cloudstack.xenha.v1.Xenha.EventType;
import cloudstack.xenha.v1.Xenha.HAModeResponse;
import cloudstack.xenha.v1.Xenha.JournalEntry;
import cloudstack.xenha.v1.Xenha.MasterChangeCause;
import cloudstack.xenha.v1.Xenha.PoolEvent;
import cloudstack.xenha.v1.Xenha.PoolSummary;
import cloudstack.xenha.v1.Xenha.WarningCode;
import io.github.cloudstackxenha.client.PoolEventsListener;
import io.github.cloudstackxenha.client.Resync;
import io.github.cloudstackxenha.client.ResumePoint;
import io.github.cloudstackxenha.client.XenHaBridgeClient;
import io.github.cloudstackxenha.client.XenHaBridgeConfig;
import io.github.cloudstackxenha.cloudstack.Fakes;
import io.github.cloudstackxenha.cloudstack.MasterLocation;
import io.github.cloudstackxenha.cloudstack.XenHaBridgeContext;
import io.github.cloudstackxenha.cloudstack.XenHaBridgeFenceBuilder;
import io.github.cloudstackxenha.cloudstack.XenHaBridgeInvestigator;
import io.github.cloudstackxenha.cloudstack.XenServerMasterLocator;
import io.github.cloudstackxenha.cloudstack.XenServerPoolAttacher;

/**
 * The story the shim exists for, against the real bridge and its simulated
 * pool (XenHA off, so CloudStack, through the bridge, is in control):
 * read HAMode, lose nothing across a dropped connection, crash the master
 * and get a new one through the master locator, refuse to fence a host
 * whose storage heartbeat is fresh and fence it once it is stale (the real
 * clock: about two minutes), hand a cluster over, and follow the pool
 * across a bridge restart with the gap reported.
 *
 * <p>The steps run in order on one bridge; each asserts one part.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class SimulatedPoolIT {
    private static final Duration EVENT_WAIT = Duration.ofSeconds(20);
    private static final long POOL_CLUSTER = 1;
    private static final long SOLO_CLUSTER = 2;

    private Path work;
    private BridgeProcess bridge;
    private SimControl sim;
    private XenHaBridgeContext ctx;
    private XenHaBridgeClient proxiedClient;
    private TcpProxy proxy;
    private final EventLog direct = new EventLog();
    private final EventLog proxied = new EventLog();
    private PoolEventsListener directListener;
    private XenHaBridgeFenceBuilder fencer;
    private XenHaBridgeInvestigator investigator;
    private XenServerMasterLocator locator;
    private XenServerPoolAttacher attacher;
    private final List<Host> hosts = new ArrayList<>();
    private Host standalone;
    private String poolUuid;
    private long crashedAt;

    @BeforeAll
    void startTheBridge() throws Exception {
        work = Files.createTempDirectory("xenha-e2e-");
        bridge = new BridgeProcess(work, List.of());
        bridge.start();
        sim = new SimControl(bridge.controlUrl());
        JsonObject info = sim.info();
        poolUuid = info.get("pool_uuid").getAsString();
        for (JsonElement e : info.getAsJsonArray("hosts")) {
            hosts.add(csHost(e.getAsJsonObject(), POOL_CLUSTER));
        }
        JsonObject solo = info.getAsJsonArray("standalone").get(0).getAsJsonObject();
        standalone = csHost(solo, SOLO_CLUSTER);
        int xapiPort = URI.create(solo.get("url").getAsString()).getPort();

        // The adapters' configuration file, as /etc/cloudstack/management/xenha-bridge.properties would hold it.
        Path cfg = work.resolve("xenha-bridge.properties");
        Files.write(cfg, String.join("\n",
                "xenha.bridge.target=" + bridge.target(),
                "xenha.bridge.events.retry_initial=100ms",
                "xenha.bridge.events.retry_max=1s",
                "xenha.xapi.scheme=http",
                "xenha.xapi.port=" + xapiPort,
                "xenha.xapi.tls.allow_plain_http=true",
                "xenha.investigator.max_view_age=30s", "").getBytes(StandardCharsets.UTF_8));
        ctx = new XenHaBridgeContext();
        ctx.setConfigFile(cfg.toString());
        ctx.start();
        fencer = new XenHaBridgeFenceBuilder();
        fencer.setName("XenHaBridgeFenceBuilder");
        fencer.setBridge(ctx);
        investigator = new XenHaBridgeInvestigator();
        investigator.setName("XenHaBridgeInvestigator");
        investigator.setBridge(ctx);
        // What the XenServer plugin's own code reaches through XenHaBridgeContext.current().
        locator = XenHaBridgeContext.current().orElseThrow().masterLocator();
        attacher = XenHaBridgeContext.current().orElseThrow().poolAttacher();

        await("the pool observed with its master", Duration.ofSeconds(30), () -> {
            HAModeResponse m = ctx.client().haMode("sim");
            return m.getObserved() && m.getMaster().getReachable() && m.getHostsList().stream().noneMatch(h -> h.getProbe().isEmpty());
        });

        directListener = ctx.client().poolEvents("sim", direct);
        assertTrue(directListener.awaitSynced(Duration.ofSeconds(10)));
        proxy = new TcpProxy(bridge.grpcPort());
        proxiedClient = XenHaBridgeClient.connect(XenHaBridgeConfig.builder().target(proxy.target())
                .eventsRetryInitial(Duration.ofMillis(100)).eventsRetryMax(Duration.ofSeconds(1)).build());
        assertTrue(proxiedClient.poolEvents("sim", proxied).awaitSynced(Duration.ofSeconds(10)));
    }

    @AfterAll
    void stopTheBridge() throws Exception {
        if (proxiedClient != null) {
            proxiedClient.close();
        }
        if (proxy != null) {
            proxy.close();
        }
        if (ctx != null) {
            ctx.close();
        }
        if (bridge != null) {
            bridge.close();
            System.out.println("bridge log: " + bridge.log());
        }
        BridgeProcess.deleteTree(work);
    }

    private static Host csHost(JsonObject h, long cluster) {
        return Fakes.host(100 + h.get("index").getAsInt(), h.get("name").getAsString(), h.get("uuid").getAsString(),
                h.get("address").getAsString(), cluster, HypervisorType.XenServer);
    }

    private static void await(String what, Duration timeout, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + timeout + " waiting for " + what);
            }
            TimeUnit.MILLISECONDS.sleep(100);
        }
    }

    private static void assertStrictlyIncreasingWithinEachIncarnation(List<ResumePoint> points) {
        for (int i = 1; i < points.size(); i++) {
            ResumePoint a = points.get(i - 1);
            ResumePoint b = points.get(i);
            if (a.incarnation().equals(b.incarnation())) {
                assertTrue(b.sequence() > a.sequence(), "event " + b + " after " + a + ": repeated or out of order");
            }
        }
    }

    @Test
    @Order(1)
    void readsHAMode() {
        HAModeResponse m = ctx.client().haMode("sim");
        assertEquals(Controller.CONTROLLER_CLOUDSTACK, m.getController(), "XenHA is off in the simulator");
        assertEquals(3, m.getHostCount());
        assertEquals(poolUuid, m.getPoolUuid());
        assertEquals(hosts.get(0).getGuid(), m.getMaster().getUuid());
        assertFalse(m.getEventIncarnation().isEmpty());
        assertEquals(Resync.Reason.STARTED, direct.resyncs.get(0).reason());
        assertEquals(ctx.client().haMode(poolUuid).getPool(), "sim", "the pool UUID names the pool too");
    }

    @Test
    @Order(2)
    void theInvestigatorSeesEveryMemberUp() {
        for (Host h : hosts) {
            assertEquals(Status.Up, investigator.getHostAgentStatus(h), h.toString());
        }
    }

    @Test
    @Order(3)
    void aDroppedConnectionLosesNoEvent() throws Exception {
        int disconnectsBefore = proxied.disconnects.size();
        proxy.cut(true);
        await("the proxied listener to notice", EVENT_WAIT, () -> proxied.disconnects.size() > disconnectsBefore);
        long after = direct.events.isEmpty() ? 0 : direct.events.get(direct.events.size() - 1).getSequence();

        // Events while the proxied listener is away: the master cut off from the bridge, then back.
        sim.host(0, "cut-bridge");
        direct.await("MASTER_UNREACHABLE raised", e -> e.getSequence() > after && e.getType() == EventType.EVENT_TYPE_WARNING_RAISED
                && e.getWarning().getCode() == WarningCode.WARNING_CODE_MASTER_UNREACHABLE, EVENT_WAIT);
        sim.host(0, "restore-bridge");
        direct.await("MASTER_UNREACHABLE cleared", e -> e.getSequence() > after && e.getType() == EventType.EVENT_TYPE_WARNING_CLEARED
                && e.getWarning().getCode() == WarningCode.WARNING_CODE_MASTER_UNREACHABLE, EVENT_WAIT);
        assertTrue(proxied.events.stream().noneMatch(e -> e.getSequence() > after), "the proxied listener was cut off");

        proxy.cut(false);
        await("the proxied listener to catch up", EVENT_WAIT, () -> proxied.points().equals(direct.points()));
        assertTrue(proxied.events.stream().anyMatch(e -> e.getSequence() > after && e.getType() == EventType.EVENT_TYPE_MASTER_LOST),
                "what happened during the cut was delivered on resume");
        assertEquals(1, proxied.resyncs.size(), "resumed from its last sequence, not from a snapshot");
        assertStrictlyIncreasingWithinEachIncarnation(proxied.points());
        await("the master reachable again", EVENT_WAIT, () -> ctx.client().haMode("sim").getMaster().getReachable());
    }

    @Test
    @Order(4)
    void aCrashedMasterIsReplacedThroughTheMasterLocator() throws Exception {
        long epochBefore = ctx.client().haMode("sim").getEpoch();
        Host oldMaster = hosts.get(0);
        sim.host(0, "power-off");
        crashedAt = System.nanoTime();

        // What XenServerConnectionPool does when it cannot log in to the master: ask, don't loop.
        MasterLocation at = locator.locate(poolUuid, oldMaster.getPrivateIpAddress());
        Host expected = hosts.subList(1, 3).stream().min(Comparator.comparing(Host::getGuid)).orElseThrow();
        assertEquals(ElectedBy.ELECTED_BY_CLOUDSTACK, at.electedBy(), at.trace().toString());
        assertEquals(expected.getGuid(), at.uuid(), "the lowest-UUID survivor");
        assertEquals(expected.getPrivateIpAddress(), at.address());
        assertTrue(at.epoch() > epochBefore, "the epoch rises with the master change");
        assertTrue(at.trace().stream().anyMatch(s -> s.startsWith("harmless")), "the old master was proven off first: " + at.trace());
        int index = hosts.indexOf(expected);
        assertTrue(sim.stateHost(index).get("believes_master").getAsBoolean(), "the simulator agrees");

        PoolEvent changed = direct.await("MASTER_CHANGED", e -> e.getType() == EventType.EVENT_TYPE_MASTER_CHANGED, EVENT_WAIT);
        assertEquals(MasterChangeCause.MASTER_CHANGE_CAUSE_CLOUDSTACK_ELECTION, changed.getCause());
        assertEquals(at.uuid(), changed.getHostUuid());
        assertEquals(oldMaster.getGuid(), changed.getPreviousHostUuid());

        // Asked again (another connection failing on the old address): the live master, no second election.
        MasterLocation again = locator.locate("sim", oldMaster.getPrivateIpAddress());
        assertEquals(at.address(), again.address());
        assertEquals(ElectedBy.ELECTED_BY_NONE, again.electedBy());
        assertEquals(at.epoch(), again.epoch());
    }

    @Test
    @Order(5)
    void aDeadHostWithAFreshHeartbeatIsNotFenced() throws Exception {
        Host dead = hosts.get(0);
        assertTrue(sim.heartbeatAge(0) < 110, "the heartbeat should still be fresh right after the crash");
        assertEquals(Boolean.FALSE, fencer.fenceOff(Fakes.vm("vm-host-0-0"), dead),
                "the bridge refuses: the storage heartbeat is younger than 120 s");
        assertNull(investigator.getHostAgentStatus(dead), "no answer from it, yet the master counts it live: cannot tell");
        List<JournalEntry> journal = ctx.client().journal("sim", 0, 0);
        assertTrue(journal.stream().anyMatch(e -> e.getKind().equals("fence") && e.getDetail().contains("refused")),
                "the refusal is journaled");
    }

    @Test
    @Order(6)
    void aStandaloneHostIsHandedOverAsANewCluster() throws Exception {
        PoolSummary p = attacher.attachCluster(SOLO_CLUSTER, "solo cluster", List.of(standalone.getPrivateIpAddress()), "root", "xenroot");
        assertEquals("solo-cluster", p.getName());
        assertEquals(1, p.getMembersCount());
        assertTrue(p.getMembers(0).startsWith("http://" + standalone.getPrivateIpAddress() + ":"), p.getMembers(0));
        attacher.attachCluster(SOLO_CLUSTER, "solo cluster", List.of(standalone.getPrivateIpAddress()), "root", "xenroot");
        assertEquals(1, ctx.client().listPools().stream().filter(s -> s.getName().equals("solo-cluster")).count());
        assertEquals("solo-cluster", ctx.pools().poolOfCluster(SOLO_CLUSTER).orElse(""));
        await("solo-cluster observed", EVENT_WAIT, () -> ctx.client().haMode("solo-cluster").getObserved());
        assertEquals(Status.Up, investigator.getHostAgentStatus(standalone));
    }

    @Test
    @Order(7)
    void theDeadHostIsFencedOnceItsHeartbeatIsStale() throws Exception {
        Host dead = hosts.get(0);
        long waitStart = System.nanoTime();
        // The simulator runs on the real clock: CloudStack's heartbeat is fresh for 120 s after the last write.
        await("host-0's storage heartbeat to be 2 minutes old", Duration.ofSeconds(190), () -> {
            try {
                return sim.heartbeatAge(0) >= 121;
            } catch (IOException | InterruptedException e) {
                throw new AssertionError(e);
            }
        });
        System.out.printf("waited %d s for the heartbeat to go stale (%d s after the crash)%n",
                TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - waitStart), TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - crashedAt));

        assertEquals(Boolean.TRUE, fencer.fenceOff(Fakes.vm("vm-host-0-0"), dead));
        PoolEvent fenced = direct.await("HOST_FENCED", e -> e.getType() == EventType.EVENT_TYPE_HOST_FENCED, EVENT_WAIT);
        assertEquals(dead.getGuid(), fenced.getHostUuid());
        assertEquals(Status.Down, investigator.getHostAgentStatus(dead), "proven off by the bridge");
        assertFalse(investigator.isVmAlive(Fakes.vm("vm-host-0-0"), dead), "its VMs were reset: restart them elsewhere");
        List<JournalEntry> journal = ctx.client().journal("sim", 0, 0);
        assertTrue(journal.stream().anyMatch(e -> e.getKind().equals("fence") && e.getStep().equals("vm-reset") && e.getOk()),
                "VM power-state resets are journaled: " + journal.stream().map(JournalEntry::getStep).collect(Collectors.toList()));
        // A VM of a live host is for CloudStack's other investigators and the fence builders to judge.
        assertThrows(Investigator.UnknownVM.class, () -> investigator.isVmAlive(Fakes.vm("vm-host-2-0"), hosts.get(2)));
    }

    @Test
    @Order(8)
    void aBridgeRestartIsReportedAndFollowed() throws Exception {
        ResumePoint lastBefore = directListener.position();
        long epochBefore = ctx.client().haMode("sim").getEpoch();
        int resyncsBefore = direct.resyncs.size();

        bridge.restart();

        await("the direct listener to resync", Duration.ofSeconds(30), () -> direct.resyncs.size() > resyncsBefore);
        await("the proxied listener to resync", Duration.ofSeconds(30), () -> proxied.resyncs.size() > 1);
        Resync r = direct.resyncs.get(direct.resyncs.size() - 1);
        assertEquals(Resync.Reason.BRIDGE_RESTARTED, r.reason());
        assertEquals(lastBefore, r.previous(), "the gap starts after the last event delivered");
        assertNotEquals(lastBefore.incarnation(), r.from().incarnation());
        assertTrue(r.snapshot().getEpoch() >= epochBefore, "the journal keeps the epoch across restarts");

        // The new run's events arrive, under the new incarnation.
        await("the new run to observe its pool", EVENT_WAIT, () -> ctx.client().haMode("sim").getMaster().getReachable());
        int masterIndex = 0; // the simulator starts over: host-0 is master again
        sim.host(masterIndex, "cut-bridge");
        PoolEvent lost = direct.await("MASTER_LOST after the restart", e -> e.getType() == EventType.EVENT_TYPE_MASTER_LOST
                && e.getIncarnation().equals(r.from().incarnation()), EVENT_WAIT);
        assertTrue(lost.getSequence() > r.from().sequence());
        proxied.await("MASTER_LOST after the restart (proxied)", e -> e.getIncarnation().equals(r.from().incarnation())
                && e.getType() == EventType.EVENT_TYPE_MASTER_LOST, EVENT_WAIT);
        sim.host(masterIndex, "restore-bridge");
        assertStrictlyIncreasingWithinEachIncarnation(direct.points());
        assertStrictlyIncreasingWithinEachIncarnation(proxied.points());

        // The pool handed over at run time was forgotten by the restarted bridge, and attached again.
        await("solo-cluster attached again", Duration.ofSeconds(30),
                () -> ctx.client().listPools().stream().anyMatch(s -> s.getName().equals("solo-cluster")));

        // host-0 is back (the simulator restarted with the bridge): up again, no longer counted as fenced.
        await("host-0 up", EVENT_WAIT, () -> investigator.getHostAgentStatus(hosts.get(0)) == Status.Up);
    }
}
