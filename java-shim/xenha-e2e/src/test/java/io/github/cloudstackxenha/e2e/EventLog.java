package io.github.cloudstackxenha.e2e;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Collectors;

import cloudstack.xenha.v1.Xenha.PoolEvent;
import io.github.cloudstackxenha.client.PoolEventsHandler;
import io.github.cloudstackxenha.client.Resync;
import io.github.cloudstackxenha.client.ResumePoint;
import io.github.cloudstackxenha.client.XenHaBridgeException;

/** Everything a listener delivered, for the test to wait on and compare. */
final class EventLog implements PoolEventsHandler {
    final List<PoolEvent> events = new CopyOnWriteArrayList<>();
    final List<Resync> resyncs = new CopyOnWriteArrayList<>();
    final List<XenHaBridgeException> disconnects = new CopyOnWriteArrayList<>();

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

    /** incarnation/sequence of every event, in delivery order. */
    List<ResumePoint> points() {
        return events.stream().map(e -> ResumePoint.of(e.getSequence(), e.getIncarnation())).collect(Collectors.toList());
    }

    PoolEvent await(String what, Predicate<PoolEvent> p, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            for (PoolEvent e : events) {
                if (p.test(e)) {
                    return e;
                }
            }
            TimeUnit.MILLISECONDS.sleep(20);
        }
        throw new AssertionError("no " + what + " within " + timeout + "; got " + events.stream()
                .map(e -> e.getSequence() + ":" + e.getType()).collect(Collectors.toList()));
    }
}
