package io.github.cloudstackxenha.client;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

import com.google.protobuf.Any;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.PreconditionFailure;
import com.google.rpc.ResourceInfo;

import cloudstack.xenha.v1.XenHAServiceGrpc;
import cloudstack.xenha.v1.Xenha.AttachPoolRequest;
import cloudstack.xenha.v1.Xenha.AttachPoolResponse;
import cloudstack.xenha.v1.Xenha.Controller;
import cloudstack.xenha.v1.Xenha.DetachPoolRequest;
import cloudstack.xenha.v1.Xenha.DetachPoolResponse;
import cloudstack.xenha.v1.Xenha.ElectMasterRequest;
import cloudstack.xenha.v1.Xenha.ElectMasterResponse;
import cloudstack.xenha.v1.Xenha.EventType;
import cloudstack.xenha.v1.Xenha.FenceHostRequest;
import cloudstack.xenha.v1.Xenha.FenceHostResponse;
import cloudstack.xenha.v1.Xenha.HAModeRequest;
import cloudstack.xenha.v1.Xenha.HAModeResponse;
import cloudstack.xenha.v1.Xenha.JournalRequest;
import cloudstack.xenha.v1.Xenha.JournalResponse;
import cloudstack.xenha.v1.Xenha.ListPoolsRequest;
import cloudstack.xenha.v1.Xenha.ListPoolsResponse;
import cloudstack.xenha.v1.Xenha.PoolEvent;
import cloudstack.xenha.v1.Xenha.PoolEventsRequest;
import cloudstack.xenha.v1.Xenha.PoolEventsResponse;
import cloudstack.xenha.v1.Xenha.Policy;
import cloudstack.xenha.v1.Xenha.PoolSummary;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;

/**
 * An in-process xenha-bridge for tests: programmable answers, recorded
 * requests, deadlines and headers, and an event hub with the bridge's
 * resume rules (incarnation, retention, OUT_OF_RANGE, RESOURCE_EXHAUSTED).
 * Shared with the adapters' tests through the test jar.
 *
 * <p>{@link #startOnLoopback()} also serves the same service on a real
 * loopback port (plaintext, as the bridge allows on loopback), so that its
 * {@link #address()} can be dialled: another bridge's NOT_LEASE_HOLDER
 * refusal names it as the lease holder.
 */
public final class FakeBridge implements AutoCloseable {
    private static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    private final String name = InProcessServerBuilder.generateName();
    private final Service service = new Service();
    private final Server server;
    private final Server loopback;
    private final List<ManagedChannel> channels = new CopyOnWriteArrayList<>();

