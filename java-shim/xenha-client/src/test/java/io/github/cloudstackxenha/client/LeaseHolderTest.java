package io.github.cloudstackxenha.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import cloudstack.xenha.v1.Xenha.ElectMasterRequest;
import cloudstack.xenha.v1.Xenha.ElectMasterResponse;
import cloudstack.xenha.v1.Xenha.FenceHostRequest;
import cloudstack.xenha.v1.Xenha.FenceHostResponse;
import cloudstack.xenha.v1.Xenha.FenceOutcome;
import cloudstack.xenha.v1.Xenha.Master;
import io.grpc.ManagedChannel;
import io.grpc.Status;

/**
 * Several management servers: a call refused with NOT_LEASE_HOLDER is sent
 * once to the holder the refusal names, with the client's own settings.
 * The first bridge is in process; the holder listens on a loopback port,
 * the address the refusal names.
 */
class LeaseHolderTest {
    private static final String POOL_UUID = "pool-uuid-sim";

    private FakeBridge first;
    private FakeBridge holder;
    private XenHaBridgeClient client;

    @BeforeEach
    void setUp() throws Exception {
        first = FakeBridge.start();
        holder = FakeBridge.startOnLoopback();
        client = first.client();
    }

    @AfterEach
    void tearDown() {
        client.close();
        first.close();
        holder.close();
    }

    private static ElectMasterRequest elect(String id) {
        return ElectMasterRequest.newBuilder().setPool("sim").setRequestId(id).setExpectedEpoch(1).build();
    }

    private static FenceHostRequest fence(String id) {
        return FenceHostRequest.newBuilder().setPool("sim").setHost("host-2").setRequestId(id).build();
    }

    private void firstRefuses(String method) {
        first.service().failNext(method, FakeBridge.notLeaseHolder("bridge-b", holder.address(), POOL_UUID));
    }

    @Test
    void electMasterEndsAtTheHolderWithTheSameRequest() {
        firstRefuses("ElectMaster");
        holder.service().onElect(r -> ElectMasterResponse.newBuilder()
                .setMaster(Master.newBuilder().setName("host-1").setAddress("10.0.0.11")).setEpoch(2).build());
        ElectMasterResponse r = client.electMaster(elect("e-1"));
        assertEquals("host-1", r.getMaster().getName());
        assertEquals(1, first.service().count("ElectMaster"));
        assertEquals(1, holder.service().count("ElectMaster"));
        assertEquals(first.service().electRequests.get(0), holder.service().electRequests.get(0), "the same request, request id included");
        assertEquals("e-1", holder.service().electRequests.get(0).getRequestId());
        // one deadline covers both hops
        Duration d = holder.service().calls().get(0).deadline;
        assertNotNull(d);
        assertTrue(d.compareTo(Duration.ofSeconds(3)) <= 0 && d.compareTo(Duration.ofMillis(2000)) > 0, d.toString());
    }

    @Test
    void fenceHostEndsAtTheHolderWithTheSameRequest() {
        firstRefuses("FenceHost");
        holder.service().onFence(r -> FenceHostResponse.newBuilder().setOutcome(FenceOutcome.FENCE_OUTCOME_FENCED).build());
        assertEquals(FenceOutcome.FENCE_OUTCOME_FENCED, client.fenceHost(fence("f-1")).getOutcome());
        assertEquals(1, first.service().count("FenceHost"));
        assertEquals(1, holder.service().count("FenceHost"));
        assertEquals("f-1", holder.service().fenceRequests.get(0).getRequestId());
        assertEquals(first.service().fenceRequests.get(0), holder.service().fenceRequests.get(0));
    }

    @Test
    void aDryRunsRefusalIsFollowedTheSameWay() {
        firstRefuses("ElectMaster");
        client.electMaster(elect("e-dry").toBuilder().setDryRun(true).build());
        assertTrue(holder.service().electRequests.get(0).getDryRun());
        assertEquals("e-dry", holder.service().electRequests.get(0).getRequestId());
    }

