package io.github.cloudstackxenha.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import cloudstack.xenha.v1.Xenha.EventType;
import cloudstack.xenha.v1.Xenha.PoolEvent;
import cloudstack.xenha.v1.Xenha.PoolEventsRequest;
import io.grpc.Status;

/** Resume without gaps, resync after restarts, renewal, slow consumers, handler failures. */
class PoolEventsListenerTest {
    private FakeBridge bridge;
    private XenHaBridgeClient client;
    private Recorder rec;

    @BeforeEach
    void setUp() throws Exception {
        bridge = FakeBridge.start();
        client = bridge.client();
        rec = new Recorder();
    }

    @AfterEach
    void tearDown() {
        client.close();
        bridge.close();
    }

    /** Records everything the listener says. */
    static class Recorder implements PoolEventsHandler {
        final List<PoolEvent> events = new CopyOnWriteArrayList<>();
        final List<Resync> resyncs = new CopyOnWriteArrayList<>();
        final List<XenHaBridgeException> disconnects = new CopyOnWriteArrayList<>();
        final CountDownLatch stopped = new CountDownLatch(1);
        volatile XenHaBridgeException stopCause;

        @Override
        public void onEvent(PoolEvent event) {
            events.add(event);
        }

        @Override
        public void onResync(Resync resync) {
            resyncs.add(resync);
        }

        @Override
        public void onDisconnected(XenHaBridgeException cause, Duration retryIn) {
            disconnects.add(cause);
        }

        @Override
        public void onStopped(XenHaBridgeException cause) {
            stopCause = cause;
            stopped.countDown();
        }

        List<Long> sequences() {
            return events.stream().map(PoolEvent::getSequence).collect(Collectors.toList());
        }
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

    private PoolEventsListener listen() throws InterruptedException {
        PoolEventsListener l = client.poolEvents("sim", rec);
        assertTrue(l.awaitSynced(Duration.ofSeconds(5)));
        await("a subscriber", () -> bridge.service().hub().subscribers() == 1);
        return l;
    }

    private void publish(int n) {
        for (int i = 0; i < n; i++) {
            bridge.service().hub().publish("sim", EventType.EVENT_TYPE_HOST_DOWN, "event");
        }
    }

    @Test
    void startsFromHAModeAndDeliversInOrder() throws Exception {
        publish(2); // before the listener: part of the snapshot, not delivered
        listen();
        publish(3);
        await("3 events", () -> rec.events.size() == 3);
        assertEquals(List.of(3L, 4L, 5L), rec.sequences());
        assertEquals(1, rec.resyncs.size());
        assertEquals(Resync.Reason.STARTED, rec.resyncs.get(0).reason());
        assertEquals(2, rec.resyncs.get(0).from().sequence());
        assertNull(rec.resyncs.get(0).previous());
    }

    @Test
    void otherPoolsEventsAreNotDelivered() throws Exception {
        listen();
        bridge.service().hub().publish("other", EventType.EVENT_TYPE_HOST_DOWN, "not ours");
        publish(1);
        await("1 event", () -> rec.events.size() == 1);
        assertEquals("sim", rec.events.get(0).getPool());
    }

