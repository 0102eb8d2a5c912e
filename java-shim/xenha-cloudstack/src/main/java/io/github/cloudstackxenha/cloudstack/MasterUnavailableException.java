package io.github.cloudstackxenha.cloudstack;

/**
 * No master can be given for the pool now, and why: nobody may elect
 * (policy, or XenHA state unknown), the bridge refused to elect (the old
 * master cannot be proven harmless: the trace says what was tried), XenHA
 * has not converged, or the bridge cannot be reached. Retrying the same
 * login in a loop does not help; the reason says what would.
 */
public class MasterUnavailableException extends Exception {
    private static final long serialVersionUID = 1L;

    private final String pool;

    MasterUnavailableException(String pool, String reason, Throwable cause) {
        super("no master for pool " + pool + ": " + reason, cause);
        this.pool = pool;
    }

    public String pool() {
        return pool;
    }
}
