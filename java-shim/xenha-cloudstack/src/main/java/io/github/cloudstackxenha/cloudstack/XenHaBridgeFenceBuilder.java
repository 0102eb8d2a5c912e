package io.github.cloudstackxenha.cloudstack;

import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Collectors;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

import com.cloud.ha.FenceBuilder;
import com.cloud.host.Host;
import com.cloud.vm.VirtualMachine;

import cloudstack.xenha.v1.Xenha.FenceHostRequest;
import cloudstack.xenha.v1.Xenha.FenceHostResponse;
import cloudstack.xenha.v1.Xenha.TraceStep;
import cloudstack.xenha.v1.Xenha.VMReset;
import io.github.cloudstackxenha.client.XenHaBridgeException;
import io.grpc.Status;

/**
 * CloudStack's fence builder for XenServer hosts, through the bridge's
 * FenceHost: the bridge decides whether the host may be fenced (witnesses,
 * storm guard, controller), makes it harmless and resets its VMs' power
 * state, journaling every step. This class only translates.
 *
 * <p>{@code fenceOff} answers as CloudStack's contract wants:
 * <ul>
 * <li>{@code true}: the host is proven off (FENCED), or XenHA, which
 * controls the pool, has taken it out of the liveset and halted its VMs;</li>
 * <li>{@code false}: not fenced: a witness shows the host alive, every
 * level failed, XenHA has not finished, the bridge refused (trace logged)
 * or could not be reached; also when another management server's bridge
 * holds the pool's lease and the call could not be carried out there
 * (following the holder disabled, or the holder unreachable or failing):
 * the holder is logged;</li>
 * <li>for a XenServer host in no pool the bridge has (or with this module
 * inactive): the stock XenServerFencer's answer, when {@link StockFencerHandover}
 * handed it over; {@code null} for other hosts.</li>
 * </ul>
 *
 * <p>CloudStack calls fenceOff once per VM of a dead host, from parallel HA
 * workers. Concurrent calls for one host share one FenceHost call; a later
 * call asks again (the bridge answers at once for a host already off).
 * CloudStack tries every registered fence builder until one answers true:
 * the stock XenServerFencer is therefore not registered beside this one but
 * called through it for the clusters the bridge does not control
 * ({@link StockFencerHandover}): one captain per pool, no global setting.
 *
 * <p>Several management servers: only the bridge holding the pool's lease
 * fences. The client sends a FenceHost refused with NOT_LEASE_HOLDER on to
 * the holder (same request id), so a fence the holder answers is
 * {@code true} or {@code false} as above.
 */
public class XenHaBridgeFenceBuilder extends XenHaAdapterBase implements FenceBuilder {
    private static final Logger LOG = LogManager.getLogger(XenHaBridgeFenceBuilder.class);

    private final ConcurrentHashMap<String, CompletableFuture<Attempt>> inFlight = new ConcurrentHashMap<>();

    /** What one FenceHost call came to. */
    private static final class Attempt {
        static final Attempt NOT_MINE = new Attempt(null);
        static final Attempt FAILED = new Attempt(null);

        final FenceHostResponse response;

        Attempt(FenceHostResponse response) {
            this.response = response;
        }
    }

    private volatile FenceBuilder stockFencer;

    /** The stock XenServer fencer, for hosts of clusters the bridge does not control ({@link StockFencerHandover}). */
    void setStockFencer(FenceBuilder stock) {
        this.stockFencer = stock;
    }

    /** The stock fencer handed over, if any. */
    public FenceBuilder stockFencer() {
        return stockFencer;
    }