    private FakeBridge(boolean onLoopback) throws IOException {
        server = InProcessServerBuilder.forName(name).directExecutor()
                .addService(ServerInterceptors.intercept(service, new Recorder()))
                .build().start();
        if (onLoopback) {
            Server s;
            try {
                s = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0),
                        InsecureServerCredentials.create())
                        .addService(ServerInterceptors.intercept(service, new Recorder()))
                        .build().start();
            } catch (IOException | RuntimeException e) {
                server.shutdownNow();
                throw e;
            }
            loopback = s;
        } else {
            loopback = null;
        }
    }

    public static FakeBridge start() throws IOException {
        return new FakeBridge(false);
    }

    /** In process and on a loopback port: {@link #address()}. */
    public static FakeBridge startOnLoopback() throws IOException {
        return new FakeBridge(true);
    }

    /** host:port of the loopback listener ({@link #startOnLoopback()} only). */
    public String address() {
        if (loopback == null) {
            throw new IllegalStateException("started without a loopback listener: use startOnLoopback()");
        }
        return InetAddress.getLoopbackAddress().getHostAddress() + ":" + loopback.getPort();
    }

    public Service service() {
        return service;
    }

    /** Short deadlines and quick event retries, as tests want. */
    public static XenHaBridgeConfig.Builder testConfig() {
        return XenHaBridgeConfig.builder().readTimeout(Duration.ofSeconds(2)).registryTimeout(Duration.ofSeconds(2))
                .electTimeout(Duration.ofSeconds(3)).fenceTimeout(Duration.ofSeconds(4))
                .eventsRetryInitial(Duration.ofMillis(20)).eventsRetryMax(Duration.ofMillis(100));
    }

    public XenHaBridgeClient client() {
        return client(testConfig().build());
    }

    /** A client over an in-process channel built like the real one. */
    public XenHaBridgeClient client(XenHaBridgeConfig config) {
        return client(config, null);
    }

    /** A client that sends {@code token} as its bearer token. */
    public XenHaBridgeClient client(XenHaBridgeConfig config, String token) {
        ManagedChannel ch = XenHaBridgeClient.configure(InProcessChannelBuilder.forName(name).directExecutor(), config).build();
        channels.add(ch);
        return new XenHaBridgeClient(ch, config, token == null ? null : BearerToken.of(token));
    }

    @Override
    public void close() {
        for (ManagedChannel ch : channels) {
            ch.shutdownNow();
        }
        service.hub.closeAll(Status.UNAVAILABLE.withDescription("bridge stopped"));
        server.shutdownNow();
        if (loopback != null) {
            loopback.shutdownNow();
        }
    }

    /** A status with a google.rpc detail, as the bridge's errors.go builds them. */
    public static StatusRuntimeException withDetail(Status.Code code, String message, com.google.protobuf.Message detail) {
        return StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder().setCode(code.value())
                .setMessage(message).addDetails(Any.pack(detail)).build());
    }

    public static StatusRuntimeException badRequest(String field, String why) {
        return withDetail(Status.Code.INVALID_ARGUMENT, field + ": " + why, BadRequest.newBuilder()
                .addFieldViolations(BadRequest.FieldViolation.newBuilder().setField(field).setDescription(why)).build());
    }

    public static StatusRuntimeException refused(String why, String... traceSteps) {
        PreconditionFailure.Builder pf = PreconditionFailure.newBuilder()
                .addViolations(PreconditionFailure.Violation.newBuilder().setType("ELECTION").setSubject("pool").setDescription(why));
        for (String s : traceSteps) {
            pf.addViolations(PreconditionFailure.Violation.newBuilder().setType("TRACE:" + s).setDescription(s + " detail"));
        }
        return withDetail(Status.Code.FAILED_PRECONDITION, "election refused: " + why, pf.build());
    }

    /** NOT_FOUND naming what was not found, as errors.go builds it ({@code pool} or {@code host}). */
    public static StatusRuntimeException notFound(String resourceType, String message) {
        return withDetail(Status.Code.NOT_FOUND, message, ResourceInfo.newBuilder().setResourceType(resourceType)
                .setDescription(message).build());
    }

    public static StatusRuntimeException staleEpoch() {
        return withDetail(Status.Code.ABORTED, "stale epoch: 1 < 2", ErrorInfo.newBuilder().setReason("STALE_EPOCH")
                .setDomain("xenha-bridge").putMetadata("hint", "read HAMode again and decide on the current state").build());
    }

    /**
     * FAILED_PRECONDITION from a bridge that does not hold the pool's lease,
     * as errors.go builds it (lease.NotHolderError's message and ErrorInfo).
     */
    public static StatusRuntimeException notLeaseHolder(String holder, String holderAddress, String poolUuid) {
        return withDetail(Status.Code.FAILED_PRECONDITION, "bridge " + holder + (holderAddress.isEmpty() ? "" : " at " + holderAddress)
                + " holds the lease of pool " + poolUuid + ": only it may act on the pool; send the call there",
                ErrorInfo.newBuilder().setReason("NOT_LEASE_HOLDER").setDomain("xenha-bridge").putMetadata("pool_uuid", poolUuid)
                        .putMetadata("holder", holder).putMetadata("holder_address", holderAddress).build());
    }

    /** UNAVAILABLE from a bridge that cannot tell who holds the pool's lease, as errors.go builds it. */
    public static StatusRuntimeException leaseUncertain() {
        return withDetail(Status.Code.UNAVAILABLE, "the lease store cannot be reached: who holds the lease is unknown",
                ErrorInfo.newBuilder().setReason("LEASE_UNCERTAIN").setDomain("xenha-bridge").build());
    }

    /** What the server saw of one call. */
    public static final class CallRecord {
        public final String method;
        public final Duration deadline;
        public final String authorization;

        CallRecord(String method, Duration deadline, String authorization) {
            this.method = method;
            this.deadline = deadline;
            this.authorization = authorization;
        }
    }

    /** Records method, deadline and authorization of every call. */
    private final class Recorder implements ServerInterceptor {
        @Override
        public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
            Deadline d = Context.current().getDeadline();
            String method = call.getMethodDescriptor().getBareMethodName();
            service.calls.add(new CallRecord(method,
                    d == null ? null : Duration.ofNanos(d.timeRemaining(java.util.concurrent.TimeUnit.NANOSECONDS)),
                    headers.get(AUTHORIZATION)));
            service.counts.computeIfAbsent(method, k -> new AtomicInteger()).incrementAndGet();
            return next.startCall(call, headers);
        }
    }

    /** The programmable service. Defaults answer like a healthy CloudStack-controlled pool "sim". */
    public static final class Service extends XenHAServiceGrpc.XenHAServiceImplBase {
        final List<CallRecord> calls = new CopyOnWriteArrayList<>();
        final Map<String, AtomicInteger> counts = new ConcurrentHashMap<>();
        private final Map<String, List<StatusRuntimeException>> failures = new ConcurrentHashMap<>();
        private final Map<String, Boolean> hanging = new ConcurrentHashMap<>();
        private final Map<String, AttachPoolRequest> pools = Collections.synchronizedMap(new LinkedHashMap<>());
        /** Pools from the bridge's configuration ({@link #addPool}): an attach never changes them. */
        private final java.util.Set<String> configured = java.util.concurrent.ConcurrentHashMap.newKeySet();
        final Hub hub = new Hub();
        private volatile Function<HAModeRequest, HAModeResponse> haMode = r -> defaultHaMode(r.getPool());
        private volatile Function<ElectMasterRequest, ElectMasterResponse> elect = r -> ElectMasterResponse.getDefaultInstance();
        private volatile Function<FenceHostRequest, FenceHostResponse> fence = r -> FenceHostResponse.getDefaultInstance();
        public final List<ElectMasterRequest> electRequests = new CopyOnWriteArrayList<>();
        public final List<FenceHostRequest> fenceRequests = new CopyOnWriteArrayList<>();
        public final List<PoolEventsRequest> eventRequests = new CopyOnWriteArrayList<>();
        public final List<AttachPoolRequest> attachRequests = new CopyOnWriteArrayList<>();

        public Hub hub() {
            return hub;
        }

        /** Calls of a method that reached the server (every attempt of a retried call counts). */
        public int count(String method) {
            AtomicInteger n = counts.get(method);
            return n == null ? 0 : n.get();
        }

        public List<CallRecord> calls() {
            return calls;
        }

        /** The next calls of {@code method} fail with these, in order. */
        public void failNext(String method, StatusRuntimeException... errors) {
            failures.computeIfAbsent(method, k -> new CopyOnWriteArrayList<>()).addAll(List.of(errors));
        }

        /** Calls of {@code method} never answer (until their deadline). */
        public void hang(String method) {
            hanging.put(method, true);
        }

        public void onHaMode(Function<HAModeRequest, HAModeResponse> f) {
            haMode = f;
        }

        public void onElect(Function<ElectMasterRequest, ElectMasterResponse> f) {
            elect = f;
        }

        public void onFence(Function<FenceHostRequest, FenceHostResponse> f) {
            fence = f;
        }

        /** Whether a pool is attached. */
        public boolean hasPool(String name) {
            return pools.containsKey(name);
        }

        /** Forgets every attached pool, as a restarted bridge forgets the pools attached at run time. */
        public void forgetPools() {
            pools.clear();
            configured.clear();
        }

        /** Puts a pool in the registry, as if attached at run time (by an earlier run of a management server). */
        public void addAttachedPool(AttachPoolRequest p) {
            pools.put(p.getName(), p);
        }

        /** Puts a pool in the registry, as if attached from the bridge's configuration. */
        public void addPool(AttachPoolRequest p) {
            configured.add(p.getName());
            pools.put(p.getName(), p);
        }

        /** The answer HAMode gives by default: the pool, CloudStack in control, the hub's resume point. */
        public HAModeResponse defaultHaMode(String pool) {
            return HAModeResponse.newBuilder().setPool(pool).setPoolUuid("pool-uuid-" + pool)
                    .setController(Controller.CONTROLLER_CLOUDSTACK).setObserved(true).setEpoch(1)
                    .setEventSequence(hub.newest()).setEventIncarnation(hub.incarnation()).build();
        }

        /** True when the call was answered by an injected failure or left hanging. */
        private boolean intercepted(String method, StreamObserver<?> out) {
            List<StatusRuntimeException> f = failures.get(method);
            if (f != null && !f.isEmpty()) {
                out.onError(f.remove(0));
                return true;
            }
            return hanging.containsKey(method);
        }

        private static <T> void answer(StreamObserver<T> out, java.util.function.Supplier<T> f) {
            T value;
            try {
                value = f.get();
            } catch (StatusRuntimeException e) {
                out.onError(e);
                return;
            }
            out.onNext(value);
            out.onCompleted();
        }

        @Override
        public void hAMode(HAModeRequest request, StreamObserver<HAModeResponse> out) {
            if (!intercepted("HAMode", out)) {
                answer(out, () -> haMode.apply(request));
            }
        }

        @Override
        public void electMaster(ElectMasterRequest request, StreamObserver<ElectMasterResponse> out) {
            electRequests.add(request);
            if (!intercepted("ElectMaster", out)) {
                answer(out, () -> elect.apply(request));
            }
        }

        @Override
        public void fenceHost(FenceHostRequest request, StreamObserver<FenceHostResponse> out) {
            fenceRequests.add(request);
            if (!intercepted("FenceHost", out)) {
                answer(out, () -> fence.apply(request));
            }
        }

        @Override
        public void attachPool(AttachPoolRequest request, StreamObserver<AttachPoolResponse> out) {
            attachRequests.add(request);
            if (intercepted("AttachPool", out)) {
                return;
            }
            answer(out, () -> {
                synchronized (pools) {
                    // As the bridge: the same pool again is a no-op; one attached
                    // through the API takes new members and credentials when one
                    // member at least stays and nothing else changes.
                    AttachPoolRequest had = pools.get(request.getName());
                    if (had != null) {
                        boolean sameSettings = policy(had) == policy(request) && had.getTls().equals(request.getTls())
                                && had.getStorageTimeout().equals(request.getStorageTimeout());
                        boolean sameMembers = new java.util.HashSet<>(had.getMembersList()).equals(new java.util.HashSet<>(request.getMembersList()));
                        boolean follows = sameSettings && !configured.contains(request.getName())
                                && request.getMembersList().stream().anyMatch(had.getMembersList()::contains);
                        if (!(sameSettings && sameMembers) && !follows) {
                            throw Status.ALREADY_EXISTS.withDescription("a different pool is attached as " + request.getName()).asRuntimeException();
                        }
                        if (configured.contains(request.getName())) {
                            return AttachPoolResponse.newBuilder().setCreated(false).setPool(summary(had)).build();
                        }
                    }
                    pools.put(request.getName(), request);
                    return AttachPoolResponse.newBuilder().setCreated(had == null).setPool(summary(request)).build();
                }
            });
        }

        @Override
        public void detachPool(DetachPoolRequest request, StreamObserver<DetachPoolResponse> out) {
            if (intercepted("DetachPool", out)) {
                return;
            }
            answer(out, () -> {
                configured.remove(request.getPool());
                if (pools.remove(request.getPool()) == null) {
                    throw Status.NOT_FOUND.withDescription("unknown pool " + request.getPool()).asRuntimeException();
                }
                return DetachPoolResponse.getDefaultInstance();
            });
        }

        @Override
        public void listPools(ListPoolsRequest request, StreamObserver<ListPoolsResponse> out) {
            if (intercepted("ListPools", out)) {
                return;
            }
            answer(out, () -> {
                ListPoolsResponse.Builder b = ListPoolsResponse.newBuilder();
                synchronized (pools) {
                    for (AttachPoolRequest p : pools.values()) {
                        b.addPools(summary(p));
                    }
                }
                return b.build();
            });
        }

        private PoolSummary summary(AttachPoolRequest p) {
            return PoolSummary.newBuilder().setName(p.getName()).setPoolUuid("pool-uuid-" + p.getName())
                    .addAllMembers(p.getMembersList()).setPolicy(p.getPolicy()).setObserved(true)
                    .setController(policy(p) == Policy.POLICY_OBSERVE ? Controller.CONTROLLER_NONE : Controller.CONTROLLER_CLOUDSTACK)
                    .setSource(configured.contains(p.getName()) ? "config" : "api").build();
        }

        /** The bridge's policy: unspecified is auto. */
        private static Policy policy(AttachPoolRequest p) {
            return p.getPolicy() == Policy.POLICY_UNSPECIFIED ? Policy.POLICY_AUTO : p.getPolicy();
        }

        @Override
        public void journal(JournalRequest request, StreamObserver<JournalResponse> out) {
            if (!intercepted("Journal", out)) {
                answer(out, JournalResponse::getDefaultInstance);
            }
        }

        @Override
        public void poolEvents(PoolEventsRequest request, StreamObserver<PoolEventsResponse> out) {
            eventRequests.add(request);
            if (!intercepted("PoolEvents", out)) {
                hub.subscribe(request, (ServerCallStreamObserver<PoolEventsResponse>) out);
            }
        }
    }

    /** The bridge's event hub, in miniature: numbered events, retention, incarnations. */
    public static final class Hub {
        private String incarnation = UUID.randomUUID().toString().substring(0, 16);
        private long seq;
        private int retention = 10000;
        private final List<PoolEvent> kept = new ArrayList<>();
        private final List<Subscriber> subs = new ArrayList<>();

        private static final class Subscriber {
            final String pool;
            final ServerCallStreamObserver<PoolEventsResponse> out;

            Subscriber(String pool, ServerCallStreamObserver<PoolEventsResponse> out) {
                this.pool = pool;
                this.out = out;
            }
        }

        public synchronized String incarnation() {
            return incarnation;
        }

        public synchronized long newest() {
            return seq;
        }

        public synchronized void retention(int n) {
            retention = n;
        }

        public synchronized int subscribers() {
            return subs.size();
        }

        /** Publishes an event of {@code type} for {@code pool}; returns it numbered. */
        public synchronized PoolEvent publish(String pool, EventType type, String message) {
            return publish(PoolEvent.newBuilder().setPool(pool).setType(type).setMessage(message));
        }

        /** Publishes an event built by the test; the hub numbers it. */
        public synchronized PoolEvent publish(PoolEvent.Builder event) {
            seq++;
            PoolEvent e = event.setSequence(seq).setIncarnation(incarnation).build();
            String pool = e.getPool();
            kept.add(e);
            while (kept.size() > retention) {
                kept.remove(0);
            }
            for (Subscriber s : new ArrayList<>(subs)) {
                if (s.pool.isEmpty() || s.pool.equals(pool)) {
                    send(s, e);
                }
            }
            return e;
        }

        private void send(Subscriber s, PoolEvent e) {
            try {
                s.out.onNext(PoolEventsResponse.newBuilder().setEvent(e).build());
            } catch (RuntimeException cancelled) {
                subs.remove(s); // the client went away
            }
        }

        synchronized void subscribe(PoolEventsRequest r, ServerCallStreamObserver<PoolEventsResponse> out) {
            List<PoolEvent> replay = new ArrayList<>();
            if (r.getAfterSequence() > 0 || !r.getIncarnation().isEmpty()) {
                if (!r.getIncarnation().isEmpty() && !r.getIncarnation().equals(incarnation)) {
                    out.onError(Status.OUT_OF_RANGE.withDescription("the bridge restarted since that sequence was issued").asRuntimeException());
                    return;
                }
                if (r.getAfterSequence() > seq) {
                    out.onError(badRequest("after_sequence", "the resume point is ahead of the newest event"));
                    return;
                }
                long oldest = kept.isEmpty() ? seq + 1 : kept.get(0).getSequence();
                if (r.getAfterSequence() < oldest - 1) {
                    out.onError(Status.OUT_OF_RANGE.withDescription("the resume point is older than the events kept").asRuntimeException());
                    return;
                }
                for (PoolEvent e : kept) {
                    if (e.getSequence() > r.getAfterSequence() && (r.getPool().isEmpty() || e.getPool().equals(r.getPool()))) {
                        replay.add(e);
                    }
                }
            }
            Subscriber s = new Subscriber(r.getPool(), out);
            out.setOnCancelHandler(() -> unsubscribe(s));
            subs.add(s);
            for (PoolEvent e : replay) {
                send(s, e);
            }
        }

        private synchronized void unsubscribe(Subscriber s) {
            subs.remove(s);
        }

        /** Ends every open stream with {@code status}: a disconnection, a slow consumer cut off. */
        public synchronized void closeAll(Status status) {
            for (Subscriber s : new ArrayList<>(subs)) {
                try {
                    s.out.onError(status.asRuntimeException());
                } catch (RuntimeException alreadyGone) {
                    // The client cancelled first: nothing to end.
                }
            }
            subs.clear();
        }

        /** A bridge restart: streams dropped, a new incarnation, sequences from 1, nothing kept. */
        public synchronized void restart() {
            closeAll(Status.UNAVAILABLE.withDescription("bridge restarting"));
            incarnation = UUID.randomUUID().toString().substring(0, 16);
            seq = 0;
            kept.clear();
        }
    }
}
