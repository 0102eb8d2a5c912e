package io.github.cloudstackxenha.client;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import cloudstack.xenha.v1.XenHAServiceGrpc;
import cloudstack.xenha.v1.Xenha.AttachPoolRequest;
import cloudstack.xenha.v1.Xenha.AttachPoolResponse;
import cloudstack.xenha.v1.Xenha.DetachPoolRequest;
import cloudstack.xenha.v1.Xenha.ElectMasterRequest;
import cloudstack.xenha.v1.Xenha.ElectMasterResponse;
import cloudstack.xenha.v1.Xenha.FenceHostRequest;
import cloudstack.xenha.v1.Xenha.FenceHostResponse;
import cloudstack.xenha.v1.Xenha.HAModeRequest;
import cloudstack.xenha.v1.Xenha.HAModeResponse;
import cloudstack.xenha.v1.Xenha.JournalEntry;
import cloudstack.xenha.v1.Xenha.JournalRequest;
import cloudstack.xenha.v1.Xenha.ListPoolsRequest;
import cloudstack.xenha.v1.Xenha.PoolSummary;
import io.grpc.ChannelCredentials;
import io.grpc.ConnectivityState;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.ManagedChannelRegistry;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;

/**
 * The CloudStack side's one connection to xenha-bridge.
 *
 * <p>Every call carries a deadline from {@link XenHaBridgeConfig} (reads
 * seconds, ElectMaster and FenceHost minutes); the idempotent calls are
 * retried on UNAVAILABLE by the channel's service config ({@link RetryPolicy}),
 * the others never; every failure is a {@link XenHaBridgeException} naming
 * the call and its pool. The bearer token, when configured, goes on every
 * call; TLS and mTLS come from the configuration.
 *
 * <p>Thread-safe: one client per management server, shared by the adapters.
 * {@link #close()} stops the event listeners it started, then shuts the
 * channel down and waits for it.
 */