    @Test
    void withFollowingDisabledTheRefusalNamesTheHolder() {
        XenHaBridgeClient stay = first.client(FakeBridge.testConfig().followLeaseHolder(false).build());
        try {
            firstRefuses("FenceHost");
            XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> stay.fenceHost(fence("f-2")));
            assertEquals(Status.Code.FAILED_PRECONDITION, e.code());
            assertTrue(e.isNotLeaseHolder());
            assertFalse(e.isTransient());
            assertFalse(e.answeredByLeaseHolder());
            assertEquals("bridge-b", e.leaseHolder());
            assertEquals(holder.address(), e.leaseHolderAddress());
            assertEquals(POOL_UUID, e.errorMetadata().get("pool_uuid"));
            assertEquals("FenceHost(pool=sim, host=host-2, request_id=f-2): FAILED_PRECONDITION: bridge bridge-b at "
                    + holder.address() + " holds the lease of pool " + POOL_UUID + ": only it may act on the pool; send the call there",
                    e.getMessage());
            assertEquals(0, holder.service().count("FenceHost"));
            assertTrue(stay.holderChannels().isEmpty());
        } finally {
            stay.close();
        }
    }

    @Test
    void aRefusalWhoseReasonDoesNotNameTheHolderGetsItInTheMessage() {
        XenHaBridgeClient stay = first.client(FakeBridge.testConfig().followLeaseHolder(false).build());
        try {
            first.service().failNext("ElectMaster", FakeBridge.withDetail(Status.Code.FAILED_PRECONDITION, "not the lease holder",
                    com.google.rpc.ErrorInfo.newBuilder().setReason("NOT_LEASE_HOLDER").setDomain("xenha-bridge")
                            .putMetadata("holder", "bridge-b").putMetadata("holder_address", "10.0.0.2:50051").build()));
            XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> stay.electMaster(elect("e-9")));
            assertEquals("ElectMaster(pool=sim, request_id=e-9): FAILED_PRECONDITION: not the lease holder "
                    + "[lease holder bridge-b at 10.0.0.2:50051]", e.getMessage());
        } finally {
            stay.close();
        }
    }

    @Test
    void theHolderRefusingToo_isThrown_afterOneHopOnly() throws Exception {
        try (FakeBridge third = FakeBridge.startOnLoopback()) {
            firstRefuses("ElectMaster");
            holder.service().failNext("ElectMaster", FakeBridge.notLeaseHolder("bridge-c", third.address(), POOL_UUID));
            XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> client.electMaster(elect("e-2")));
            assertEquals(Status.Code.FAILED_PRECONDITION, e.code());
            assertTrue(e.answeredByLeaseHolder());
            assertEquals("bridge-c", e.leaseHolder(), "the newest holder named");
            assertEquals(third.address(), e.leaseHolderAddress());
            assertTrue(e.getMessage().startsWith("ElectMaster(pool=sim, request_id=e-2, via lease holder bridge-b at "
                    + holder.address() + "): FAILED_PRECONDITION: bridge bridge-c"), e.getMessage());
            assertEquals(1, e.getSuppressed().length);
            XenHaBridgeException refusal = (XenHaBridgeException) e.getSuppressed()[0];
            assertEquals("bridge-b", refusal.leaseHolder());
            assertEquals(1, first.service().count("ElectMaster"));
            assertEquals(1, holder.service().count("ElectMaster"));
            assertEquals(0, third.service().count("ElectMaster"), "one hop only");
            assertEquals(List.of(holder.address()), List.copyOf(client.holderChannels().keySet()));
        }
    }

    @Test
    void aHolderNamingTheFirstBridgeBackIsNoLoop() throws Exception {
        try (FakeBridge a = FakeBridge.startOnLoopback()) {
            XenHaBridgeClient c = a.client();
            try {
                a.service().failNext("FenceHost", FakeBridge.notLeaseHolder("bridge-b", holder.address(), POOL_UUID));
                holder.service().failNext("FenceHost", FakeBridge.notLeaseHolder("bridge-a", a.address(), POOL_UUID));
                XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> c.fenceHost(fence("f-3")));
                assertTrue(e.isNotLeaseHolder());
                assertEquals("bridge-a", e.leaseHolder());
                assertEquals(1, a.service().count("FenceHost"));
                assertEquals(1, holder.service().count("FenceHost"));
            } finally {
                c.close();
            }
        }
    }

    @Test
    void theHoldersOtherErrorsAreThrownAsTheHolders() {
        firstRefuses("ElectMaster");
        holder.service().failNext("ElectMaster", FakeBridge.refused("the old master cannot be proven harmless", "probe"));
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> client.electMaster(elect("e-3")));
        assertEquals(Status.Code.FAILED_PRECONDITION, e.code());
        assertFalse(e.isNotLeaseHolder());
        assertTrue(e.answeredByLeaseHolder());
        assertEquals("bridge-b", e.leaseHolder());
        assertEquals(holder.address(), e.leaseHolderAddress());
        assertEquals(List.of("ELECTION", "TRACE:probe"),
                e.violations().stream().map(XenHaBridgeException.Violation::type).collect(Collectors.toList()));
        assertEquals("ElectMaster(pool=sim, request_id=e-3, via lease holder bridge-b at " + holder.address()
                + "): FAILED_PRECONDITION: election refused: the old master cannot be proven harmless", e.getMessage());
    }

    @Test
    void theHolderIsNotRetriedOnUnavailable() {
        firstRefuses("FenceHost");
        holder.service().failNext("FenceHost", Status.UNAVAILABLE.withDescription("connection reset").asRuntimeException());
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> client.fenceHost(fence("f-4")));
        assertEquals(Status.Code.UNAVAILABLE, e.code());
        assertTrue(e.isTransient());
        assertTrue(e.answeredByLeaseHolder());
        assertEquals(1, holder.service().count("FenceHost"));
    }

    @Test
    void anUnreachableHolderIsATransientFailureNamingIt() throws Exception {
        FakeBridge gone = FakeBridge.startOnLoopback();
        String address = gone.address();
        gone.close();
        first.service().failNext("FenceHost", FakeBridge.notLeaseHolder("bridge-gone", address, POOL_UUID));
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> client.fenceHost(fence("f-5")));
        assertEquals(Status.Code.UNAVAILABLE, e.code());
        assertTrue(e.isTransient());
        assertTrue(e.answeredByLeaseHolder());
        assertEquals("bridge-gone", e.leaseHolder());
        assertEquals(address, e.leaseHolderAddress());
        assertTrue(e.getMessage().startsWith("FenceHost(pool=sim, host=host-2, request_id=f-5, via lease holder bridge-gone at "
                + address + "): UNAVAILABLE"), e.getMessage());
    }

    @Test
    void errorsWithoutTheDetailAreNotForwarded() {
        first.service().failNext("FenceHost",
                Status.FAILED_PRECONDITION.withDescription("bridge bridge-b at " + holder.address() + " holds the lease").asRuntimeException(),
                FakeBridge.withDetail(Status.Code.FAILED_PRECONDITION, "nobody may act", com.google.rpc.PreconditionFailure.getDefaultInstance()),
                FakeBridge.staleEpoch(),
                FakeBridge.withDetail(Status.Code.ABORTED, "other", com.google.rpc.ErrorInfo.newBuilder().setReason("NOT_LEASE_HOLDER")
                        .putMetadata("holder", "bridge-b").putMetadata("holder_address", holder.address()).build()),
                FakeBridge.leaseUncertain());
        for (int i = 0; i < 5; i++) {
            XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> client.fenceHost(fence("f-6")));
            assertFalse(e.answeredByLeaseHolder());
            assertFalse(e.isNotLeaseHolder());
            assertEquals("", e.leaseHolder());
        }
        assertEquals(5, first.service().count("FenceHost"));
        assertEquals(0, holder.service().count("FenceHost"));
        assertTrue(client.holderChannels().isEmpty());
    }

    @Test
    void aRefusalWithoutAnAddressOrNamingThisClientsTargetIsNotForwarded() {
        first.service().failNext("ElectMaster", FakeBridge.notLeaseHolder("bridge-b", "", POOL_UUID),
                FakeBridge.notLeaseHolder("bridge-a", client.config().target(), POOL_UUID));
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> client.electMaster(elect("e-4")));
        assertTrue(e.isNotLeaseHolder());
        assertEquals("bridge-b", e.leaseHolder());
        assertEquals("", e.leaseHolderAddress());
        XenHaBridgeException self = assertThrows(XenHaBridgeException.class, () -> client.electMaster(elect("e-4")));
        assertTrue(self.isNotLeaseHolder());
        assertFalse(self.answeredByLeaseHolder());
        assertEquals(2, first.service().count("ElectMaster"));
        assertTrue(client.holderChannels().isEmpty());
    }

    @Test
    void plaintextIsNotSentToAHolderOffLoopback() {
        first.service().failNext("FenceHost", FakeBridge.notLeaseHolder("bridge-b", "192.0.2.7:50051", POOL_UUID));
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> client.fenceHost(fence("f-7")));
        assertTrue(e.isNotLeaseHolder());
        assertFalse(e.answeredByLeaseHolder());
        assertEquals("192.0.2.7:50051", e.leaseHolderAddress());
        assertEquals(1, e.getSuppressed().length);
        assertTrue(e.getSuppressed()[0].getMessage().contains("needs TLS"), e.getSuppressed()[0].getMessage());
        assertTrue(client.holderChannels().isEmpty());
    }

    @Test
    void theTokenGoesToTheHolderToo() {
        XenHaBridgeClient withToken = first.client(FakeBridge.testConfig().build(), "s3cret-token");
        try {
            firstRefuses("FenceHost");
            withToken.fenceHost(fence("f-8"));
            assertEquals(1, holder.service().calls().size());
            assertEquals("Bearer s3cret-token", holder.service().calls().get(0).authorization);
            assertEquals("Bearer s3cret-token", first.service().calls().get(0).authorization);
        } finally {
            withToken.close();
        }
    }

    @Test
    void theHoldersChannelIsKeptAndCloseShutsItDown() {
        firstRefuses("FenceHost");
        firstRefuses("ElectMaster");
        client.fenceHost(fence("f-9"));
        client.electMaster(elect("e-5"));
        Map<String, ManagedChannel> channels = client.holderChannels();
        assertEquals(List.of(holder.address()), List.copyOf(channels.keySet()));
        ManagedChannel ch = channels.get(holder.address());
        assertFalse(ch.isShutdown());
        assertSame(ch, client.holderChannels().get(holder.address()), "one channel per address");
        client.close();
        assertTrue(ch.isTerminated());
        assertTrue(client.isTerminated());
        assertEquals(2, holder.service().calls().size());
    }

    @Test
    void leaseUncertainIsRetriedForIdempotentCallsOnly() {
        first.service().failNext("HAMode", FakeBridge.leaseUncertain(), FakeBridge.leaseUncertain());
        assertEquals("sim", client.haMode("sim").getPool());
        assertEquals(3, first.service().count("HAMode"));

        first.service().failNext("FenceHost", FakeBridge.leaseUncertain());
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> client.fenceHost(fence("f-11")));
        assertEquals(1, first.service().count("FenceHost"), "a call that acts is never retried by the channel");
        assertEquals(Status.Code.UNAVAILABLE, e.code());
        assertTrue(e.isLeaseUncertain());
        assertTrue(e.isTransient());
        assertFalse(e.isNotLeaseHolder());
        assertEquals(0, holder.service().count("FenceHost"));

        first.service().failNext("ElectMaster", FakeBridge.leaseUncertain());
        XenHaBridgeException el = assertThrows(XenHaBridgeException.class, () -> client.electMaster(elect("e-6")));
        assertEquals(1, first.service().count("ElectMaster"));
        assertTrue(el.isLeaseUncertain() && el.isTransient());
    }
}
