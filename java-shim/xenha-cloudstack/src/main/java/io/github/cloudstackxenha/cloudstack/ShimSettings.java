package io.github.cloudstackxenha.cloudstack;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;

import cloudstack.xenha.v1.Xenha.Policy;
import cloudstack.xenha.v1.Xenha.XAPITLS;
import io.github.cloudstackxenha.client.Durations;
import io.github.cloudstackxenha.client.XenHaBridgeConfig;

/**
 * What the adapters need beyond reaching the bridge: how to hand a
 * cluster's pool over (member URLs, XAPI TLS, policy, storage timeout) and
 * how old a view the investigator trusts. Read from the same properties
 * file as {@link XenHaBridgeConfig}; every {@code xenha.*} key that neither
 * knows is an error naming it.
 */
public final class ShimSettings {
    /** The keys this class reads. */
    public static final class Keys {
        public static final String XAPI_SCHEME = "xenha.xapi.scheme";
        public static final String XAPI_PORT = "xenha.xapi.port";
        public static final String XAPI_TLS_CA_FILE = "xenha.xapi.tls.ca_file";
        public static final String XAPI_TLS_PIN_SHA256 = "xenha.xapi.tls.pin_sha256";
        public static final String XAPI_TLS_ALLOW_PLAIN_HTTP = "xenha.xapi.tls.allow_plain_http";
        public static final String POOL_POLICY = "xenha.pool.policy";
        public static final String POOL_STORAGE_TIMEOUT = "xenha.pool.storage_timeout";
        public static final String INVESTIGATOR_MAX_VIEW_AGE = "xenha.investigator.max_view_age";
        public static final String CLUSTERS_AUTO_ATTACH = "xenha.clusters.auto_attach";
        public static final String CLUSTERS_RESYNC_INTERVAL = "xenha.clusters.resync_interval";
        public static final String MASTER_RECOVER = "xenha.master.recover";
        public static final String MASTER_RETRY_INTERVAL = "xenha.master.retry_interval";

        static final Set<String> ALL = Set.of(XAPI_SCHEME, XAPI_PORT, XAPI_TLS_CA_FILE, XAPI_TLS_PIN_SHA256,
                XAPI_TLS_ALLOW_PLAIN_HTTP, POOL_POLICY, POOL_STORAGE_TIMEOUT, INVESTIGATOR_MAX_VIEW_AGE, CLUSTERS_AUTO_ATTACH,
                CLUSTERS_RESYNC_INTERVAL, MASTER_RECOVER, MASTER_RETRY_INTERVAL);

        private Keys() {
        }
    }

    private final String scheme;
    private final int port;
    private final XAPITLS xapiTls;
    private final Policy policy;
    private final Duration storageTimeout;
    private final Duration maxViewAge;
    private final boolean autoAttach;
    private final Duration resync;
    private final boolean recoverMaster;
    private final Duration masterRetry;

    ShimSettings(String scheme, int port, XAPITLS xapiTls, Policy policy, Duration storageTimeout, Duration maxViewAge,
            boolean autoAttach, Duration resync, boolean recoverMaster, Duration masterRetry) {
        this.scheme = scheme;
        this.port = port;
        this.xapiTls = xapiTls;
        this.policy = policy;
        this.storageTimeout = storageTimeout;
        this.maxViewAge = maxViewAge;
        this.autoAttach = autoAttach;
        this.resync = resync;
        this.recoverMaster = recoverMaster;
        this.masterRetry = masterRetry;
    }

    /** The defaults: https members, policy auto, the bridge's storage timeout, views up to 90 s old. */
    public static ShimSettings defaults() {
        return fromProperties(new Properties(), Path.of("."));
    }

