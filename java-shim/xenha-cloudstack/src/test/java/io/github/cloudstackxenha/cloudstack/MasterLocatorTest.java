package io.github.cloudstackxenha.cloudstack;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import cloudstack.xenha.v1.Xenha.Controller;
import cloudstack.xenha.v1.Xenha.ElectMasterRequest;
import cloudstack.xenha.v1.Xenha.ElectMasterResponse;
import cloudstack.xenha.v1.Xenha.ElectedBy;
import cloudstack.xenha.v1.Xenha.HAModeResponse;
import cloudstack.xenha.v1.Xenha.Master;
import cloudstack.xenha.v1.Xenha.TraceStep;
import cloudstack.xenha.v1.Xenha.Warning;
import cloudstack.xenha.v1.Xenha.WarningCode;
import io.github.cloudstackxenha.client.FakeBridge;
import io.grpc.Status;

class MasterLocatorTest {
    private FakeBridge bridge;
    private XenHaBridgeContext ctx;
    private XenServerMasterLocator locator;
    private final AtomicLong epoch = new AtomicLong(4);

    @BeforeEach
    void setUp() throws Exception {
        bridge = FakeBridge.start();
        ctx = new XenHaBridgeContext(bridge.client(), ShimSettings.defaults());
        locator = ctx.masterLocator();
    }

    @AfterEach
    void tearDown() {
        ctx.close();
        bridge.close();
    }

    private void view(Controller c, String masterAddress, boolean reachable) {
        bridge.service().onHaMode(r -> HAModeResponse.newBuilder().setPool(r.getPool()).setController(c).setEpoch(epoch.get())
                .setMaster(Master.newBuilder().setUuid("m-uuid").setName("host-0").setAddress(masterAddress).setReachable(reachable))
                .addWarnings(Warning.newBuilder().setCode(WarningCode.WARNING_CODE_XENHA_REQUIRED).setMessage("XenHA is required"))
                .build());
    }

    private static ElectMasterResponse elected(ElectedBy by, String address) {
        return ElectMasterResponse.newBuilder().setElectedBy(by).setEpoch(5)
                .setMaster(Master.newBuilder().setUuid("n-uuid").setName("host-1").setAddress(address).setReachable(true))
                .addTrace(TraceStep.newBuilder().setStep("promote").setDetail("pool.emergency_transition_to_master on host-1").setOk(true))
                .build();
    }

    @Test
    void anElectionRefusedByABridgeWithoutTheLeaseIsCarriedOutByTheHolder() throws Exception {
        view(Controller.CONTROLLER_CLOUDSTACK, "10.0.0.11", false);
        try (FakeBridge holder = FakeBridge.startOnLoopback()) {
            bridge.service().failNext("ElectMaster", FakeBridge.notLeaseHolder("mgmt-2", holder.address(), "pool-uuid-cluster-a"));
            holder.service().onElect(r -> elected(ElectedBy.ELECTED_BY_CLOUDSTACK, "10.0.0.12"));
            MasterLocation m = locator.locate("cluster-a", "10.0.0.11");
            assertEquals("10.0.0.12", m.address());
            assertEquals(bridge.service().electRequests.get(0), holder.service().electRequests.get(0));
        }
    }

    @Test
    void aMasterTheBridgeReachesElsewhereIsTheAnswer() throws Exception {
        view(Controller.CONTROLLER_XENHA, "10.0.0.12", true);
        MasterLocation m = locator.locate("cluster-a", "10.0.0.11");
        assertEquals("10.0.0.12", m.address());
        assertEquals(ElectedBy.ELECTED_BY_NONE, m.electedBy());
        assertEquals(0, bridge.service().count("ElectMaster"));
    }

