package io.github.cloudstackxenha.cloudstack;

import com.cloud.host.Host;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import cloudstack.xenha.v1.Xenha.AttachPoolRequest;
import cloudstack.xenha.v1.Xenha.EventType;
import cloudstack.xenha.v1.Xenha.PoolEvent;
import cloudstack.xenha.v1.Xenha.Policy;
import io.github.cloudstackxenha.client.FakeBridge;
import io.github.cloudstackxenha.client.XenHaBridgeException;
import io.grpc.Status;

class PoolAttacherTest {
    private FakeBridge bridge;
    private XenHaBridgeContext ctx;
    private XenServerPoolAttacher attacher;

    @BeforeEach
    void setUp() throws Exception {
        bridge = FakeBridge.start();
        Properties p = new Properties();
        p.setProperty("xenha.pool.policy", "require_cloudstack");
        p.setProperty("xenha.pool.storage_timeout", "90s");
        p.setProperty("xenha.xapi.tls.pin_sha256", "ab:cd");
        ctx = new XenHaBridgeContext(bridge.client(), ShimSettings.fromProperties(p, java.nio.file.Path.of(".")));
        attacher = ctx.poolAttacher();
        // like the bridge: HAMode knows attached pools only
        bridge.service().onHaMode(r -> {
            if (!bridge.service().hasPool(r.getPool())) {
                throw FakeBridge.notFound("pool", "unknown pool \"" + r.getPool() + "\"");
            }
            return bridge.service().defaultHaMode(r.getPool());
        });
    }

    @AfterEach
    void tearDown() {
        ctx.close();
        bridge.close();
    }

    static void await(String what, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(5);
        }
    }

    @Test
    void attachesTheClusterWithEveryMemberAndTheConfiguredPolicy() {
        attacher.attachCluster(3, "Cluster A (rack 2)", List.of("10.0.0.12", "10.0.0.11", "10.0.0.12", " "), "root", "pw");
        AttachPoolRequest r = bridge.service().attachRequests.get(0);
        assertEquals("Cluster-A-rack-2", r.getName());
        assertEquals(List.of("https://10.0.0.11", "https://10.0.0.12"), r.getMembersList());
        assertEquals("root", r.getUsername());
        assertEquals("pw", r.getPassword());
        assertEquals(Policy.POLICY_REQUIRE_CLOUDSTACK, r.getPolicy());
        assertEquals(90, r.getStorageTimeout().getSeconds());
        assertEquals("ab:cd", r.getTls().getPinSha256());
        assertEquals("Cluster-A-rack-2", ctx.pools().poolOfCluster(3).orElse(""));
        assertEquals("Cluster-A-rack-2", ctx.pools().poolOf(Fakes.xen(9, "x", "10.9.9.9", 3)).orElse(""),
                "a host of the cluster is in the pool, whatever its address");
    }

    @Test
    void attachingAgainIsANoOp() throws Exception {
        assertTrue(attacher.attachCluster(3, "a", List.of("10.0.0.11"), "root", "pw").getName().equals("a"));
        attacher.attachCluster(3, "a", List.of("10.0.0.11"), "root", "pw");
        assertEquals(2, bridge.service().attachRequests.size());
        await("the watch", () -> bridge.service().hub().subscribers() == 1);
        Thread.sleep(50);
        assertEquals(1, bridge.service().count("PoolEvents"), "one event listener per pool");
    }

    @Test
    void aDifferentPoolUnderTheSameNameIsRefused() {
        attacher.attachCluster(3, "a", List.of("10.0.0.11"), "root", "pw");
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class,
                () -> attacher.attachCluster(4, "a", List.of("10.0.0.21"), "root", "pw"));
        assertEquals(Status.Code.ALREADY_EXISTS, e.code());
        assertFalse(e.getMessage().contains("pw"));
    }

    @Test
    void poolNamesFollowTheBridgesRules() {
        assertEquals("cluster-a", XenServerPoolAttacher.poolName("cluster-a", 1));
        assertEquals("my-cluster", XenServerPoolAttacher.poolName(" my cluster! ", 1));
        assertEquals("cluster-7", XenServerPoolAttacher.poolName("!!!", 7));
        assertEquals(63, XenServerPoolAttacher.poolName("x".repeat(100), 1).length());
    }

    @Test
    void fenceEventsFromAnyClientReachTheLedger() throws Exception {
        attacher.attachCluster(3, "a", List.of("10.0.0.11"), "root", "pw");
        await("the watch", () -> bridge.service().hub().subscribers() == 1);
        String uuid = FenceBuilderTest.UUID0;
        bridge.service().hub().publish(PoolEvent.newBuilder().setPool("a").setHostUuid(uuid)
                .setType(EventType.EVENT_TYPE_HOST_FENCED).setMessage("Host host-0 was fenced (redfish)"));
        await("the ledger", () -> ctx.fences().isFenced(uuid));
        bridge.service().hub().publish(PoolEvent.newBuilder().setPool("a").setHostUuid(uuid)
                .setType(EventType.EVENT_TYPE_HOST_UP).setMessage("Host host-0 is up"));
        await("the ledger cleared", () -> !ctx.fences().isFenced(uuid));
    }

    @Test
    void aRestartedBridgeGetsThePoolAttachedAgain() throws Exception {
        attacher.attachCluster(3, "a", List.of("10.0.0.11"), "root", "pw");
        await("the watch", () -> bridge.service().hub().subscribers() == 1);
        bridge.service().forgetPools();
        bridge.service().hub().restart();
        await("the pool attached again", () -> bridge.service().hasPool("a"));
        await("the watch again", () -> bridge.service().hub().subscribers() == 1);
        assertEquals(2, bridge.service().attachRequests.size());
        assertEquals("pw", bridge.service().attachRequests.get(1).getPassword());
    }

    @Test
    void detachingStopsTheWatchAndForgetsTheCluster() throws Exception {
        attacher.attachCluster(3, "a", List.of("10.0.0.11"), "root", "pw");
        await("the watch", () -> bridge.service().hub().subscribers() == 1);
        attacher.detachCluster(3);
        assertFalse(bridge.service().hasPool("a"));
        assertFalse(ctx.pools().poolOfCluster(3).isPresent());
        await("no watch", () -> bridge.service().hub().subscribers() == 0);
        attacher.detachCluster(3); // nothing to do
    }
}
