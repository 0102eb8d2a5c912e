package io.github.cloudstackxenha.cloudstack;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import com.cloud.vm.VirtualMachine;
import com.cloud.host.Host;
import com.cloud.hypervisor.Hypervisor.HypervisorType;

import cloudstack.xenha.v1.Xenha.AttachPoolRequest;
import cloudstack.xenha.v1.Xenha.FenceHostRequest;
import cloudstack.xenha.v1.Xenha.FenceHostResponse;
import cloudstack.xenha.v1.Xenha.FenceOutcome;
import cloudstack.xenha.v1.Xenha.VMReset;
import cloudstack.xenha.v1.Xenha.XenHAProgress;
import io.github.cloudstackxenha.client.FakeBridge;
import io.github.cloudstackxenha.client.XenHaBridgeClient;
import io.grpc.Status;

class FenceBuilderTest {
    static final String UUID0 = "9566c74d-1003-4c4d-bbbb-0407d1e2c649";

    private FakeBridge bridge;
    private XenHaBridgeContext ctx;
    private XenHaBridgeFenceBuilder fencer;
    private final Host host = Fakes.xen(5, UUID0, "10.0.0.11", 3);
    private final VirtualMachine vm = Fakes.vm("i-2-10-VM");

    @BeforeEach
    void setUp() throws Exception {
        bridge = FakeBridge.start();
        ctx = new XenHaBridgeContext(bridge.client(), ShimSettings.defaults());
        fencer = new XenHaBridgeFenceBuilder();
        fencer.setName("XenHaBridgeFenceBuilder");
        fencer.setBridge(ctx);
        bridge.service().addPool(AttachPoolRequest.newBuilder().setName("cluster-a").addMembers("https://10.0.0.11")
                .addMembers("https://10.0.0.12").build());
    }

    @AfterEach
    void tearDown() {
        ctx.close();
        bridge.close();
    }

    private static FenceHostResponse outcome(FenceOutcome o) {
        return FenceHostResponse.newBuilder().setHostUuid(UUID0).setOutcome(o).setMethod("redfish").build();
    }

    @Test
    void aHostOfAnotherHypervisorIsNotMine() {
        assertNull(fencer.fenceOff(vm, Fakes.host(1, "kvm1", "x", "10.0.0.11", 3L, HypervisorType.KVM)));
        assertEquals(0, bridge.service().count("ListPools"));
        assertEquals(0, bridge.service().count("FenceHost"));
    }

    @Test
    void aHostInNoAttachedPoolIsNotMine() {
        assertNull(fencer.fenceOff(vm, Fakes.xen(6, "0566c74d-1003-4c4d-bbbb-0407d1e2c640", "10.9.9.9", 9)));
        assertEquals(0, bridge.service().count("FenceHost"));
    }

    @Test
    void fencedIsTrueAndTheRequestSaysWhatAndWhy() {
        bridge.service().onFence(r -> outcome(FenceOutcome.FENCE_OUTCOME_FENCED).toBuilder()
                .addVmResets(VMReset.newBuilder().setName("i-2-10-VM").setReset(true)).build());
        assertEquals(Boolean.TRUE, fencer.fenceOff(vm, host));
        FenceHostRequest r = bridge.service().fenceRequests.get(0);
        assertEquals("cluster-a", r.getPool()); // found by the member address
        assertEquals(UUID0, r.getHost());
        assertTrue(r.getRequestId().startsWith("cloudstack-fence-"), r.getRequestId());
        assertTrue(r.getReason().contains("i-2-10-VM"), r.getReason());
        assertFalse(r.getForce(), "the fence builder never overrides the bridge's guards");
        assertTrue(ctx.fences().isFenced(UUID0));
    }