    @Test
    void anUnreachableMasterIsReplacedThroughElectMaster() throws Exception {
        view(Controller.CONTROLLER_CLOUDSTACK, "10.0.0.11", false);
        bridge.service().onElect(r -> elected(ElectedBy.ELECTED_BY_CLOUDSTACK, "10.0.0.12"));
        MasterLocation m = locator.locate("52fdfc07-2182-454f-963f-5f0f9a621d72", "10.0.0.11");
        assertEquals("10.0.0.12", m.address());
        assertEquals(ElectedBy.ELECTED_BY_CLOUDSTACK, m.electedBy());
        assertEquals(5, m.epoch());
        assertEquals(1, m.trace().size());
        ElectMasterRequest r = bridge.service().electRequests.get(0);
        assertEquals(4, r.getExpectedEpoch(), "the election is based on what HAMode showed");
        assertEquals("52fdfc07-2182-454f-963f-5f0f9a621d72", r.getPool());
        assertTrue(r.getRequestId().startsWith("cloudstack-elect-"));
        assertTrue(r.getReason().contains("10.0.0.11"), r.getReason());
        assertEquals(false, r.getOperatorOverride());
    }

    @Test
    void aRedirectToAHostTheBridgeStillReachesIsForTheBridgeToJudge() throws Exception {
        view(Controller.CONTROLLER_CLOUDSTACK, "10.0.0.11", true);
        bridge.service().onElect(r -> elected(ElectedBy.ELECTED_BY_NONE, "10.0.0.11"));
        MasterLocation m = locator.locate("cluster-a", "10.0.0.11");
        assertEquals(ElectedBy.ELECTED_BY_NONE, m.electedBy());
        assertEquals("10.0.0.11", m.address());
        assertEquals(1, bridge.service().count("ElectMaster"));
    }

    @Test
    void nobodyMayElectWhenNoControllerIsInCharge() {
        view(Controller.CONTROLLER_NONE, "10.0.0.11", false);
        MasterUnavailableException e = assertThrows(MasterUnavailableException.class, () -> locator.locate("cluster-a", "10.0.0.11"));
        assertTrue(e.getMessage().contains("CONTROLLER_NONE"), e.getMessage());
        assertTrue(e.getMessage().contains("XenHA is required"), e.getMessage());
        assertEquals(0, bridge.service().count("ElectMaster"));
    }

    @Test
    void aRefusalCarriesTheBridgesTrace() {
        view(Controller.CONTROLLER_CLOUDSTACK, "10.0.0.11", false);
        bridge.service().failNext("ElectMaster", FakeBridge.refused("the old master cannot be proven harmless", "witness:bmc"));
        MasterUnavailableException e = assertThrows(MasterUnavailableException.class, () -> locator.locate("cluster-a", "10.0.0.11"));
        assertTrue(e.getMessage().contains("cannot be proven harmless"), e.getMessage());
        assertTrue(e.getMessage().contains("TRACE:witness:bmc"), e.getMessage());
    }

    @Test
    void aStaleEpochIsReadAgainOnce() throws Exception {
        view(Controller.CONTROLLER_CLOUDSTACK, "10.0.0.11", false);
        bridge.service().failNext("ElectMaster", FakeBridge.staleEpoch());
        bridge.service().onElect(r -> elected(ElectedBy.ELECTED_BY_CLOUDSTACK, "10.0.0.12"));
        epoch.set(4);
        MasterLocation m = locator.locate("cluster-a", "10.0.0.11");
        assertEquals("10.0.0.12", m.address());
        assertEquals(2, bridge.service().electRequests.size());
        assertEquals(2, bridge.service().count("HAMode"));
    }

    @Test
    void aBridgeThatCannotBeReachedSaysSo() {
        for (int i = 0; i < 4; i++) {
            bridge.service().failNext("HAMode", Status.UNAVAILABLE.withDescription("connection refused").asRuntimeException());
        }
        MasterUnavailableException e = assertThrows(MasterUnavailableException.class, () -> locator.locate("cluster-a", null));
        assertTrue(e.getMessage().contains("cannot be asked"), e.getMessage());
    }
}
