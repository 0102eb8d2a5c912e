package io.github.cloudstackxenha.client;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import cloudstack.xenha.v1.XenHAServiceGrpc;

/**
 * The channel's service config: automatic retries for the idempotent calls,
 * and for them only.
 *
 * <p>Retried: {@code HAMode}, {@code ListPools} and {@code Journal} (reads
 * of the bridge's cache) and {@code AttachPool} (attaching the same pool
 * again is a no-op). Never retried by the channel: {@code ElectMaster} and
 * {@code FenceHost}, which change a pool (a repeat is the caller's decision,
 * made with the same {@code request_id} so the bridge returns the first
 * result), {@code DetachPool} (a repeat would answer NOT_FOUND) and the
 * {@code PoolEvents} stream (resumed by {@link PoolEventsListener} from the
 * last sequence instead).
 *
 * <p>Only {@code UNAVAILABLE} is retried: the call did not reach the bridge,
 * the bridge is restarting, or (several management servers) it answered
 * {@code LEASE_UNCERTAIN} because it cannot tell who holds the pool's lease
 * now; all transient, all retried alike for the calls above. ElectMaster and
 * FenceHost get these too and are not retried: the caller sees an exception
 * whose {@link XenHaBridgeException#isTransient()} is true (and
 * {@link XenHaBridgeException#isLeaseUncertain()} for the latter) and decides.
 * A NOT_LEASE_HOLDER refusal (FAILED_PRECONDITION) is never retried here: the
 * client sends it once to the holder instead ({@link XenHaBridgeClient}).
 * A deadline is the caller's whole budget and is never extended by a retry.
 */
final class RetryPolicy {
    static final List<String> RETRIED_METHODS =
            Collections.unmodifiableList(Arrays.asList("HAMode", "ListPools", "Journal", "AttachPool"));

    private RetryPolicy() {
    }

    /**
     * The service config map. gRPC's parser wants JSON types: numbers are
     * doubles ({@code 4.0}, not {@code 4}), durations strings ({@code "0.2s"}).
     */
    static Map<String, Object> serviceConfig(int maxAttempts) {
        List<Object> names = new ArrayList<>();
        for (String m : RETRIED_METHODS) {
            Map<String, Object> name = new LinkedHashMap<>();
            name.put("service", XenHAServiceGrpc.SERVICE_NAME);
            name.put("method", m);
            names.add(name);
        }
        Map<String, Object> retry = new LinkedHashMap<>();
        retry.put("maxAttempts", (double) maxAttempts);
        retry.put("initialBackoff", "0.2s");
        retry.put("maxBackoff", "2s");
        retry.put("backoffMultiplier", 2.0);
        retry.put("retryableStatusCodes", Collections.singletonList("UNAVAILABLE"));
        Map<String, Object> methodConfig = new LinkedHashMap<>();
        methodConfig.put("name", names);
        methodConfig.put("retryPolicy", retry);
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("methodConfig", Collections.singletonList(methodConfig));
        return config;
    }
}
