package io.github.cloudstackxenha.cloudstack;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.time.Instant;
import java.util.Properties;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;


import com.cloud.ha.Investigator;
import com.cloud.host.Status;
import com.cloud.hypervisor.Hypervisor.HypervisorType;
import com.google.protobuf.Timestamp;

import cloudstack.xenha.v1.Xenha.AttachPoolRequest;
import cloudstack.xenha.v1.Xenha.HAModeResponse;
import cloudstack.xenha.v1.Xenha.Host;
import io.github.cloudstackxenha.client.FakeBridge;

class InvestigatorTest {
    static final String UUID0 = FenceBuilderTest.UUID0;

    private FakeBridge bridge;
    private XenHaBridgeContext ctx;
    private XenHaBridgeInvestigator investigator;
    private final com.cloud.host.Host host = Fakes.xen(5, UUID0, "10.0.0.11", 3);

    @BeforeEach
    void setUp() throws Exception {
        bridge = FakeBridge.start();
        Properties p = new Properties();
        p.setProperty("xenha.investigator.max_view_age", "60s");
        ctx = new XenHaBridgeContext(bridge.client(), ShimSettings.fromProperties(p, java.nio.file.Path.of(".")));
        investigator = new XenHaBridgeInvestigator();
        investigator.setBridge(ctx);
        bridge.service().addPool(AttachPoolRequest.newBuilder().setName("cluster-a").addMembers("https://10.0.0.11").build());
    }

    @AfterEach
    void tearDown() {
        ctx.close();
        bridge.close();
    }

    private void view(String probe, boolean live, boolean observed, Instant at) {
        bridge.service().onHaMode(r -> HAModeResponse.newBuilder().setPool(r.getPool()).setObserved(observed)
                .setObservedAt(Timestamp.newBuilder().setSeconds(at.getEpochSecond()))
                .addHosts(Host.newBuilder().setUuid("5fb90bad-b37c-4821-b6d9-5526a41a9504").setAddress("10.0.0.12").setProbe("master").setLive(true))
                .addHosts(Host.newBuilder().setUuid(UUID0).setAddress("10.0.0.11").setProbe(probe).setLive(live))
                .build());
    }

    @ParameterizedTest
    @ValueSource(strings = {"master", "slave", "emergency", "auth-failed"})
    void aHostWhoseXapiAnswersIsUp(String probe) {
        view(probe, true, true, Instant.now());
        assertEquals(Status.Up, investigator.getHostAgentStatus(host));
    }

    @Test
    void noAnswerAloneCannotTell() {
        view("unreachable", true, true, Instant.now());
        assertNull(investigator.getHostAgentStatus(host));
    }

    @Test
    void noAnswerAndNotLiveIsDown() {
        view("unreachable", false, true, Instant.now());
        assertEquals(Status.Down, investigator.getHostAgentStatus(host));
    }

    @Test
    void noAnswerFromAHostTheBridgeFencedIsDown() {
        view("unreachable", true, true, Instant.now());
        ctx.fences().recordFenced(UUID0);
        assertEquals(Status.Down, investigator.getHostAgentStatus(host));
    }

    @Test
    void aFencedHostThatAnswersAgainIsUpAndNoLongerFenced() {
        ctx.fences().recordFenced(UUID0);
        view("slave", true, true, Instant.now());
        assertEquals(Status.Up, investigator.getHostAgentStatus(host));
        assertFalse(ctx.fences().isFenced(UUID0));
    }

    @Test
    void aStaleOrUnobservedViewCannotTell() {
        view("slave", true, true, Instant.now().minusSeconds(120));
        assertNull(investigator.getHostAgentStatus(host));
        view("slave", true, false, Instant.now());
        assertNull(investigator.getHostAgentStatus(host));
    }

    @Test
    void whatTheBridgeDoesNotKnowCannotTell() {
        view("slave", true, true, Instant.now());
        assertNull(investigator.getHostAgentStatus(Fakes.xen(6, "0566c74d-1003-4c4d-bbbb-0407d1e2c640", "10.0.0.11", 3)));
        assertNull(investigator.getHostAgentStatus(Fakes.host(7, "kvm", UUID0, "10.0.0.11", 3L, HypervisorType.KVM)));
        bridge.service().failNext("HAMode", io.grpc.Status.INTERNAL.asRuntimeException());
        assertNull(investigator.getHostAgentStatus(host));
    }

    @Test
    void theOldNameAnswersTheSame() {
        view("unreachable", false, true, Instant.now());
        assertEquals(Status.Down, investigator.isAgentAlive(host));
    }

    @Test
    void aVmOnAFencedDownHostIsNotAlive() throws Exception {
        view("unreachable", true, true, Instant.now());
        ctx.fences().recordFenced(UUID0);
        assertFalse(investigator.isVmAlive(Fakes.vm("i-2-1-VM"), host));
    }

    @Test
    void otherwiseTheVmIsUnknownSoCloudStackGoesOnToFencing() {
        view("unreachable", false, true, Instant.now()); // down, but not fenced by the bridge
        assertThrows(Investigator.UnknownVM.class, () -> investigator.isVmAlive(Fakes.vm("i-2-1-VM"), host));
        view("slave", true, true, Instant.now());
        assertThrows(Investigator.UnknownVM.class, () -> investigator.isVmAlive(Fakes.vm("i-2-1-VM"), host));
    }
}
