package io.github.cloudstackxenha.client;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.BiFunction;

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
import io.grpc.Deadline;
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
 * <p>Several management servers: ElectMaster and FenceHost are only carried
 * out by the bridge holding the pool's lease. When another bridge refuses
 * one with FAILED_PRECONDITION / {@code NOT_LEASE_HOLDER} naming the
 * holder's address, the client sends the same request (same request id:
 * the bridges answer it once whichever ran it) to that address, once,
 * within the call's deadline, over a channel built with this client's
 * settings and kept for later calls; if the holder fails the call too, that
 * failure is thrown, never followed further. Nothing else is forwarded.
 * {@link XenHaBridgeConfig#followLeaseHolder()} turns this off; the
 * refusal then names the holder ({@link XenHaBridgeException#leaseHolder()}).
 *
 * <p>Thread-safe: one client per management server, shared by the adapters.
 * {@link #close()} stops the event listeners it started, then shuts the
 * channels down (the bridge's and the lease holders') and waits for them.
 */
public final class XenHaBridgeClient implements AutoCloseable {
    private static final Logger LOG = LogManager.getLogger(XenHaBridgeClient.class);
    private static final Duration CLOSE_GRACE = Duration.ofSeconds(5);

    private final ManagedChannel channel;
    private final XenHaBridgeConfig config;
    private final XenHAServiceGrpc.XenHAServiceBlockingStub blocking;
    private final XenHAServiceGrpc.XenHAServiceStub async;
    private final Set<PoolEventsListener> listeners = ConcurrentHashMap.newKeySet();
    private final BearerToken token;
    private final ChannelOpener opener;
    /** Channels to lease holders, by address; guarded by itself, as is {@link #closed}. */
    private final Map<String, ManagedChannel> holderChannels = new LinkedHashMap<>();
    private boolean closed;

    /** Opens a channel to another bridge (a lease holder) described by a configuration. */
    @FunctionalInterface
    interface ChannelOpener {
        ManagedChannel open(XenHaBridgeConfig config) throws IOException;
    }

    /**
     * Over a channel built elsewhere (tests use an in-process one, built with
     * {@link #configure} like the real one). Lease holders are dialled as
     * {@link #connect} dials the bridge.
     */
    XenHaBridgeClient(ManagedChannel channel, XenHaBridgeConfig config, BearerToken token) {
        this(channel, config, token, XenHaBridgeClient::openChannel);
    }

    XenHaBridgeClient(ManagedChannel channel, XenHaBridgeConfig config, BearerToken token, ChannelOpener opener) {
        this.channel = channel;
        this.config = config;
        this.token = token;
        this.opener = opener;
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
        BearerToken token = config.tokenFile() == null ? null
                : BearerToken.fromFile(XenHaBridgeConfig.Keys.TOKEN_FILE, config.tokenFile());
        ManagedChannel channel = openChannel(config);
        LOG.info("xenha-bridge client: {}", config);
        return new XenHaBridgeClient(channel, config, token, XenHaBridgeClient::openChannel);
    }

    /**
     * A channel to {@code config.target()} with the configuration's TLS
     * settings, retries and keepalive: the bridge's, or a lease holder's
     * (the same configuration with the holder as target).
     */
    static ManagedChannel openChannel(XenHaBridgeConfig config) throws IOException {
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
        return configure(builder, config).build();
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
     * first call's result. Sent on to the pool's lease holder when another
     * bridge refuses it with NOT_LEASE_HOLDER (see the class comment).
     */
    public ElectMasterResponse electMaster(ElectMasterRequest request) {
        return act("ElectMaster", "pool=" + request.getPool() + ", request_id=" + request.getRequestId(),
                config.electTimeout(), request, XenHAServiceGrpc.XenHAServiceBlockingStub::electMaster);
    }

    /**
     * Asks the bridge to fence a dead host. Not retried by the channel:
     * repeat it with the same {@code request_id} to get the first call's
     * result. Sent on to the pool's lease holder when another bridge refuses
     * it with NOT_LEASE_HOLDER (see the class comment). The BMC password a
     * request may carry is never printed.
     */
    public FenceHostResponse fenceHost(FenceHostRequest request) {
        return act("FenceHost", "pool=" + request.getPool() + ", host=" + request.getHost()
                + ", request_id=" + request.getRequestId(), config.fenceTimeout(), request,
                XenHAServiceGrpc.XenHAServiceBlockingStub::fenceHost);
    }

    /**
     * A call that only the pool's lease holder carries out: sent to the
     * bridge, and once more to the holder a NOT_LEASE_HOLDER refusal names,
     * both within one deadline.
     */
    private <Q, R> R act(String rpc, String subject, Duration timeout, Q request,
            BiFunction<XenHAServiceGrpc.XenHAServiceBlockingStub, Q, R> call) {
        wake();
        Deadline deadline = Deadline.after(millis(timeout), TimeUnit.MILLISECONDS);
        XenHaBridgeException refusal;
        try {
            return call.apply(blocking.withDeadline(deadline), request);
        } catch (StatusRuntimeException e) {
            refusal = XenHaBridgeException.from(rpc, subject, e);
        }
        if (!refusal.isNotLeaseHolder()) {
            throw refusal;
        }
        String why = whyNotFollow(refusal);
        if (why != null) {
            LOG.info("{}({}): lease holder {} at {} not followed: {}", rpc, subject,
                    refusal.leaseHolder(), refusal.leaseHolderAddress(), why);
            throw refusal;
        }
        XenHAServiceGrpc.XenHAServiceBlockingStub holder;
        try {
            holder = holderStub(refusal.leaseHolderAddress());
        } catch (IOException | RuntimeException e) {
            LOG.warn("{}({}): cannot reach lease holder {} at {} with this client's settings: {}",
                    rpc, subject, refusal.leaseHolder(), refusal.leaseHolderAddress(), e.getMessage());
            refusal.addSuppressed(e);
            throw refusal;
        }
        LOG.info("{}({}): bridge {} holds the pool's lease: sending the call there ({})", rpc,
                subject, refusal.leaseHolder(), refusal.leaseHolderAddress());
        try {
            return call.apply(holder.withDeadline(deadline), request);
        } catch (StatusRuntimeException e) {
            throw XenHaBridgeException.fromLeaseHolder(rpc, subject, refusal, e);
        }
    }

    /** Why a NOT_LEASE_HOLDER refusal is not sent on to the holder, or null when it is. */
    private String whyNotFollow(XenHaBridgeException refusal) {
        if (!config.followLeaseHolder()) {
            return XenHaBridgeConfig.Keys.LEASE_FOLLOW_HOLDER + " is false";
        }
        String address = refusal.leaseHolderAddress().trim();
        if (address.isEmpty()) {
            return "the refusal gives no holder_address";
        }
        if (address.toLowerCase(Locale.ROOT).equals(config.target().trim().toLowerCase(Locale.ROOT))) {
            return "it is the address this client calls";
        }
        return null;
    }

    /** A stub over the (cached) channel to a lease holder, with this client's token. */
    private XenHAServiceGrpc.XenHAServiceBlockingStub holderStub(String address) throws IOException {
        ManagedChannel ch;
        synchronized (holderChannels) {
            if (closed) {
                throw new IllegalStateException("the client is closed");
            }
            ch = holderChannels.get(address);
            if (ch == null) {
                // The configuration's rules apply to the holder's address too:
                // plaintext only to loopback.
                XenHaBridgeConfig holderConfig = config.toBuilder().target(address).build();
                ch = opener.open(holderConfig);
                holderChannels.put(address, ch);
                LOG.info("xenha-bridge client: channel to lease holder at {}", address);
            }
        }
        if (ch.getState(false) == ConnectivityState.TRANSIENT_FAILURE) {
            ch.resetConnectBackoff();
        }
        XenHAServiceGrpc.XenHAServiceBlockingStub stub = XenHAServiceGrpc.newBlockingStub(ch);
        return token == null ? stub : stub.withCallCredentials(token);
    }

    /** The channels to lease holders opened so far, by address (for tests). */
    Map<String, ManagedChannel> holderChannels() {
        synchronized (holderChannels) {
            return new LinkedHashMap<>(holderChannels);
        }
    }

    /** Hands a pool to the bridge; attaching the same pool again is a no-op (new members or credentials are taken). Retried. */
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
     * Stops the listeners, then shuts the channels down (the bridge's and the
     * lease holders'), waiting up to 5 s for calls in flight before
     * cancelling them.
     */
    @Override
    public void close() {
        for (PoolEventsListener l : listeners) {
            l.close();
        }
        List<ManagedChannel> all = new ArrayList<>();
        all.add(channel);
        synchronized (holderChannels) {
            closed = true;
            all.addAll(holderChannels.values());
        }
        for (ManagedChannel ch : all) {
            ch.shutdown();
        }
        try {
            long until = System.nanoTime() + CLOSE_GRACE.toNanos();
            boolean busy = false;
            for (ManagedChannel ch : all) {
                busy |= !ch.awaitTermination(Math.max(0, until - System.nanoTime()), TimeUnit.NANOSECONDS);
            }
            if (busy) {
                LOG.warn("xenha-bridge channel still busy after {}: cancelling its calls",
                        Durations.format(CLOSE_GRACE));
                for (ManagedChannel ch : all) {
                    ch.shutdownNow();
                }
                until = System.nanoTime() + CLOSE_GRACE.toNanos();
                for (ManagedChannel ch : all) {
                    ch.awaitTermination(Math.max(0, until - System.nanoTime()), TimeUnit.NANOSECONDS);
                }
            }
        } catch (InterruptedException e) {
            for (ManagedChannel ch : all) {
                ch.shutdownNow();
            }
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

    /** Whether {@link #close()} has finished with the channels. */
    public boolean isTerminated() {
        synchronized (holderChannels) {
            for (ManagedChannel ch : holderChannels.values()) {
                if (!ch.isTerminated()) {
                    return false;
                }
            }
        }
        return channel.isTerminated();
    }

    private static long millis(Duration d) {
        return d.toMillis();
    }
}
