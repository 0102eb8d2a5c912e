package io.github.cloudstackxenha.client;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Objects;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;

/**
 * How to reach the bridge: address, TLS, token file, deadlines, retries.
 *
 * <p>Read from properties ({@link #fromProperties}) whose keys are listed in
 * {@link Keys}; anything else starting with {@code xenha.bridge.} is an
 * error naming the key, so a typo is never ignored silently. Relative file
 * paths are resolved against the directory of the properties file.
 *
 * <p>Plaintext is only allowed to a loopback address, the rule the bridge
 * applies to its own listener: any other target needs TLS.
 *
 * <p><b>Several management servers.</b> Each runs a bridge, and only the
 * bridge holding a pool's lease acts on the pool (ElectMaster, FenceHost and
 * the other calls that change it); another bridge refuses such a call with
 * FAILED_PRECONDITION naming the holder and the address where it serves
 * gRPC. With {@code xenha.bridge.lease.follow_holder=true} (the default) the
 * client then sends the same request once to that address, at most one hop:
 * the bridges answer a request id once whichever of them ran it, so this is
 * safe. The holder is reached with this configuration's own settings: the
 * same TLS, CA file, client certificate, {@code tls.authority} (when set,
 * every bridge's certificate must carry that name), token, retry policy,
 * and the call's deadline, which covers both hops. The rule above applies
 * to the holder's address too: a plaintext configuration only follows a
 * holder on a loopback address. A holder address equal to
 * {@code xenha.bridge.target} is not followed. With {@code false}, or when
 * the holder cannot be followed, the refusal is thrown; its
 * {@link XenHaBridgeException#leaseHolder()} and
 * {@link XenHaBridgeException#leaseHolderAddress()} say who holds the pool.
 */
public final class XenHaBridgeConfig {
    /** The keys {@link #fromProperties} reads. */
    public static final class Keys {
        public static final String TARGET = "xenha.bridge.target";
        public static final String TLS_ENABLED = "xenha.bridge.tls.enabled";
        public static final String TLS_CA_FILE = "xenha.bridge.tls.ca_file";
        public static final String TLS_CERT_FILE = "xenha.bridge.tls.cert_file";
        public static final String TLS_KEY_FILE = "xenha.bridge.tls.key_file";
        public static final String TLS_AUTHORITY = "xenha.bridge.tls.authority";
        public static final String TOKEN_FILE = "xenha.bridge.token_file";
        public static final String TIMEOUT_READ = "xenha.bridge.timeout.read";
        public static final String TIMEOUT_REGISTRY = "xenha.bridge.timeout.registry";
        public static final String TIMEOUT_ELECT = "xenha.bridge.timeout.elect";
        public static final String TIMEOUT_FENCE = "xenha.bridge.timeout.fence";
        public static final String RETRY_MAX_ATTEMPTS = "xenha.bridge.retry.max_attempts";
        public static final String EVENTS_STREAM_MAX_AGE = "xenha.bridge.events.stream_max_age";
        public static final String EVENTS_RETRY_INITIAL = "xenha.bridge.events.retry_initial";
        public static final String EVENTS_RETRY_MAX = "xenha.bridge.events.retry_max";
        /** Whether a call refused by a bridge that does not hold the pool's lease is sent to the holder (default true). */
        public static final String LEASE_FOLLOW_HOLDER = "xenha.bridge.lease.follow_holder";

        static final Set<String> ALL = Set.of(TARGET, TLS_ENABLED, TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE,
                TLS_AUTHORITY, TOKEN_FILE, TIMEOUT_READ, TIMEOUT_REGISTRY, TIMEOUT_ELECT, TIMEOUT_FENCE,
                RETRY_MAX_ATTEMPTS, EVENTS_STREAM_MAX_AGE, EVENTS_RETRY_INITIAL, EVENTS_RETRY_MAX, LEASE_FOLLOW_HOLDER);

        private Keys() {
        }
    }

    /** The prefix every key of this class starts with. */
    public static final String PREFIX = "xenha.bridge.";

    private final String target;
    private final boolean tls;
    private final Path caFile;
    private final Path certFile;
    private final Path keyFile;
    private final String authority;
    private final Path tokenFile;
    private final Duration readTimeout;
    private final Duration registryTimeout;
    private final Duration electTimeout;
    private final Duration fenceTimeout;
    private final int retryMaxAttempts;
    private final Duration streamMaxAge;
    private final Duration eventsRetryInitial;
    private final Duration eventsRetryMax;
    private final boolean followLeaseHolder;