    @Override
    public Boolean fenceOff(VirtualMachine vm, Host host) {
        if (!Hosts.isXenServer(host)) {
            return null;
        }
        if (!bridge().isActive()) {
            return stock(vm, host);
        }
        Optional<String> pool;
        try {
            pool = bridge().pools().poolOf(host);
        } catch (XenHaBridgeException e) {
            // A cluster not known here and a bridge that cannot be asked: the
            // pool may be the bridge's (its configuration, or attached through
            // another management server), so nobody fences it now: two
            // captains is worse, and CloudStack asks again.
            LOG.error("xenha-bridge: cannot ask the bridge whether it controls the cluster of {} ({}): not fenced, to keep one "
                    + "captain per pool; CloudStack will ask again. Check that xenha-bridge serve runs and answers at {}",
                    Hosts.describe(host), e.getMessage(), bridge().client().config().target());
            return false;
        }
        if (!pool.isPresent()) {
            LOG.debug("xenha-bridge: {} is in no pool the bridge has: the stock fencer decides", Hosts.describe(host));
            return stock(vm, host);
        }
        String key = pool.get() + "/" + Hosts.bridgeId(host);
        CompletableFuture<Attempt> mine = new CompletableFuture<>();
        CompletableFuture<Attempt> running = inFlight.putIfAbsent(key, mine);
        Attempt attempt;
        if (running != null) {
            LOG.debug("xenha-bridge: {} is being fenced already; waiting for that answer for VM {}", Hosts.describe(host),
                    vm.getInstanceName());
            try {
                attempt = running.join();
            } catch (java.util.concurrent.CompletionException e) {
                throw e.getCause() instanceof RuntimeException ? (RuntimeException) e.getCause() : e;
            }
        } else {
            try {
                attempt = fence(pool.get(), host, vm);
                mine.complete(attempt);
            } catch (RuntimeException e) {
                mine.completeExceptionally(e);
                throw e;
            } finally {
                inFlight.remove(key, mine);
            }
        }
        if (attempt == Attempt.NOT_MINE) {
            return null;
        }
        return attempt == Attempt.FAILED ? Boolean.FALSE : verdict(attempt.response, vm, host);
    }

    private Boolean stock(VirtualMachine vm, Host host) {
        FenceBuilder s = stockFencer;
        return s == null ? null : s.fenceOff(vm, host);
    }

    /** One FenceHost call, and one more if the bridge had forgotten the pool. */
    private Attempt fence(String pool, Host host, VirtualMachine vm) {
        FenceHostRequest request = FenceHostRequest.newBuilder().setPool(pool).setHost(Hosts.bridgeId(host))
                .setRequestId("cloudstack-fence-" + UUID.randomUUID())
                .setReason("CloudStack HA: VM " + vm.getInstanceName() + " on " + Hosts.describe(host))
                .build();
        for (int attempt = 0; ; attempt++) {
            try {
                return new Attempt(bridge().client().fenceHost(request));
            } catch (XenHaBridgeException e) {
                if (e.code() == Status.Code.NOT_FOUND && "pool".equals(e.resourceType()) && attempt == 0 && reattach(pool)) {
                    continue; // the bridge restarted and forgot the pool: attached again, ask again
                }
                if (e.code() == Status.Code.NOT_FOUND && "pool".equals(e.resourceType()) && host.getClusterId() != null) {
                    // The bridge no longer has the pool and it cannot be attached
                    // from here: not fenced now; forgotten, so that the cluster is
                    // handed over anew at its hosts' next connect (or, if the
                    // bridge really does not have it, decided by the stock fencer
                    // next time).
                    LOG.error("xenha-bridge: the bridge no longer has pool {} of {}: not fenced now; CloudStack will ask again",
                            pool, Hosts.describe(host));
                    bridge().resyncCluster(host.getClusterId());
                    return Attempt.FAILED;
                }
                if (e.code() == Status.Code.NOT_FOUND) {
                    LOG.info("xenha-bridge: {} is not the bridge's to fence: {}", Hosts.describe(host), e.getMessage());
                    return Attempt.NOT_MINE;
                }
                if (!e.leaseHolder().isEmpty() || !e.leaseHolderAddress().isEmpty()) {
                    LOG.warn("xenha-bridge: fencing {} failed: bridge {} at {} holds the lease of pool {} ({}): {}{}",
                            Hosts.describe(host), e.leaseHolder(), e.leaseHolderAddress(), pool,
                            e.answeredByLeaseHolder() ? "the call was sent there and failed" : "the call was not sent there",
                            e.getMessage(), e.violations().isEmpty() ? "" : "; " + e.violations());
                    return Attempt.FAILED;
                }
                LOG.warn("xenha-bridge: fencing {} failed: {}{}", Hosts.describe(host), e.getMessage(),
                        e.violations().isEmpty() ? "" : "; " + e.violations());
                return Attempt.FAILED;
            }
        }
    }

