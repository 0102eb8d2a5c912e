package io.github.cloudstackxenha.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import cloudstack.xenha.v1.Xenha.AttachPoolRequest;
import cloudstack.xenha.v1.Xenha.BMC;
import cloudstack.xenha.v1.Xenha.ElectMasterRequest;
import cloudstack.xenha.v1.Xenha.FenceHostRequest;
import io.grpc.Status;

/** Deadlines, retries of the idempotent calls only, error translation, secrets, close. */
class XenHaBridgeClientTest {
    private FakeBridge bridge;
    private XenHaBridgeClient client;

    @BeforeEach
    void setUp() throws Exception {
        bridge = FakeBridge.start();
        client = bridge.client();
    }

    @AfterEach
    void tearDown() {
        client.close();
        bridge.close();
    }

    private static final Map<String, Consumer<XenHaBridgeClient>> CALLS = Map.of(
            "HAMode", c -> c.haMode("sim"),
            "ListPools", XenHaBridgeClient::listPools,
            "Journal", c -> c.journal("sim", 0, 10),
            "AttachPool", c -> c.attachPool(AttachPoolRequest.newBuilder().setName("p").addMembers("https://10.0.0.1").build()),
            "DetachPool", c -> c.detachPool("p"),
            "ElectMaster", c -> c.electMaster(ElectMasterRequest.newBuilder().setPool("sim").setRequestId("r1").build()),
            "FenceHost", c -> c.fenceHost(FenceHostRequest.newBuilder().setPool("sim").setHost("h").setRequestId("r2").build()));

    @Test
    void haModeAnswers() {
        assertEquals("sim", client.haMode("sim").getPool());
        assertEquals(1, bridge.service().count("HAMode"));
    }

    @Test
    void everyCallCarriesItsConfiguredDeadline() {
        bridge.service().addPool(AttachPoolRequest.newBuilder().setName("p").addMembers("https://10.0.0.1").build());
        CALLS.values().forEach(c -> c.accept(client));
        Map<String, Duration> want = Map.of("HAMode", Duration.ofSeconds(2), "ListPools", Duration.ofSeconds(2),
                "Journal", Duration.ofSeconds(2), "AttachPool", Duration.ofSeconds(2), "DetachPool", Duration.ofSeconds(2),
                "ElectMaster", Duration.ofSeconds(3), "FenceHost", Duration.ofSeconds(4));
        for (FakeBridge.CallRecord r : bridge.service().calls()) {
            assertNotNull(r.deadline, r.method + " has no deadline");
            Duration w = want.get(r.method);
            assertTrue(r.deadline.compareTo(w) <= 0 && r.deadline.compareTo(w.minusMillis(500)) > 0,
                    r.method + ": deadline " + r.deadline + ", want about " + w);
        }
        assertEquals(want.keySet(), bridge.service().calls().stream().map(r -> r.method).collect(java.util.stream.Collectors.toSet()));
    }

