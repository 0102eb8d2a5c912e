package io.github.cloudstackxenha.client;

import java.util.Objects;

/**
 * Where a PoolEvents stream resumes: after {@code sequence} of the bridge
 * run {@code incarnation}. Sequences restart with every run of the bridge,
 * so a sequence means nothing without its incarnation.
 */
public final class ResumePoint {
    private final long sequence;
    private final String incarnation;

    private ResumePoint(long sequence, String incarnation) {
        this.sequence = sequence;
        this.incarnation = Objects.requireNonNull(incarnation, "incarnation");
    }

    public static ResumePoint of(long sequence, String incarnation) {
        if (sequence < 0) {
            throw new IllegalArgumentException("sequence must not be negative");
        }
        return new ResumePoint(sequence, incarnation);
    }

    /** The last sequence seen: the stream resumes after it. */
    public long sequence() {
        return sequence;
    }

    public String incarnation() {
        return incarnation;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ResumePoint && ((ResumePoint) o).sequence == sequence
                && ((ResumePoint) o).incarnation.equals(incarnation);
    }

    @Override
    public int hashCode() {
        return Objects.hash(sequence, incarnation);
    }

    @Override
    public String toString() {
        return incarnation + "/" + sequence;
    }
}