    private XenHaBridgeConfig(Builder b) {
        target = b.target;
        caFile = b.caFile;
        certFile = b.certFile;
        keyFile = b.keyFile;
        tls = b.tls || caFile != null || certFile != null;
        authority = b.authority;
        tokenFile = b.tokenFile;
        readTimeout = b.readTimeout;
        registryTimeout = b.registryTimeout;
        electTimeout = b.electTimeout;
        fenceTimeout = b.fenceTimeout;
        retryMaxAttempts = b.retryMaxAttempts;
        streamMaxAge = b.streamMaxAge;
        eventsRetryInitial = b.eventsRetryInitial;
        eventsRetryMax = b.eventsRetryMax;
        followLeaseHolder = b.followLeaseHolder;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this configuration's values, to change some of them. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.target = target;
        b.tls = tls;
        b.caFile = caFile;
        b.certFile = certFile;
        b.keyFile = keyFile;
        b.authority = authority;
        b.tokenFile = tokenFile;
        b.readTimeout = readTimeout;
        b.registryTimeout = registryTimeout;
        b.electTimeout = electTimeout;
        b.fenceTimeout = fenceTimeout;
        b.retryMaxAttempts = retryMaxAttempts;
        b.streamMaxAge = streamMaxAge;
        b.eventsRetryInitial = eventsRetryInitial;
        b.eventsRetryMax = eventsRetryMax;
        b.followLeaseHolder = followLeaseHolder;
        return b;
    }