public final class XenHaBridgeClient implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(XenHaBridgeClient.class.getName());
    private static final Duration CLOSE_GRACE = Duration.ofSeconds(5);

    private final ManagedChannel channel;
    private final XenHaBridgeConfig config;
    private final XenHAServiceGrpc.XenHAServiceBlockingStub blocking;
    private final XenHAServiceGrpc.XenHAServiceStub async;
    private final Set<PoolEventsListener> listeners = ConcurrentHashMap.newKeySet();

    /**
     * Over a channel built elsewhere (tests use an in-process one, built with
     * {@link #configure} like the real one).
     */
    XenHaBridgeClient(ManagedChannel channel, XenHaBridgeConfig config, BearerToken token) {
        this.channel = channel;
        this.config = config;
        XenHAServiceGrpc.XenHAServiceBlockingStub b = XenHAServiceGrpc.newBlockingStub(channel);
        XenHAServiceGrpc.XenHAServiceStub a = XenHAServiceGrpc.newStub(channel);
        if (token != null) {
            b = b.withCallCredentials(token);
            a = a.withCallCredentials(token);
        }
        this.blocking = b;
        this.async = a;
    }

    /**
     * Builds the channel the configuration describes. Nothing is dialled
     * yet: the first call connects, so a bridge that is down now fails that
     * call, not this one.
     *
     * @throws IOException when a TLS or token file cannot be read
     */
    public static XenHaBridgeClient connect(XenHaBridgeConfig config) throws IOException {
        ChannelCredentials creds = InsecureChannelCredentials.create();
        if (config.tls()) {
            TlsChannelCredentials.Builder tls = TlsChannelCredentials.newBuilder();
            if (config.caFile() != null) {
                requireCertificates(XenHaBridgeConfig.Keys.TLS_CA_FILE, config.caFile());
                try {
                    tls.trustManager(config.caFile().toFile());
                } catch (IOException | RuntimeException e) {
                    throw new IOException(XenHaBridgeConfig.Keys.TLS_CA_FILE + ": " + config.caFile() + ": " + e.getMessage(), e);
                }
            }
            if (config.certFile() != null) {
                requireCertificates(XenHaBridgeConfig.Keys.TLS_CERT_FILE, config.certFile());
                try {
                    tls.keyManager(config.certFile().toFile(), config.keyFile().toFile());
                } catch (IOException | RuntimeException e) {
                    throw new IOException(XenHaBridgeConfig.Keys.TLS_CERT_FILE + "/" + XenHaBridgeConfig.Keys.TLS_KEY_FILE + ": "
                            + config.certFile() + ", " + config.keyFile() + ": " + e.getMessage(), e);
                }
            }
            creds = tls.build();
        }
        BearerToken token = config.tokenFile() == null ? null
                : BearerToken.fromFile(XenHaBridgeConfig.Keys.TOKEN_FILE, config.tokenFile());
        ManagedChannelBuilder<?> builder;
        try {
            builder = Grpc.newChannelBuilder(config.target(), creds);
        } catch (ManagedChannelRegistry.ProviderNotFoundException e) {
            // The transport refused the credentials, e.g. a key it cannot read.
            throw new IOException("xenha.bridge.tls.*: these TLS settings cannot be used: " + e.getMessage(), e);
        }
        if (config.authority() != null) {
            builder.overrideAuthority(config.authority());
        }
        LOG.log(System.Logger.Level.INFO, "xenha-bridge client: {0}", config);
        return new XenHaBridgeClient(configure(builder, config).build(), config, token);
    }

    /** Fails, naming the key, unless the file holds at least one PEM certificate. */
    private static void requireCertificates(String key, Path file) throws IOException {
        Collection<? extends Certificate> certs;
        try (InputStream in = Files.newInputStream(file)) {
            certs = CertificateFactory.getInstance("X.509").generateCertificates(in);
        } catch (CertificateException e) {
            throw new IOException(key + ": " + file + " holds no readable PEM certificate: " + e.getMessage(), e);
        } catch (IOException e) {
            throw new IOException(key + ": cannot read " + file + ": " + e, e);
        }
        if (certs.isEmpty()) {
            throw new IOException(key + ": " + file + " holds no PEM certificate");
        }
    }

    /** What every channel to the bridge gets: retries, keepalive, no remote service config. */
    static ManagedChannelBuilder<?> configure(ManagedChannelBuilder<?> builder, XenHaBridgeConfig config) {
        builder.disableServiceConfigLookUp()
                // The bridge permits pings every 10 s; a dead peer is found within 40 s.
                .keepAliveTime(30, TimeUnit.SECONDS)
                .keepAliveTimeout(10, TimeUnit.SECONDS)
                .maxInboundMessageSize(16 << 20)
                .userAgent("xenha-cloudstack-shim");
        if (config.retryMaxAttempts() > 1) {
            builder.defaultServiceConfig(RetryPolicy.serviceConfig(config.retryMaxAttempts())).enableRetry();
        } else {
            builder.disableRetry();
        }
        return builder;
    }

    public XenHaBridgeConfig config() {
        return config;
    }

    /** Who controls the pool, its master, hosts, warnings, epoch and event resume point. Retried. */
    public HAModeResponse haMode(String pool) {
        wake();
        try {
            return blocking.withDeadlineAfter(millis(config.readTimeout()), TimeUnit.MILLISECONDS)
                    .hAMode(HAModeRequest.newBuilder().setPool(pool).build());
        } catch (StatusRuntimeException e) {
            throw XenHaBridgeException.from("HAMode", "pool=" + pool, e);
        }
    }

    /**
     * Asks the bridge to make sure the pool has one live master. Not retried
     * by the channel: repeat it with the same {@code request_id} to get the
     * first call's result.
     */
    public ElectMasterResponse electMaster(ElectMasterRequest request) {
        wake();
        try {
            return blocking.withDeadlineAfter(millis(config.electTimeout()), TimeUnit.MILLISECONDS).electMaster(request);
        } catch (StatusRuntimeException e) {
            throw XenHaBridgeException.from("ElectMaster", "pool=" + request.getPool() + ", request_id=" + request.getRequestId(), e);
        }
    }

    /**
     * Asks the bridge to fence a dead host. Not retried by the channel:
     * repeat it with the same {@code request_id} to get the first call's
     * result. The BMC password a request may carry is never printed.
     */
    public FenceHostResponse fenceHost(FenceHostRequest request) {
        wake();
        try {
            return blocking.withDeadlineAfter(millis(config.fenceTimeout()), TimeUnit.MILLISECONDS).fenceHost(request);
        } catch (StatusRuntimeException e) {
            throw XenHaBridgeException.from("FenceHost", "pool=" + request.getPool() + ", host=" + request.getHost()
                    + ", request_id=" + request.getRequestId(), e);
        }
    }

    /** Hands a pool to the bridge; attaching the same pool again is a no-op. Retried. */
    public AttachPoolResponse attachPool(AttachPoolRequest request) {
        wake();
        try {
            return blocking.withDeadlineAfter(millis(config.registryTimeout()), TimeUnit.MILLISECONDS).attachPool(request);
        } catch (StatusRuntimeException e) {
            throw XenHaBridgeException.from("AttachPool", "pool=" + request.getName() + ", " + request.getMembersCount() + " member(s)", e);
        }
    }

    /** Stops the bridge watching a pool attached through AttachPool. Not retried. */
    public void detachPool(String pool) {
        wake();
        try {
            blocking.withDeadlineAfter(millis(config.registryTimeout()), TimeUnit.MILLISECONDS)
                    .detachPool(DetachPoolRequest.newBuilder().setPool(pool).build());
        } catch (StatusRuntimeException e) {
            throw XenHaBridgeException.from("DetachPool", "pool=" + pool, e);
        }
    }

    /** Every attached pool. Retried. */
    public List<PoolSummary> listPools() {
        wake();
        try {
            return blocking.withDeadlineAfter(millis(config.readTimeout()), TimeUnit.MILLISECONDS)
                    .listPools(ListPoolsRequest.getDefaultInstance()).getPoolsList();
        } catch (StatusRuntimeException e) {
            throw XenHaBridgeException.from("ListPools", "", e);
        }
    }

    /** A pool's journaled steps after {@code afterSequence}, at most {@code limit} (0: the bridge's default). Retried. */
    public List<JournalEntry> journal(String pool, long afterSequence, int limit) {
        wake();
        try {
            return blocking.withDeadlineAfter(millis(config.readTimeout()), TimeUnit.MILLISECONDS)
                    .journal(JournalRequest.newBuilder().setPool(pool).setAfterSequence(afterSequence).setLimit(limit).build())
                    .getEntriesList();
        } catch (StatusRuntimeException e) {
            throw XenHaBridgeException.from("Journal", "pool=" + pool, e);
        }
    }

    /**
     * Follows a pool's events from now on: reads HAMode for the resume point
     * (given to {@link PoolEventsHandler#onResync}) and streams after it,
     * resuming across disconnections. Returns at once; the listener runs on
     * its own thread until closed.
     */
    public PoolEventsListener poolEvents(String pool, PoolEventsHandler handler) {
        return startListener(pool, null, handler);
    }

    /** Follows a pool's events from a resume point the caller kept (an event's sequence and incarnation). */
    public PoolEventsListener poolEvents(String pool, ResumePoint from, PoolEventsHandler handler) {
        return startListener(pool, from, handler);
    }

    private PoolEventsListener startListener(String pool, ResumePoint from, PoolEventsHandler handler) {
        PoolEventsListener l = new PoolEventsListener(this, async, pool, from, handler, listeners::remove);
        listeners.add(l);
        l.start();
        return l;
    }

    /**
     * Stops the listeners, then shuts the channel down, waiting up to 5 s for
     * calls in flight before cancelling them.
     */
    @Override
    public void close() {
        for (PoolEventsListener l : listeners) {
            l.close();
        }
        channel.shutdown();
        try {
            if (!channel.awaitTermination(CLOSE_GRACE.toMillis(), TimeUnit.MILLISECONDS)) {
                LOG.log(System.Logger.Level.WARNING, "xenha-bridge channel still busy after {0}: cancelling its calls",
                        Durations.format(CLOSE_GRACE));
                channel.shutdownNow();
                channel.awaitTermination(CLOSE_GRACE.toMillis(), TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            channel.shutdownNow();
            Thread.currentThread().interrupt();
        }
    }

    /**
     * After an outage the channel waits between reconnection attempts, up to
     * two minutes; a call (or an event listener's retry) is the moment to
     * try again at once, so a bridge that is back is used as soon as it is
     * needed rather than when the channel's backoff ends.
     */
    void wake() {
        if (channel.getState(false) == ConnectivityState.TRANSIENT_FAILURE) {
            channel.resetConnectBackoff();
        }
    }

    /** Whether {@link #close()} has finished with the channel. */
    public boolean isTerminated() {
        return channel.isTerminated();
    }

    private static long millis(Duration d) {
        return d.toMillis();
    }
}
