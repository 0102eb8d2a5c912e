package io.github.cloudstackxenha.client;

import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

import cloudstack.xenha.v1.XenHAServiceGrpc;
import cloudstack.xenha.v1.Xenha.HAModeResponse;
import cloudstack.xenha.v1.Xenha.PoolEvent;
import cloudstack.xenha.v1.Xenha.PoolEventsRequest;
import cloudstack.xenha.v1.Xenha.PoolEventsResponse;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;

/**
 * Follows one pool's PoolEvents stream for as long as it is open, across
 * disconnections and bridge restarts.
 *
 * <p>What it guarantees, and how:
 * <ul>
 * <li><b>Within one run of the bridge (one incarnation) nothing is lost or
 * repeated.</b> The listener remembers the last sequence it delivered and
 * resumes after it with the incarnation it belongs to; the bridge replays
 * what it kept since ({@code events.retention}, 10000 events by default).
 * Sequences already delivered are skipped if they come again.</li>
 * <li><b>Across a bridge restart the events in between are not replayed</b>
 * (the bridge does not persist them): the resume fails with OUT_OF_RANGE,
 * the listener reads HAMode and hands it to
 * {@link PoolEventsHandler#onResync} with reason
 * {@link Resync.Reason#BRIDGE_RESTARTED}, then streams from the new run's
 * sequence. The gap is reported, never hidden. The same happens, with
 * {@link Resync.Reason#EVENTS_EXPIRED}, when the listener was away longer
 * than the bridge keeps events.</li>
 * <li>A consumer too slow for the bridge's queue (RESOURCE_EXHAUSTED) gets
 * what was queued, then resumes at once: no gap.</li>
 * <li>Every stream has a deadline ({@code xenha.bridge.events.stream_max_age}); when it
 * passes the stream is resumed on a new call, invisibly.</li>
 * <li>Other failures (bridge down, pool not attached yet, bad token) are
 * reported to {@link PoolEventsHandler#onDisconnected} and retried with an
 * exponential, jittered backoff up to {@code xenha.bridge.events.retry_max}.</li>
 * </ul>
 *
 * <p>One thread per listener runs the gRPC callbacks, the retries and the
 * handler, so the handler is never called concurrently and needs no locks.
 * Flow control is gRPC's: the next event is read when the handler returns.
 */
public final class PoolEventsListener implements AutoCloseable {
    private static final Logger LOG = LogManager.getLogger(PoolEventsListener.class);
    /** A call that lived this long was healthy: its failure starts a new backoff. */
    private static final long HEALTHY_CALL_NANOS = TimeUnit.SECONDS.toNanos(10);

    private final XenHaBridgeClient client;
    private final XenHAServiceGrpc.XenHAServiceStub stub;
    private final String pool;
    private final PoolEventsHandler handler;
    private final Consumer<PoolEventsListener> onFinished;
    private final XenHaBridgeConfig config;
    private final ScheduledThreadPoolExecutor executor;
    private final CountDownLatch synced = new CountDownLatch(1);
    private final CountDownLatch finished = new CountDownLatch(1);
    private volatile Thread thread;

    // Read from any thread, written on the listener's thread only.
    private volatile ResumePoint position;
    private volatile boolean closed;

    // The listener's thread only.
    private ClientCallStreamObserver<PoolEventsRequest> call;
    private long callStartedNanos;
    private int failures;
    private RuntimeException handlerFailure;
    private boolean resyncRequested;
    private XenHaBridgeException stopCause;

