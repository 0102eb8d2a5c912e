package io.github.cloudstackxenha.cloudstack;

import java.time.Instant;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Hosts the bridge has fenced (FenceHost answered FENCED, or a HOST_FENCED
 * event), until they answer again. The investigator uses it: a host the
 * bridge proved off, whose VMs it reset, is down and its VMs are not
 * running, which the bridge's view alone (a probe that gets no answer)
 * cannot tell from a host cut off from the bridge.
 *
 * <p>In memory only: after a management server restart CloudStack asks the
 * fence builder again, and the bridge answers at once for a host already off.
 */
public final class FenceLedger {
    private final Map<String, Instant> fenced = new ConcurrentHashMap<>();

    /** {@code hostUuid} is proven off, as of now. */
    public void recordFenced(String hostUuid) {
        fenced.put(hostUuid.toLowerCase(java.util.Locale.ROOT), Instant.now());
    }

    /** The host answers again: it was powered back on. */
    public void clear(String hostUuid) {
        fenced.remove(hostUuid.toLowerCase(java.util.Locale.ROOT));
    }

    public boolean isFenced(String hostUuid) {
        return fenced.containsKey(hostUuid.toLowerCase(java.util.Locale.ROOT));
    }
}
