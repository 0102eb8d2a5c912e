package io.github.cloudstackxenha.cloudstack;

import java.util.List;

import cloudstack.xenha.v1.Xenha.ElectedBy;

/**
 * The pool master the Xen connection pool should log in to, and how the
 * bridge knows it.
 */
public final class MasterLocation {
    private final String uuid;
    private final String name;
    private final String address;
    private final ElectedBy electedBy;
    private final long epoch;
    private final List<String> trace;

    MasterLocation(String uuid, String name, String address, ElectedBy electedBy, long epoch, List<String> trace) {
        this.uuid = uuid;
        this.name = name;
        this.address = address;
        this.electedBy = electedBy;
        this.epoch = epoch;
        this.trace = List.copyOf(trace);
    }

    /** XenServer's host UUID of the master. */
    public String uuid() {
        return uuid;
    }

    public String name() {
        return name;
    }

    /** The management address to log in to. */
    public String address() {
        return address;
    }

    /**
     * Who chose it: {@code ELECTED_BY_CLOUDSTACK} (the bridge just elected it),
     * {@code ELECTED_BY_XENHA} (XenHA did), {@code ELECTED_BY_NONE} (the master
     * was alive: nothing changed, so retry the connection rather than elect).
     */
    public ElectedBy electedBy() {
        return electedBy;
    }

    /** The pool's epoch after the answer: the fencing token of later calls. */
    public long epoch() {
        return epoch;
    }

    /** What the bridge did, one line per step (empty when answered from its view). */
    public List<String> trace() {
        return trace;
    }

    @Override
    public String toString() {
        return "master " + name + " (" + uuid + ") at " + address + ", " + electedBy + ", epoch " + epoch;
    }
}