    @Test
    void refusedAndFailedAreFalse() {
        bridge.service().onFence(r -> outcome(FenceOutcome.FENCE_OUTCOME_REFUSED_HOST_ALIVE));
        assertEquals(Boolean.FALSE, fencer.fenceOff(vm, host));
        bridge.service().onFence(r -> outcome(FenceOutcome.FENCE_OUTCOME_FAILED));
        assertEquals(Boolean.FALSE, fencer.fenceOff(vm, host));
        bridge.service().onFence(r -> outcome(FenceOutcome.FENCE_OUTCOME_REFUSED_INSUFFICIENT_EVIDENCE));
        assertEquals(Boolean.FALSE, fencer.fenceOff(vm, host), "a refusal for want of evidence is not fenced, as FAILED");
        assertFalse(ctx.fences().isFenced(UUID0));
    }

    @Test
    void underXenHaOnlyAFinishedFenceIsTrue() {
        bridge.service().onFence(r -> outcome(FenceOutcome.FENCE_OUTCOME_DEFERRED_TO_XENHA).toBuilder()
                .setXenhaProgress(XenHAProgress.newBuilder().setOutsideLiveset(true)).build());
        assertEquals(Boolean.FALSE, fencer.fenceOff(vm, host));
        bridge.service().onFence(r -> outcome(FenceOutcome.FENCE_OUTCOME_DEFERRED_TO_XENHA).toBuilder()
                .setXenhaProgress(XenHAProgress.newBuilder().setOutsideLiveset(true).setVmsHalted(true)).build());
        assertEquals(Boolean.TRUE, fencer.fenceOff(vm, host));
    }

    @Test
    void aBridgeErrorIsFalse() {
        bridge.service().failNext("FenceHost", Status.UNAVAILABLE.withDescription("connection refused").asRuntimeException());
        assertEquals(Boolean.FALSE, fencer.fenceOff(vm, host));
        bridge.service().failNext("FenceHost", FakeBridge.withDetail(Status.Code.FAILED_PRECONDITION, "nobody may act on pool cluster-a",
                com.google.rpc.PreconditionFailure.getDefaultInstance()));
        assertEquals(Boolean.FALSE, fencer.fenceOff(vm, host));
    }

    @Test
    void aHostTheBridgeDoesNotKnowIsNotMine() {
        bridge.service().failNext("FenceHost", FakeBridge.notFound("host", "unknown host " + UUID0));
        assertNull(fencer.fenceOff(vm, host));
    }

    @Test
    void aPoolTheBridgeForgotIsAttachedAgainAndAskedAgain() {
        bridge.service().forgetPools(); // not the configuration's: attached from here
        ctx.poolAttacher().attachCluster(3, "cluster-a", List.of("10.0.0.11", "10.0.0.12"), "root", "pw");
        bridge.service().failNext("FenceHost", FakeBridge.notFound("pool", "unknown pool \"cluster-a\""));
        bridge.service().onFence(r -> outcome(FenceOutcome.FENCE_OUTCOME_FENCED));
        assertEquals(Boolean.TRUE, fencer.fenceOff(vm, host));
        assertEquals(2, bridge.service().attachRequests.size());
        assertEquals(2, bridge.service().fenceRequests.size());
    }

    @Test
    void theHostsAddressIsUsedWhenItsGuidIsNoUuid() {
        bridge.service().onFence(r -> outcome(FenceOutcome.FENCE_OUTCOME_FENCED));
        fencer.fenceOff(vm, Fakes.xen(7, "not-a-uuid", "10.0.0.12", 3));
        assertEquals("10.0.0.12", bridge.service().fenceRequests.get(0).getHost());
    }

    /** A second management server's bridge, on a loopback port, holding the lease of cluster-a. */
    private FakeBridge holder() throws Exception {
        FakeBridge holder = FakeBridge.startOnLoopback();
        bridge.service().failNext("FenceHost", FakeBridge.notLeaseHolder("mgmt-2", holder.address(), "pool-uuid-cluster-a"));
        return holder;
    }