    PoolEventsListener(XenHaBridgeClient client, XenHAServiceGrpc.XenHAServiceStub stub, String pool, ResumePoint from,
            PoolEventsHandler handler, Consumer<PoolEventsListener> onFinished) {
        this.client = client;
        this.stub = stub;
        this.pool = pool;
        this.position = from;
        this.handler = handler;
        this.onFinished = onFinished;
        this.config = client.config();
        this.executor = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "xenha-events-" + pool);
            t.setDaemon(true);
            thread = t;
            return t;
        });
        this.executor.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
    }

    void start() {
        executor.execute(position == null ? this::resync : this::subscribe);
    }

    public String pool() {
        return pool;
    }

    /** The last event delivered (or the snapshot's point); null until the first resync. */
    public ResumePoint position() {
        return position;
    }

    /**
     * Waits until the listener knows where it streams from (its first
     * HAMode answered, or the resume point it was given): events after that
     * point will all be delivered.
     */
    public boolean awaitSynced(Duration timeout) throws InterruptedException {
        return synced.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** Whether it was closed or stopped on a terminal failure: it delivers nothing more. */
    public boolean isStopped() {
        return closed;
    }

    /** Cancels the stream and stops; waits up to 5 s unless called from the handler itself. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            try {
                executor.execute(() -> {
                    if (call != null) {
                        call.cancel("listener closed", null); // onError finishes
                    } else {
                        finish();
                    }
                });
            } catch (RejectedExecutionException finishedMeanwhile) {
                // The listener stopped on its own (a terminal failure) between the check and now: nothing to close.
            }
        }
        if (Thread.currentThread() != thread) {
            try {
                finished.await(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    // ---- the listener's thread from here on ----

    /** Reads HAMode and starts again from its resume point. */
    private void resync() {
        if (closed) {
            return;
        }
        HAModeResponse snapshot;
        try {
            snapshot = client.haMode(pool);
        } catch (XenHaBridgeException e) {
            if (isTerminal(e)) {
                stop(e);
            } else {
                retryLater(e, this::resync);
            }
            return;
        }
        ResumePoint previous = position;
        Resync.Reason reason = previous == null ? Resync.Reason.STARTED
                : previous.incarnation().equals(snapshot.getEventIncarnation()) ? Resync.Reason.EVENTS_EXPIRED
                : Resync.Reason.BRIDGE_RESTARTED;
        Resync resync = new Resync(reason, previous, snapshot);
        LOG.log(reason == Resync.Reason.STARTED ? Level.INFO : Level.WARN,
                "pool {}: following events from a snapshot: {}", pool, resync);
        try {
            handler.onResync(resync);
        } catch (RuntimeException e) {
            LOG.warn("pool " + pool + ": the handler failed on " + resync + "; asking again", e);
            retryLater(XenHaBridgeException.local("PoolEvents", "pool=" + pool, Status.Code.CANCELLED,
                    "the handler failed on a resync: " + e, e), this::resync);
            return;
        }
        position = resync.from();
        subscribe();
    }

    /** Streams after {@link #position}. */
    private void subscribe() {
        if (closed) {
            return;
        }
        synced.countDown();
        ResumePoint from = position;
        client.wake();
        PoolEventsRequest request = PoolEventsRequest.newBuilder().setPool(pool)
                .setAfterSequence(from.sequence()).setIncarnation(from.incarnation()).build();
        callStartedNanos = System.nanoTime();
        stub.withExecutor(executor)
                .withDeadlineAfter(config.streamMaxAge().toMillis(), TimeUnit.MILLISECONDS)
                .poolEvents(request, new Observer());
    }

    private void deliver(PoolEvent e) {
        ResumePoint at = position;
        if (!e.getIncarnation().equals(at.incarnation())) {
            // The bridge refuses a resume across incarnations, so this is not
            // expected; if it happens the only safe course is a snapshot.
            resyncRequested = true;
            call.cancel("event from another incarnation", null);
            return;
        }
        if (e.getSequence() <= at.sequence()) {
            return; // delivered already
        }
        try {
            handler.onEvent(e);
        } catch (RuntimeException ex) {
            handlerFailure = ex;
            LOG.warn("pool " + pool + ": the handler failed on event " + e.getSequence()
                    + "; it will be delivered again", ex);
            call.cancel("the handler failed", ex);
            return;
        }
        position = ResumePoint.of(e.getSequence(), e.getIncarnation());
        failures = 0;
    }

    private void streamEnded(Status status) {
        call = null;
        if (closed) {
            finish();
            return;
        }
        if (System.nanoTime() - callStartedNanos > HEALTHY_CALL_NANOS) {
            failures = 0;
        }
        XenHaBridgeException e = XenHaBridgeException.from("PoolEvents", "pool=" + pool + ", after=" + position,
                status.asRuntimeException());
        if (handlerFailure != null) {
            RuntimeException cause = handlerFailure;
            handlerFailure = null;
            retryLater(XenHaBridgeException.local("PoolEvents", "pool=" + pool, Status.Code.CANCELLED,
                    "the handler failed: " + cause, cause), this::subscribe);
            return;
        }
        if (resyncRequested) {
            resyncRequested = false;
            resync();
            return;
        }
        switch (status.getCode()) {
            case DEADLINE_EXCEEDED: // events.stream_max_age: a routine renewal
            case RESOURCE_EXHAUSTED: // we were slow; what was queued was delivered
                subscribe();
                return;
            case OUT_OF_RANGE: // bridge restarted, or the point expired
                resync();
                return;
            case INVALID_ARGUMENT:
                if ("after_sequence".equals(e.field())) {
                    resync(); // a point ahead of the bridge's newest: only a snapshot is safe
                } else {
                    stop(e);
                }
                return;
            default:
                if (isTerminal(e)) {
                    stop(e);
                } else {
                    retryLater(e, this::subscribe);
                }
        }
    }

    private static boolean isTerminal(XenHaBridgeException e) {
        return e.code() == Status.Code.INVALID_ARGUMENT || e.code() == Status.Code.UNIMPLEMENTED;
    }

    private void retryLater(XenHaBridgeException cause, Runnable action) {
        failures++;
        long initial = config.eventsRetryInitial().toMillis();
        long max = config.eventsRetryMax().toMillis();
        long exp = initial << Math.min(failures - 1, 20);
        long base = Math.min(max, exp <= 0 ? max : exp);
        long delay = Math.max(1, (long) (base * (0.8 + 0.4 * ThreadLocalRandom.current().nextDouble())));
        Duration retryIn = Duration.ofMillis(delay);
        LOG.info("pool {}: event stream interrupted ({}); again in {}",
                pool, cause.getMessage(), Durations.format(retryIn));
        try {
            handler.onDisconnected(cause, retryIn);
        } catch (RuntimeException e) {
            LOG.warn("pool " + pool + ": the handler failed in onDisconnected", e);
        }
        executor.schedule(action, delay, TimeUnit.MILLISECONDS);
    }

    private void stop(XenHaBridgeException cause) {
        LOG.error("pool {}: event listener stopped: {}", pool, cause.getMessage());
        stopCause = cause;
        closed = true;
        finish();
    }

    private void finish() {
        try {
            handler.onStopped(stopCause);
        } catch (RuntimeException e) {
            LOG.warn("pool " + pool + ": the handler failed in onStopped", e);
        } finally {
            synced.countDown();
            onFinished.accept(this);
            executor.shutdown();
            finished.countDown();
        }
    }

    /** One call's callbacks; they run on the listener's thread (the call's executor). */
    private final class Observer implements ClientResponseObserver<PoolEventsRequest, PoolEventsResponse> {
        @Override
        public void beforeStart(ClientCallStreamObserver<PoolEventsRequest> requestStream) {
            call = requestStream;
        }

        @Override
        public void onNext(PoolEventsResponse value) {
            if (call != null && handlerFailure == null && !resyncRequested && !closed) {
                deliver(value.getEvent());
            }
        }

        @Override
        public void onError(Throwable t) {
            streamEnded(t instanceof StatusRuntimeException ? ((StatusRuntimeException) t).getStatus() : Status.fromThrowable(t));
        }

        @Override
        public void onCompleted() {
            // The bridge ends streams with a status; a clean end is treated as a disconnection.
            streamEnded(Status.UNAVAILABLE.withDescription("the bridge ended the event stream"));
        }
    }
}
