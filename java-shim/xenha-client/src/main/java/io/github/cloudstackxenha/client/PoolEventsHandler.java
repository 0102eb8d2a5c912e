package io.github.cloudstackxenha.client;

import java.time.Duration;

import cloudstack.xenha.v1.Xenha.PoolEvent;

/**
 * What a {@link PoolEventsListener} tells its owner. Every method is called
 * on the listener's own thread, one at a time, in order.
 */
public interface PoolEventsHandler {
    /**
     * The next event. Within one incarnation of the bridge each event comes
     * exactly once and in sequence order, across any number of
     * disconnections. If this method throws, the event counts as not
     * delivered: the stream is resumed before it, after a backoff.
     */
    void onEvent(PoolEvent event);

    /**
     * The listener follows the pool from a snapshot instead of events: at
     * start, after a bridge restart, or when the resume point had expired.
     * Events follow from {@link Resync#from()}.
     */
    void onResync(Resync resync);

    /**
     * The stream broke (or the bridge could not be asked for a snapshot);
     * the listener tries again after {@code retryIn}. Nothing is lost while
     * the bridge keeps running: the stream resumes after the last event.
     */
    default void onDisconnected(XenHaBridgeException cause, Duration retryIn) {
    }

    /**
     * The listener stopped for good: closed ({@code cause} null) or a failure
     * a retry cannot mend, such as an invalid pool name.
     */
    default void onStopped(XenHaBridgeException cause) {
    }
}