    @Test
    void resumesAfterADisconnectionWithoutGapOrRepeat() throws Exception {
        PoolEventsListener l = listen();
        publish(3);
        await("3 events", () -> rec.events.size() == 3);
        String incarnation = bridge.service().hub().incarnation();

        bridge.service().failNext("PoolEvents", Status.UNAVAILABLE.withDescription("connection refused").asRuntimeException());
        bridge.service().hub().closeAll(Status.UNAVAILABLE.withDescription("connection reset"));
        publish(2); // while the listener is away
        await("5 events", () -> rec.events.size() == 5);
        publish(1);
        await("6 events", () -> rec.events.size() == 6);

        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L), rec.sequences());
        assertEquals(2, rec.disconnects.size()); // the reset, then the refused resume
        List<PoolEventsRequest> reqs = bridge.service().eventRequests;
        PoolEventsRequest resumed = reqs.get(reqs.size() - 1);
        assertEquals(3, resumed.getAfterSequence());
        assertEquals(incarnation, resumed.getIncarnation());
        assertEquals(1, rec.resyncs.size());
        assertEquals(ResumePoint.of(6, incarnation), l.position());
    }

    @Test
    void reportsTheGapOfABridgeRestartAndFollowsTheNewRun() throws Exception {
        listen();
        publish(2);
        await("2 events", () -> rec.events.size() == 2);
        String before = bridge.service().hub().incarnation();

        bridge.service().hub().restart();
        await("a resync", () -> rec.resyncs.size() == 2);
        await("a subscriber", () -> bridge.service().hub().subscribers() == 1);
        publish(1);
        await("3 events", () -> rec.events.size() == 3);

        Resync r = rec.resyncs.get(1);
        assertEquals(Resync.Reason.BRIDGE_RESTARTED, r.reason());
        assertEquals(ResumePoint.of(2, before), r.previous());
        assertNotEquals(before, r.from().incarnation());
        assertEquals(1L, rec.events.get(2).getSequence());
        assertEquals(r.from().incarnation(), rec.events.get(2).getIncarnation());
    }

    @Test
    void aResumePointOlderThanTheBridgeKeepsIsReportedAsExpired() throws Exception {
        bridge.service().hub().retention(2);
        publish(5);
        ResumePoint old = ResumePoint.of(1, bridge.service().hub().incarnation());
        client.poolEvents("sim", old, rec);
        await("a resync", () -> rec.resyncs.size() == 1);
        assertEquals(Resync.Reason.EVENTS_EXPIRED, rec.resyncs.get(0).reason());
        assertEquals(old, rec.resyncs.get(0).previous());
        assertEquals(5, rec.resyncs.get(0).from().sequence());
    }

    @Test
    void aResumePointGivenByTheCallerIsHonoured() throws Exception {
        publish(4);
        client.poolEvents("sim", ResumePoint.of(2, bridge.service().hub().incarnation()), rec);
        await("2 events", () -> rec.events.size() == 2);
        assertEquals(List.of(3L, 4L), rec.sequences());
        assertTrue(rec.resyncs.isEmpty());
    }

    @Test
    void aSlowConsumerCutOffResumesAtOnce() throws Exception {
        listen();
        publish(2);
        await("2 events", () -> rec.events.size() == 2);
        bridge.service().hub().closeAll(Status.RESOURCE_EXHAUSTED.withDescription("consumer too slow: resume with after_sequence 2"));
        publish(1);
        await("3 events", () -> rec.events.size() == 3);
        assertEquals(List.of(1L, 2L, 3L), rec.sequences());
        assertTrue(rec.disconnects.isEmpty(), "a cut-off is not a disconnection");
    }

    @Test
    void anEventTheHandlerFailsOnIsDeliveredAgain() throws Exception {
        AtomicBoolean failedOnce = new AtomicBoolean();
        Recorder flaky = new Recorder() {
            @Override
            public void onEvent(PoolEvent event) {
                if (event.getSequence() == 2 && failedOnce.compareAndSet(false, true)) {
                    throw new IllegalStateException("database busy");
                }
                super.onEvent(event);
            }
        };
        rec = flaky;
        listen();
        publish(3);
        await("3 events", () -> rec.events.size() == 3);
        assertEquals(List.of(1L, 2L, 3L), rec.sequences());
        assertEquals(1, rec.disconnects.size());
        assertEquals(Status.Code.CANCELLED, rec.disconnects.get(0).code());
        assertTrue(rec.disconnects.get(0).getMessage().contains("database busy"), rec.disconnects.get(0).getMessage());
    }

    @Test
    void theStreamDeadlineIsRenewedInvisibly() throws Exception {
        client.close();
        client = bridge.client(FakeBridge.testConfig().streamMaxAge(Duration.ofMillis(200)).build());
        listen();
        for (int i = 0; i < 4; i++) {
            publish(1);
            Thread.sleep(120);
        }
        await("4 events", () -> rec.events.size() == 4);
        assertEquals(List.of(1L, 2L, 3L, 4L), rec.sequences());
        assertTrue(bridge.service().eventRequests.size() >= 3, "renewed " + bridge.service().eventRequests.size() + " times");
        assertTrue(rec.disconnects.isEmpty());
        for (FakeBridge.CallRecord r : bridge.service().calls()) {
            if (r.method.equals("PoolEvents")) {
                assertTrue(r.deadline != null && r.deadline.toMillis() <= 200, "stream deadline " + r.deadline);
            }
        }
    }

    @Test
    void aBridgeDownAtStartIsRetriedUntilItAnswers() throws Exception {
        bridge.service().failNext("HAMode", Status.UNAVAILABLE.asRuntimeException(), Status.UNAVAILABLE.asRuntimeException(),
                Status.UNAVAILABLE.asRuntimeException(), Status.UNAVAILABLE.asRuntimeException(),
                Status.UNAVAILABLE.asRuntimeException(), Status.UNAVAILABLE.asRuntimeException());
        PoolEventsListener l = client.poolEvents("sim", rec);
        assertTrue(l.awaitSynced(Duration.ofSeconds(5)));
        assertEquals(1, rec.resyncs.size());
        assertTrue(rec.disconnects.size() >= 1);
    }

    @Test
    void anInvalidPoolStopsTheListener() throws Exception {
        bridge.service().failNext("HAMode", FakeBridge.badRequest("pool", "at most 128 characters"));
        client.poolEvents("x".repeat(200), rec);
        assertTrue(rec.stopped.await(5, TimeUnit.SECONDS));
        assertEquals(Status.Code.INVALID_ARGUMENT, rec.stopCause.code());
    }

    @Test
    void closeCancelsTheStreamAndStops() throws Exception {
        PoolEventsListener l = listen();
        l.close();
        assertTrue(rec.stopped.await(1, TimeUnit.SECONDS));
        assertNull(rec.stopCause);
        await("no subscriber", () -> bridge.service().hub().subscribers() == 0);
        publish(1);
        Thread.sleep(50);
        assertTrue(rec.events.isEmpty());
    }

    @Test
    void closingTheClientStopsItsListeners() throws Exception {
        listen();
        client.close();
        assertTrue(rec.stopped.await(1, TimeUnit.SECONDS));
        assertTrue(client.isTerminated());
    }
}