    @ParameterizedTest
    @ValueSource(strings = {"HAMode", "ListPools", "Journal", "AttachPool", "DetachPool", "ElectMaster", "FenceHost"})
    void aBridgeThatDoesNotAnswerFailsTheCallAtItsDeadline(String method) {
        bridge.service().hang(method);
        XenHaBridgeClient quick = bridge.client(FakeBridge.testConfig().readTimeout(Duration.ofMillis(150))
                .registryTimeout(Duration.ofMillis(150)).electTimeout(Duration.ofMillis(150)).fenceTimeout(Duration.ofMillis(150)).build());
        long t0 = System.nanoTime();
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> CALLS.get(method).accept(quick));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertEquals(Status.Code.DEADLINE_EXCEEDED, e.code());
        assertEquals(method, e.rpc());
        assertTrue(e.getMessage().startsWith(method + "("), e.getMessage());
        assertTrue(e.isTransient());
        assertTrue(ms < 2000, "took " + ms + " ms");
        quick.close();
    }

    @ParameterizedTest
    @ValueSource(strings = {"HAMode", "ListPools", "Journal", "AttachPool"})
    void idempotentCallsAreRetriedOnUnavailable(String method) {
        bridge.service().failNext(method, Status.UNAVAILABLE.withDescription("restarting").asRuntimeException(),
                Status.UNAVAILABLE.withDescription("restarting").asRuntimeException());
        CALLS.get(method).accept(client);
        assertEquals(3, bridge.service().count(method));
    }

    @ParameterizedTest
    @ValueSource(strings = {"ElectMaster", "FenceHost", "DetachPool"})
    void callsThatChangeAPoolAreNeverRetried(String method) {
        bridge.service().addPool(AttachPoolRequest.newBuilder().setName("p").addMembers("https://10.0.0.1").build());
        bridge.service().failNext(method, Status.UNAVAILABLE.withDescription("connection reset").asRuntimeException());
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> CALLS.get(method).accept(client));
        assertEquals(Status.Code.UNAVAILABLE, e.code());
        assertEquals(1, bridge.service().count(method));
    }

    @Test
    void retriesStopAfterMaxAttempts() {
        for (int i = 0; i < 6; i++) {
            bridge.service().failNext("HAMode", Status.UNAVAILABLE.withDescription("down").asRuntimeException());
        }
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> client.haMode("sim"));
        assertEquals(Status.Code.UNAVAILABLE, e.code());
        assertEquals(4, bridge.service().count("HAMode"));
    }

    @Test
    void onlyUnavailableIsRetried() {
        bridge.service().failNext("HAMode", Status.INTERNAL.withDescription("internal error").asRuntimeException());
        assertThrows(XenHaBridgeException.class, () -> client.haMode("sim"));
        assertEquals(1, bridge.service().count("HAMode"));
    }

    @Test
    void oneAttemptMeansNoRetry() {
        XenHaBridgeClient once = bridge.client(FakeBridge.testConfig().retryMaxAttempts(1).build());
        bridge.service().failNext("HAMode", Status.UNAVAILABLE.asRuntimeException());
        assertThrows(XenHaBridgeException.class, () -> once.haMode("sim"));
        assertEquals(1, bridge.service().count("HAMode"));
        once.close();
    }

    @Test
    void invalidArgumentNamesTheField() {
        bridge.service().failNext("FenceHost", FakeBridge.badRequest("host", "required: a host UUID, name or address"));
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class,
                () -> client.fenceHost(FenceHostRequest.newBuilder().setPool("sim").setRequestId("r").build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.code());
        assertEquals("host", e.field());
        assertTrue(e.getMessage().contains("[field host]"), e.getMessage());
    }

    @Test
    void electionRefusalCarriesItsTrace() {
        bridge.service().failNext("ElectMaster", FakeBridge.refused("the old master cannot be proven harmless", "probe", "witness:bmc"));
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class,
                () -> client.electMaster(ElectMasterRequest.newBuilder().setPool("sim").setRequestId("e1").build()));
        assertEquals(Status.Code.FAILED_PRECONDITION, e.code());
        assertEquals("ElectMaster(pool=sim, request_id=e1): FAILED_PRECONDITION: election refused: the old master cannot be proven harmless",
                e.getMessage());
        assertEquals(List.of("ELECTION", "TRACE:probe", "TRACE:witness:bmc"),
                e.violations().stream().map(XenHaBridgeException.Violation::type).collect(java.util.stream.Collectors.toList()));
    }

    @Test
    void staleEpochIsRecognisable() {
        bridge.service().failNext("ElectMaster", FakeBridge.staleEpoch());
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class,
                () -> client.electMaster(ElectMasterRequest.newBuilder().setPool("sim").setExpectedEpoch(1).build()));
        assertEquals(Status.Code.ABORTED, e.code());
        assertEquals("STALE_EPOCH", e.errorReason());
        assertTrue(e.errorMetadata().get("hint").contains("HAMode"));
        assertFalse(e.isTransient());
    }

    @Test
    void unknownPoolIsNotFound() {
        bridge.service().failNext("HAMode", Status.NOT_FOUND.withDescription("unknown pool \"nope\"").asRuntimeException());
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> client.haMode("nope"));
        assertEquals(Status.Code.NOT_FOUND, e.code());
        assertEquals("HAMode(pool=nope): NOT_FOUND: unknown pool \"nope\"", e.getMessage());
    }

    @Test
    void secretsNeverReachAnError() {
        String password = "hunter2-xapi-secret";
        String bmcPassword = "bmc-secret-9";
        bridge.service().failNext("AttachPool", Status.INTERNAL.withDescription("internal error").asRuntimeException());
        bridge.service().failNext("FenceHost", Status.INTERNAL.withDescription("internal error").asRuntimeException());
        XenHaBridgeException a = assertThrows(XenHaBridgeException.class, () -> client.attachPool(AttachPoolRequest.newBuilder()
                .setName("p").addMembers("https://10.0.0.1").setUsername("root").setPassword(password).build()));
        XenHaBridgeException f = assertThrows(XenHaBridgeException.class, () -> client.fenceHost(FenceHostRequest.newBuilder()
                .setPool("p").setHost("h").setBmc(BMC.newBuilder().setDriver("ipmi").setAddress("10.0.0.9:623")
                        .setUsername("admin").setPassword(bmcPassword)).build()));
        for (Throwable t : List.of(a, f)) {
            for (Throwable c = t; c != null; c = c.getCause()) {
                assertFalse(String.valueOf(c.getMessage()).contains(password), c.toString());
                assertFalse(String.valueOf(c.getMessage()).contains(bmcPassword), c.toString());
                assertFalse(c.toString().contains(password) || c.toString().contains(bmcPassword), c.toString());
            }
        }
        assertEquals("AttachPool(pool=p, 1 member(s)): INTERNAL: internal error", a.getMessage());
    }

    @Test
    void theTokenGoesOnEveryCall() {
        XenHaBridgeClient withToken = bridge.client(FakeBridge.testConfig().build(), "s3cret-token");
        withToken.haMode("sim");
        withToken.fenceHost(FenceHostRequest.newBuilder().setPool("sim").setHost("h").build());
        assertEquals(2, bridge.service().calls().size());
        for (FakeBridge.CallRecord r : bridge.service().calls()) {
            assertEquals("Bearer s3cret-token", r.authorization, r.method);
        }
        withToken.close();
    }

    @Test
    void closeShutsTheChannelDownAndWaits() {
        client.haMode("sim");
        client.close();
        assertTrue(client.isTerminated());
        XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> client.haMode("sim"));
        assertEquals(Status.Code.UNAVAILABLE, e.code());
    }
}