    /**
     * Reads the {@code xenha.bridge.*} keys of {@code props}; other keys are
     * left to their owners.
     *
     * @param baseDir the directory relative file paths are resolved against
     * @throws IllegalArgumentException naming the key, for an unknown key or a bad value
     */
    public static XenHaBridgeConfig fromProperties(Properties props, Path baseDir) {
        Set<String> unknown = new TreeSet<>();
        for (String k : props.stringPropertyNames()) {
            if (k.startsWith(PREFIX) && !Keys.ALL.contains(k)) {
                unknown.add(k);
            }
        }
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException("unknown key(s) " + unknown + "; known: " + new TreeSet<>(Keys.ALL));
        }
        Builder b = builder();
        String v;
        if ((v = value(props, Keys.TARGET)) != null) {
            b.target(v);
        }
        if ((v = value(props, Keys.TLS_ENABLED)) != null) {
            b.tls(parseBoolean(Keys.TLS_ENABLED, v));
        }
        if ((v = value(props, Keys.TLS_CA_FILE)) != null) {
            b.caFile(baseDir.resolve(v));
        }
        if ((v = value(props, Keys.TLS_CERT_FILE)) != null) {
            b.certFile(baseDir.resolve(v));
        }
        if ((v = value(props, Keys.TLS_KEY_FILE)) != null) {
            b.keyFile(baseDir.resolve(v));
        }
        if ((v = value(props, Keys.TLS_AUTHORITY)) != null) {
            b.authority(v);
        }
        if ((v = value(props, Keys.TOKEN_FILE)) != null) {
            b.tokenFile(baseDir.resolve(v));
        }
        if ((v = value(props, Keys.TIMEOUT_READ)) != null) {
            b.readTimeout(Durations.parse(Keys.TIMEOUT_READ, v));
        }
        if ((v = value(props, Keys.TIMEOUT_REGISTRY)) != null) {
            b.registryTimeout(Durations.parse(Keys.TIMEOUT_REGISTRY, v));
        }
        if ((v = value(props, Keys.TIMEOUT_ELECT)) != null) {
            b.electTimeout(Durations.parse(Keys.TIMEOUT_ELECT, v));
        }
        if ((v = value(props, Keys.TIMEOUT_FENCE)) != null) {
            b.fenceTimeout(Durations.parse(Keys.TIMEOUT_FENCE, v));
        }
        if ((v = value(props, Keys.RETRY_MAX_ATTEMPTS)) != null) {
            try {
                b.retryMaxAttempts(Integer.parseInt(v));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(Keys.RETRY_MAX_ATTEMPTS + ": want a whole number (got \"" + v + "\")", e);
            }
        }
        if ((v = value(props, Keys.EVENTS_STREAM_MAX_AGE)) != null) {
            b.streamMaxAge(Durations.parse(Keys.EVENTS_STREAM_MAX_AGE, v));
        }
        if ((v = value(props, Keys.EVENTS_RETRY_INITIAL)) != null) {
            b.eventsRetryInitial(Durations.parse(Keys.EVENTS_RETRY_INITIAL, v));
        }
        if ((v = value(props, Keys.EVENTS_RETRY_MAX)) != null) {
            b.eventsRetryMax(Durations.parse(Keys.EVENTS_RETRY_MAX, v));
        }
        if ((v = value(props, Keys.LEASE_FOLLOW_HOLDER)) != null) {
            b.followLeaseHolder(parseBoolean(Keys.LEASE_FOLLOW_HOLDER, v));
        }
        return b.build();
    }

    private static String value(Properties p, String key) {
        String v = p.getProperty(key);
        return v == null || v.trim().isEmpty() ? null : v.trim();
    }

    private static boolean parseBoolean(String key, String v) {
        switch (v.toLowerCase(Locale.ROOT)) {
            case "true":
                return true;
            case "false":
                return false;
            default:
                throw new IllegalArgumentException(key + ": want true or false (got \"" + v + "\")");
        }
    }

    /** host:port of the bridge. */
    public String target() {
        return target;
    }

    public boolean tls() {
        return tls;
    }

    /** PEM CAs that sign the bridge's certificate; null: the JVM's trusted roots. */
    public Path caFile() {
        return caFile;
    }

    /** PEM client certificate for mTLS; null: none. */
    public Path certFile() {
        return certFile;
    }

    public Path keyFile() {
        return keyFile;
    }

    /** The name the bridge's certificate is checked against, when not the target's host. */
    public String authority() {
        return authority;
    }

    public Path tokenFile() {
        return tokenFile;
    }

    /** HAMode, ListPools, Journal: answered from the bridge's cache. */
    public Duration readTimeout() {
        return readTimeout;
    }

    /** AttachPool, DetachPool: the bridge contacts the pool's members. */
    public Duration registryTimeout() {
        return registryTimeout;
    }

    /** ElectMaster: confirms the master gone, powers it off, promotes, verifies. */
    public Duration electTimeout() {
        return electTimeout;
    }

    /** FenceHost: witnesses, then levels up to heartbeat-wait (minutes). */
    public Duration fenceTimeout() {
        return fenceTimeout;
    }

    /** Attempts of an idempotent call in all, the first included. */
    public int retryMaxAttempts() {
        return retryMaxAttempts;
    }

    /** How long one PoolEvents stream lives before it is resumed on a fresh call. */
    public Duration streamMaxAge() {
        return streamMaxAge;
    }

    public Duration eventsRetryInitial() {
        return eventsRetryInitial;
    }

    public Duration eventsRetryMax() {
        return eventsRetryMax;
    }

    /**
     * Whether a call refused with NOT_LEASE_HOLDER is sent once to the
     * lease holder the refusal names (see the class comment). Default true.
     */
    public boolean followLeaseHolder() {
        return followLeaseHolder;
    }

    /** Everything but secrets: the token file's path is shown, never its content. */
    @Override
    public String toString() {
        return "XenHaBridgeConfig{target=" + target + ", tls=" + tls
                + (caFile != null ? ", caFile=" + caFile : "")
                + (certFile != null ? ", certFile=" + certFile + ", keyFile=" + keyFile : "")
                + (authority != null ? ", authority=" + authority : "")
                + (tokenFile != null ? ", tokenFile=" + tokenFile : "")
                + ", timeouts{read=" + Durations.format(readTimeout) + ", registry=" + Durations.format(registryTimeout)
                + ", elect=" + Durations.format(electTimeout) + ", fence=" + Durations.format(fenceTimeout)
                + "}, retryMaxAttempts=" + retryMaxAttempts + ", streamMaxAge=" + Durations.format(streamMaxAge)
                + ", followLeaseHolder=" + followLeaseHolder + "}";
    }

    /** Builds a configuration; {@link #build()} checks it. */
    public static final class Builder {
        private String target = "127.0.0.1:50051";
        private boolean tls;
        private Path caFile;
        private Path certFile;
        private Path keyFile;
        private String authority;
        private Path tokenFile;
        private Duration readTimeout = Duration.ofSeconds(5);
        private Duration registryTimeout = Duration.ofSeconds(30);
        private Duration electTimeout = Duration.ofMinutes(2);
        private Duration fenceTimeout = Duration.ofMinutes(5);
        private int retryMaxAttempts = 4;
        private Duration streamMaxAge = Duration.ofMinutes(15);
        private Duration eventsRetryInitial = Duration.ofMillis(250);
        private Duration eventsRetryMax = Duration.ofSeconds(30);
        private boolean followLeaseHolder = true;

        private Builder() {
        }

        public Builder target(String v) {
            target = Objects.requireNonNull(v, "target");
            return this;
        }

        public Builder tls(boolean v) {
            tls = v;
            return this;
        }

        public Builder caFile(Path v) {
            caFile = v;
            return this;
        }

        public Builder certFile(Path v) {
            certFile = v;
            return this;
        }

        public Builder keyFile(Path v) {
            keyFile = v;
            return this;
        }

        public Builder authority(String v) {
            authority = v;
            return this;
        }

        public Builder tokenFile(Path v) {
            tokenFile = v;
            return this;
        }

        public Builder readTimeout(Duration v) {
            readTimeout = v;
            return this;
        }

        public Builder registryTimeout(Duration v) {
            registryTimeout = v;
            return this;
        }

        public Builder electTimeout(Duration v) {
            electTimeout = v;
            return this;
        }

        public Builder fenceTimeout(Duration v) {
            fenceTimeout = v;
            return this;
        }

        public Builder retryMaxAttempts(int v) {
            retryMaxAttempts = v;
            return this;
        }

        public Builder streamMaxAge(Duration v) {
            streamMaxAge = v;
            return this;
        }

        public Builder eventsRetryInitial(Duration v) {
            eventsRetryInitial = v;
            return this;
        }

        public Builder eventsRetryMax(Duration v) {
            eventsRetryMax = v;
            return this;
        }

        /** See {@link XenHaBridgeConfig#followLeaseHolder()}. */
        public Builder followLeaseHolder(boolean v) {
            followLeaseHolder = v;
            return this;
        }

        /**
         * @throws IllegalArgumentException naming the key of the first bad value
         */
        public XenHaBridgeConfig build() {
            XenHaBridgeConfig c = new XenHaBridgeConfig(this);
            if (c.target.isEmpty() || hostOf(c.target).isEmpty()) {
                throw new IllegalArgumentException(Keys.TARGET + ": want host:port (got \"" + c.target + "\")");
            }
            if ((c.certFile == null) != (c.keyFile == null)) {
                throw new IllegalArgumentException(Keys.TLS_CERT_FILE + " and " + Keys.TLS_KEY_FILE + " go together");
            }
            if (!c.tls && !isLoopback(hostOf(c.target))) {
                throw new IllegalArgumentException(Keys.TARGET + ": " + c.target + " is not a loopback address, so the "
                        + "connection needs TLS (" + Keys.TLS_CA_FILE + " or " + Keys.TLS_ENABLED + "=true), as the bridge's listener does");
            }
            if (c.retryMaxAttempts < 1 || c.retryMaxAttempts > 5) {
                throw new IllegalArgumentException(Keys.RETRY_MAX_ATTEMPTS + ": between 1 (no retry) and 5, gRPC's limit (got "
                        + c.retryMaxAttempts + ")");
            }
            positive(Keys.TIMEOUT_READ, c.readTimeout);
            positive(Keys.TIMEOUT_REGISTRY, c.registryTimeout);
            positive(Keys.TIMEOUT_ELECT, c.electTimeout);
            positive(Keys.TIMEOUT_FENCE, c.fenceTimeout);
            positive(Keys.EVENTS_STREAM_MAX_AGE, c.streamMaxAge);
            positive(Keys.EVENTS_RETRY_INITIAL, c.eventsRetryInitial);
            positive(Keys.EVENTS_RETRY_MAX, c.eventsRetryMax);
            return c;
        }

        private static void positive(String key, Duration d) {
            if (d == null || d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException(key + ": want a positive duration");
            }
        }
    }

    /** The host part of host:port, [v6]:port or a bare host. */
    static String hostOf(String target) {
        String t = target.trim();
        if (t.startsWith("[")) {
            int end = t.indexOf(']');
            return end < 0 ? "" : t.substring(1, end);
        }
        int colon = t.lastIndexOf(':');
        return colon < 0 ? t : t.substring(0, colon);
    }

    /** Whether a host is loopback without asking DNS for anything but "localhost". */
    static boolean isLoopback(String host) {
        if (host.equalsIgnoreCase("localhost")) {
            return true;
        }
        if (!host.matches("[0-9.]+") && !host.contains(":")) {
            return false; // a name: never resolved here, so never assumed local
        }
        try {
            return InetAddress.getByName(host).isLoopbackAddress();
        } catch (UnknownHostException e) {
            return false;
        }
    }
}