    private boolean reattach(String pool) {
        try {
            return bridge().pools().reattach(pool);
        } catch (XenHaBridgeException e) {
            LOG.warn("xenha-bridge: attaching pool {} again failed: {}", pool, e.getMessage());
            return false;
        }
    }

    private Boolean verdict(FenceHostResponse r, VirtualMachine vm, Host host) {
        switch (r.getOutcome()) {
            case FENCE_OUTCOME_FENCED:
                if (r.getIncomplete()) {
                    // The host is dead but a VM reset did not finish: false makes
                    // CloudStack call again, and the bridge resets what is left.
                    LOG.warn("xenha-bridge: {} is fenced but not every VM was reset yet; retrying later. {}",
                            Hosts.describe(host), trace(r));
                    return false;
                }
                bridge().fences().recordFenced(r.getHostUuid());
                for (VMReset reset : r.getVmResetsList()) {
                    if (reset.getName().equals(vm.getInstanceName()) && !reset.getReset()) {
                        LOG.warn("xenha-bridge: {} is fenced but VM {}'s power state was not reset: {}; starting it elsewhere "
                                + "may fail until it is", Hosts.describe(host), vm.getInstanceName(), reset.getError());
                    }
                }
                LOG.info("xenha-bridge: {} fenced ({}), {} VM(s) reset, epoch {}", Hosts.describe(host), r.getMethod(),
                        r.getVmResetsList().stream().filter(VMReset::getReset).count(), r.getEpoch());
                return true;
            case FENCE_OUTCOME_DEFERRED_TO_XENHA:
                if (r.getXenhaProgress().getOutsideLiveset() && r.getXenhaProgress().getVmsHalted()) {
                    bridge().fences().recordFenced(r.getHostUuid());
                    LOG.info("xenha-bridge: XenHA has fenced {} and halted its VMs", Hosts.describe(host));
                    return true;
                }
                LOG.info("xenha-bridge: XenHA controls the pool of {} and has not finished with it (outside liveset: {}, "
                        + "VMs halted: {}); not fenced yet", Hosts.describe(host), r.getXenhaProgress().getOutsideLiveset(),
                        r.getXenhaProgress().getVmsHalted());
                return false;
            case FENCE_OUTCOME_REFUSED_HOST_ALIVE:
                LOG.warn("xenha-bridge: refused to fence {}: a witness shows it alive. {}", Hosts.describe(host), trace(r));
                return false;
            case FENCE_OUTCOME_REFUSED_INSUFFICIENT_EVIDENCE:
                // Nothing was tried: the witnesses do not prove the host dead.
                // Not fenced, as for FAILED; CloudStack asks again later.
                LOG.warn("xenha-bridge: refused to fence {}: not enough evidence that it is dead. {}", Hosts.describe(host), trace(r));
                return false;
            default:
                LOG.warn("xenha-bridge: fencing {} failed ({}). {}", Hosts.describe(host), r.getOutcome(), trace(r));
                return false;
        }
    }

    private static String trace(FenceHostResponse r) {
        return r.getTraceList().stream().map(XenHaBridgeFenceBuilder::step).collect(Collectors.joining("; "));
    }

    static String step(TraceStep s) {
        return s.getStep() + (s.getOk() ? "" : " (not ok)") + ": " + s.getDetail();
    }
}
