package io.github.cloudstackxenha.cloudstack;

import java.util.List;
import java.util.UUID;
import java.util.stream.Collectors;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

import cloudstack.xenha.v1.Xenha.Controller;
import cloudstack.xenha.v1.Xenha.ElectMasterRequest;
import cloudstack.xenha.v1.Xenha.ElectMasterResponse;
import cloudstack.xenha.v1.Xenha.ElectedBy;
import cloudstack.xenha.v1.Xenha.HAModeResponse;
import cloudstack.xenha.v1.Xenha.Master;
import io.github.cloudstackxenha.client.XenHaBridgeException;
import io.grpc.Status;

/**
 * Where the Xen connection pool goes when it cannot reach the pool
 * master, or when a HOST_IS_SLAVE redirect points at a host that does not
 * answer: it asks the bridge instead of retrying blindly (CloudStack 4.4+
 * follows redirects only, so a dead master is never replaced without
 * XenHA).
 *
 * <p>{@link #locate}: HAMode first; if the bridge reaches a master other
 * than the unreachable one (XenHA or an admin already moved it), that is
 * the answer. Otherwise, unless nobody may act on the pool, ElectMaster
 * with HAMode's epoch: under XenHA the bridge waits for XenHA's choice,
 * under CloudStack it proves the old master harmless and elects. The
 * choice between the two is the bridge's; this class only asks. A stale
 * epoch (someone else changed the pool meanwhile) is re-read once.
 *
 * <p>One per {@link XenHaBridgeContext}: {@link XenHaBridgeContext#masterLocator()}.
 * CloudStack's XenServerConnectionPool, a static singleton outside Spring,
 * reaches it with {@code XenHaBridgeContext.current()}.
 */
public class XenServerMasterLocator {
    private static final Logger LOG = LogManager.getLogger(XenServerMasterLocator.class);

    private final XenHaBridgeContext bridge;

    XenServerMasterLocator(XenHaBridgeContext bridge) {
        this.bridge = bridge;
    }

    /**
     * The master to log in to.
     *
     * @param pool the bridge's pool name or XenServer pool UUID (CloudStack's cluster GUID)
     * @param unreachableAddress the master address CloudStack could not reach (or a redirect's target); may be null
     * @throws MasterUnavailableException when no master can be given now, with the reason
     */
    public MasterLocation locate(String pool, String unreachableAddress) throws MasterUnavailableException {
        for (int attempt = 0; ; attempt++) {
            HAModeResponse mode;
            try {
                mode = bridge.client().haMode(pool);
            } catch (XenHaBridgeException e) {
                throw new MasterUnavailableException(pool, "the bridge cannot be asked: " + e.getMessage(), e);
            }
            Master m = mode.getMaster();
            if (m.getReachable() && !m.getAddress().isEmpty() && !m.getAddress().equals(unreachableAddress)) {
                LOG.info("xenha-bridge: pool {}: the bridge reaches master {} at {}", pool, m.getName(), m.getAddress());
                return new MasterLocation(m.getUuid(), m.getName(), m.getAddress(), ElectedBy.ELECTED_BY_NONE, mode.getEpoch(),
                        List.of());
            }
            if (mode.getController() != Controller.CONTROLLER_XENHA && mode.getController() != Controller.CONTROLLER_CLOUDSTACK) {
                throw new MasterUnavailableException(pool, "nobody may elect a master (" + mode.getController() + ", policy "
                        + mode.getPolicy() + ")" + warnings(mode), null);
            }
            ElectMasterRequest request = ElectMasterRequest.newBuilder().setPool(pool)
                    .setRequestId("cloudstack-elect-" + UUID.randomUUID()).setExpectedEpoch(mode.getEpoch())
                    .setReason("CloudStack cannot reach the pool master" + (unreachableAddress == null ? "" : " at " + unreachableAddress))
                    .build();
            ElectMasterResponse r;
            try {
                r = bridge.client().electMaster(request);
            } catch (XenHaBridgeException e) {
                if (e.code() == Status.Code.ABORTED && attempt == 0) {
                    LOG.info("xenha-bridge: pool {} changed while electing ({}): reading it again", pool, e.getMessage());
                    continue;
                }
                throw new MasterUnavailableException(pool, e.getMessage()
                        + (e.violations().isEmpty() ? "" : "; " + e.violations()), e);
            }
            List<String> trace = r.getTraceList().stream().map(XenHaBridgeFenceBuilder::step).collect(Collectors.toList());
            MasterLocation at = new MasterLocation(r.getMaster().getUuid(), r.getMaster().getName(), r.getMaster().getAddress(),
                    r.getElectedBy(), r.getEpoch(), trace);
            LOG.info("xenha-bridge: pool {}: {}", pool, at);
            if (r.getMaster().getAddress().isEmpty()) {
                throw new MasterUnavailableException(pool, "the bridge named no master; trace: " + trace, null);
            }
            return at;
        }
    }

    private static String warnings(HAModeResponse mode) {
        return mode.getWarningsCount() == 0 ? "" : "; warnings: " + mode.getWarningsList().stream()
                .map(w -> w.getCode() + ": " + w.getMessage()).collect(Collectors.joining("; "));
    }
}