    /**
     * @throws IllegalArgumentException naming the key, for an unknown {@code xenha.*} key or a bad value
     */
    public static ShimSettings fromProperties(Properties p, Path baseDir) {
        Set<String> unknown = new TreeSet<>();
        for (String k : p.stringPropertyNames()) {
            if (k.startsWith("xenha.") && !k.startsWith(XenHaBridgeConfig.PREFIX) && !Keys.ALL.contains(k)) {
                unknown.add(k);
            }
        }
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException("unknown key(s) " + unknown + "; known: " + new TreeSet<>(Keys.ALL));
        }
        String scheme = get(p, Keys.XAPI_SCHEME, "https").toLowerCase(Locale.ROOT);
        if (!scheme.equals("https") && !scheme.equals("http")) {
            throw new IllegalArgumentException(Keys.XAPI_SCHEME + ": https or http (got \"" + scheme + "\")");
        }
        int port = 0;
        String portText = get(p, Keys.XAPI_PORT, "");
        if (!portText.isEmpty()) {
            try {
                port = Integer.parseInt(portText);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(Keys.XAPI_PORT + ": want a port number (got \"" + portText + "\")", e);
            }
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException(Keys.XAPI_PORT + ": between 1 and 65535 (got " + port + ")");
            }
        }
        boolean plain = bool(Keys.XAPI_TLS_ALLOW_PLAIN_HTTP, get(p, Keys.XAPI_TLS_ALLOW_PLAIN_HTTP, "false"));
        if (scheme.equals("http") && !plain) {
            throw new IllegalArgumentException(Keys.XAPI_SCHEME + "=http needs " + Keys.XAPI_TLS_ALLOW_PLAIN_HTTP
                    + "=true (test pools only: XAPI passwords would cross the network in clear)");
        }
        XAPITLS.Builder tls = XAPITLS.newBuilder().setAllowPlainHttp(plain).setPinSha256(get(p, Keys.XAPI_TLS_PIN_SHA256, ""));
        String ca = get(p, Keys.XAPI_TLS_CA_FILE, "");
        if (!ca.isEmpty()) {
            Path file = baseDir.resolve(ca);
            try {
                tls.setCaPem(new String(Files.readAllBytes(file), StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new IllegalArgumentException(Keys.XAPI_TLS_CA_FILE + ": cannot read " + file + ": " + e.getMessage(), e);
            }
        }
        Policy policy;
        String pol = get(p, Keys.POOL_POLICY, "auto").toUpperCase(Locale.ROOT);
        try {
            policy = Policy.valueOf("POLICY_" + pol);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(Keys.POOL_POLICY + ": auto, require_xenha, require_cloudstack or observe (got \""
                    + pol.toLowerCase(Locale.ROOT) + "\")", e);
        }
        if (policy == Policy.POLICY_UNSPECIFIED || policy == Policy.UNRECOGNIZED) {
            throw new IllegalArgumentException(Keys.POOL_POLICY + ": auto, require_xenha, require_cloudstack or observe");
        }
        String st = get(p, Keys.POOL_STORAGE_TIMEOUT, "");
        Duration storage = st.isEmpty() ? null : Durations.parse(Keys.POOL_STORAGE_TIMEOUT, st);
        Duration maxAge = Durations.parse(Keys.INVESTIGATOR_MAX_VIEW_AGE, get(p, Keys.INVESTIGATOR_MAX_VIEW_AGE, "90s"));
        boolean autoAttach = bool(Keys.CLUSTERS_AUTO_ATTACH, get(p, Keys.CLUSTERS_AUTO_ATTACH, "true"));
        String rs = get(p, Keys.CLUSTERS_RESYNC_INTERVAL, "5m");
        Duration resync = rs.equals("0") ? Duration.ZERO : Durations.parse(Keys.CLUSTERS_RESYNC_INTERVAL, rs);
        if (!resync.isZero() && (resync.compareTo(Duration.ofSeconds(1)) < 0 || resync.compareTo(Duration.ofHours(24)) > 0)) {
            throw new IllegalArgumentException(Keys.CLUSTERS_RESYNC_INTERVAL + ": 0 (off) or between 1s and 24h (got "
                    + Durations.format(resync) + ")");
        }
        boolean recover = bool(Keys.MASTER_RECOVER, get(p, Keys.MASTER_RECOVER, "true"));
        Duration retry = Durations.parse(Keys.MASTER_RETRY_INTERVAL, get(p, Keys.MASTER_RETRY_INTERVAL, "30s"));
        if (retry.compareTo(Duration.ofSeconds(1)) < 0 || retry.compareTo(Duration.ofHours(1)) > 0) {
            throw new IllegalArgumentException(Keys.MASTER_RETRY_INTERVAL + ": between 1s and 1h (got " + Durations.format(retry) + ")");
        }
        return new ShimSettings(scheme, port, tls.build(), policy, storage, maxAge, autoAttach, resync, recover, retry);
    }

    private static String get(Properties p, String key, String def) {
        String v = p.getProperty(key);
        return v == null || v.trim().isEmpty() ? def : v.trim();
    }

    private static boolean bool(String key, String v) {
        if (v.equalsIgnoreCase("true")) {
            return true;
        }
        if (v.equalsIgnoreCase("false")) {
            return false;
        }
        throw new IllegalArgumentException(key + ": want true or false (got \"" + v + "\")");
    }

    /** The XAPI URL of a host from its management address: {@code https://10.0.0.11}, or with the configured port. */
    public String memberUrl(String address) {
        String host = address.contains(":") && !address.startsWith("[") ? "[" + address + "]" : address;
        return scheme + "://" + host + (port > 0 ? ":" + port : "");
    }

    public XAPITLS xapiTls() {
        return xapiTls;
    }

    public Policy policy() {
        return policy;
    }

    /** The pool's storage failover time, or null to leave the bridge's default (120 s). */
    public Duration storageTimeout() {
        return storageTimeout;
    }

    /** A bridge view older than this is not trusted to say a host is up. */
    public Duration maxViewAge() {
        return maxViewAge;
    }

    /** Whether every XenServer cluster CloudStack connects is handed to the bridge (AttachPool). */
    public boolean autoAttach() {
        return autoAttach;
    }

    /**
     * How often every cluster handed over from here is handed over again from
     * CloudStack's records (zero: only on its hosts' connects and removals):
     * changes made through another management server, or to out-of-band
     * management, reach this one's bridge.
     */
    public Duration resyncInterval() {
        return resync;
    }

    /** Whether this management server asks for an election when the bridge reports an attached pool's master lost. */
    public boolean recoverMaster() {
        return recoverMaster;
    }

    /** How long after a refused election the master's recovery asks again, while the master stays lost. */
    public Duration masterRetry() {
        return masterRetry;
    }

    @Override
    public String toString() {
        return "ShimSettings{members=" + memberUrl("ADDRESS") + ", policy=" + policy + ", storageTimeout="
                + (storageTimeout == null ? "bridge default" : Durations.format(storageTimeout))
                + ", xapiTls{ca=" + !xapiTls.getCaPem().isEmpty() + ", pin=" + !xapiTls.getPinSha256().isEmpty()
                + ", allowPlainHttp=" + xapiTls.getAllowPlainHttp() + "}, maxViewAge=" + Durations.format(maxViewAge)
                + ", autoAttach=" + autoAttach + ", resync=" + Durations.format(resync) + ", recoverMaster=" + recoverMaster + ", masterRetry=" + Durations.format(masterRetry) + "}";
    }
}
