package io.github.cloudstackxenha.client;

import cloudstack.xenha.v1.Xenha.HAModeResponse;

/**
 * The event stream restarted from a snapshot of the pool instead of from
 * the events in between: what happened before {@link #from()} is only
 * visible as the state in {@link #snapshot()}, never as events.
 */
public final class Resync {
    /** Why the listener resynchronised. */
    public enum Reason {
        /** The listener started: the snapshot is the state it follows from. */
        STARTED,
        /**
         * The bridge restarted (a new incarnation): events published by the
         * old run after the last one delivered, if any, are gone with it.
         */
        BRIDGE_RESTARTED,
        /**
         * The bridge no longer keeps events that old ({@code events.retention}):
         * some events were missed; the snapshot replaces them.
         */
        EVENTS_EXPIRED
    }

    private final Reason reason;
    private final ResumePoint previous;
    private final HAModeResponse snapshot;

    Resync(Reason reason, ResumePoint previous, HAModeResponse snapshot) {
        this.reason = reason;
        this.previous = previous;
        this.snapshot = snapshot;
    }

    public Reason reason() {
        return reason;
    }

    /** The last point delivered before the resync; null at start. */
    public ResumePoint previous() {
        return previous;
    }

    /** The pool as HAMode showed it when the stream restarted. */
    public HAModeResponse snapshot() {
        return snapshot;
    }

    /** Events after this point follow. */
    public ResumePoint from() {
        return ResumePoint.of(snapshot.getEventSequence(), snapshot.getEventIncarnation());
    }

    @Override
    public String toString() {
        return "Resync{" + reason + ", previous=" + previous + ", from=" + from() + ", epoch=" + snapshot.getEpoch() + "}";
    }
}