    @Test
    void aFenceAnsweredByTheLeaseHolderIsTrueOrFalseAsUsual() throws Exception {
        try (FakeBridge holder = holder()) {
            holder.service().onFence(r -> outcome(FenceOutcome.FENCE_OUTCOME_FENCED));
            assertEquals(Boolean.TRUE, fencer.fenceOff(vm, host));
            assertEquals(1, bridge.service().fenceRequests.size());
            assertEquals(bridge.service().fenceRequests.get(0).getRequestId(), holder.service().fenceRequests.get(0).getRequestId());
            assertTrue(ctx.fences().isFenced(UUID0));

            bridge.service().failNext("FenceHost", FakeBridge.notLeaseHolder("mgmt-2", holder.address(), "pool-uuid-cluster-a"));
            holder.service().onFence(r -> outcome(FenceOutcome.FENCE_OUTCOME_REFUSED_HOST_ALIVE));
            assertEquals(Boolean.FALSE, fencer.fenceOff(vm, host));
            assertEquals(2, holder.service().fenceRequests.size());
        }
    }

    @Test
    void aRefusalNotFollowedIsFalseAndTheHolderIsLogged() throws Exception {
        XenHaBridgeClient stay = bridge.client(FakeBridge.testConfig().followLeaseHolder(false).build());
        XenHaBridgeContext other = new XenHaBridgeContext(stay, ShimSettings.defaults());
        XenHaBridgeFenceBuilder f = new XenHaBridgeFenceBuilder();
        f.setBridge(other);
        try (FakeBridge holder = holder(); LogCapture log = LogCapture.of(XenHaBridgeFenceBuilder.class)) {
            assertEquals(Boolean.FALSE, f.fenceOff(vm, host));
            assertEquals(0, holder.service().count("FenceHost"));
            assertFalse(other.fences().isFenced(UUID0));
            assertTrue(log.all().contains("bridge mgmt-2 at " + holder.address() + " holds the lease of pool cluster-a"
                    + " (the call was not sent there)"), log.all());
        } finally {
            other.close();
        }
    }

    @Test
    void anUnreachableLeaseHolderIsFalseAndLogged() throws Exception {
        FakeBridge gone = FakeBridge.startOnLoopback();
        String address = gone.address();
        gone.close();
        bridge.service().failNext("FenceHost", FakeBridge.notLeaseHolder("mgmt-2", address, "pool-uuid-cluster-a"));
        try (LogCapture log = LogCapture.of(XenHaBridgeFenceBuilder.class)) {
            assertEquals(Boolean.FALSE, fencer.fenceOff(vm, host));
            assertTrue(log.all().contains("bridge mgmt-2 at " + address + " holds the lease of pool cluster-a"
                    + " (the call was sent there and failed)"), log.all());
            assertTrue(log.all().contains("UNAVAILABLE"), log.all());
        }
        assertFalse(ctx.fences().isFenced(UUID0));
    }

    @Test
    void anUncertainLeaseIsFalse() {
        bridge.service().failNext("FenceHost", FakeBridge.leaseUncertain());
        assertEquals(Boolean.FALSE, fencer.fenceOff(vm, host));
        assertEquals(1, bridge.service().count("FenceHost"));
    }

    @Test
    void concurrentCallsForOneHostShareOneFence() throws Exception {
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        bridge.service().onFence(r -> {
            entered.countDown();
            try {
                release.await(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return outcome(FenceOutcome.FENCE_OUTCOME_FENCED);
        });
        ExecutorService pool = Executors.newFixedThreadPool(5);
        List<Future<Boolean>> results = new ArrayList<>();
        results.add(pool.submit(() -> fencer.fenceOff(Fakes.vm("i-2-0-VM"), host)));
        assertTrue(entered.await(5, TimeUnit.SECONDS));
        for (int i = 1; i < 5; i++) {
            VirtualMachine v = Fakes.vm("i-2-" + i + "-VM");
            results.add(pool.submit(() -> fencer.fenceOff(v, host)));
        }
        Thread.sleep(100); // let the others find the fence in flight
        release.countDown();
        for (Future<Boolean> f : results) {
            assertEquals(Boolean.TRUE, f.get(5, TimeUnit.SECONDS));
        }
        pool.shutdown();
        assertEquals(1, bridge.service().fenceRequests.size());
        // and a later call asks again
        assertEquals(Boolean.TRUE, fencer.fenceOff(vm, host));
        assertEquals(2, bridge.service().fenceRequests.size());
    }
}
