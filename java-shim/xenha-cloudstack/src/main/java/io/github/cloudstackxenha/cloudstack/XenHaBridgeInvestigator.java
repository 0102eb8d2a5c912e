package io.github.cloudstackxenha.cloudstack;

import java.time.Duration;
import java.time.Instant;
import java.util.Optional;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

import com.cloud.ha.Investigator;
import com.cloud.host.Host;
import com.cloud.host.Status;
import com.cloud.vm.VirtualMachine;

import cloudstack.xenha.v1.Xenha.HAModeResponse;
import io.github.cloudstackxenha.client.XenHaBridgeException;

/**
 * CloudStack's investigator for XenServer hosts, answering from the
 * bridge's view of the pool (HAMode: probes of every member, XAPI's
 * host_metrics.live, the master's reachability), never with a call to a
 * host of its own.
 *
 * <p>{@link #getHostAgentStatus}:
 * <ul>
 * <li>{@code Up}: the host's XAPI answered the bridge's last probe (as
 * master, slave, or slave in emergency mode, or even refusing the
 * credentials: something answered);</li>
 * <li>{@code Down}: the probe got no answer and either the master (or
 * XenHA's liveset) marks the host not live, or the bridge has fenced it;</li>
 * <li>{@code null} (cannot tell): anything else, including a probe that
 * got no answer alone (a host cut off from the bridge looks the same), a
 * view older than {@code xenha.investigator.max_view_age}, a pool not
 * observed yet, or a bridge that cannot be reached. CloudStack then asks
 * its next investigator.</li>
 * </ul>
 *
 * <p>{@link #isVmAlive}: the bridge knows hosts, not VMs. It answers
 * {@code false} only for a VM on a host the bridge fenced (proven off, VMs
 * reset), which lets CloudStack restart it without another fence;
 * otherwise it throws UnknownVM, so CloudStack goes on to the fence
 * builders and the bridge decides there.
 */
public class XenHaBridgeInvestigator extends XenHaAdapterBase implements Investigator {
    private static final Logger LOG = LogManager.getLogger(XenHaBridgeInvestigator.class);

    /**
     * The host check, as CloudStack main names it. Deliberately without
     * {@code @Override}: CloudStack up to 4.20 names it {@link #isAgentAlive},
     * and without the annotation this class compiles against either.
     */
    public Status getHostAgentStatus(Host host) {
        if (!Hosts.isXenServer(host) || !bridge().isActive()) {
            return null;
        }
        try {
            Optional<String> pool = bridge().pools().poolOf(host);
            if (!pool.isPresent()) {
                return null;
            }
            return statusFrom(bridge().client().haMode(pool.get()), host);
        } catch (XenHaBridgeException e) {
            LOG.warn("xenha-bridge: cannot investigate {}: {}", Hosts.describe(host), e.getMessage());
            return null;
        }
    }

    /** The same check under the name CloudStack up to 4.20 calls. */
    public Status isAgentAlive(Host host) {
        return getHostAgentStatus(host);
    }

    private Status statusFrom(HAModeResponse mode, Host host) {
        if (!mode.getObserved()) {
            LOG.info("xenha-bridge: pool {} not observed yet: cannot tell about {}", mode.getPool(), Hosts.describe(host));
            return null;
        }
        Duration age = Duration.between(Instant.ofEpochSecond(mode.getObservedAt().getSeconds(), mode.getObservedAt().getNanos()),
                Instant.now());
        if (age.compareTo(bridge().settings().maxViewAge()) > 0) {
            LOG.warn("xenha-bridge: the view of pool {} is {} s old: cannot tell about {}", mode.getPool(), age.getSeconds(),
                    Hosts.describe(host));
            return null;
        }
        Optional<cloudstack.xenha.v1.Xenha.Host> found = Hosts.find(mode, host);
        if (!found.isPresent()) {
            LOG.info("xenha-bridge: pool {} does not list {}", mode.getPool(), Hosts.describe(host));
            return null;
        }
        cloudstack.xenha.v1.Xenha.Host h = found.get();
        switch (h.getProbe()) {
            case "master":
            case "slave":
            case "emergency":
            case "auth-failed":
                bridge().fences().clear(h.getUuid());
                return Status.Up;
            case "unreachable":
                if (bridge().fences().isFenced(h.getUuid())) {
                    return Status.Down;
                }
                if (!h.getLive()) {
                    return Status.Down;
                }
                LOG.info("xenha-bridge: {} does not answer the bridge but the master still counts it live: cannot tell",
                        Hosts.describe(host));
                return null;
            default:
                return null;
        }
    }

    @Override
    public boolean isVmAlive(VirtualMachine vm, Host host) throws UnknownVM {
        if (Hosts.isXenServer(host) && bridge().isActive()) {
            Optional<String> uuid = Hosts.xenUuid(host);
            if (uuid.isPresent() && bridge().fences().isFenced(uuid.get()) && getHostAgentStatus(host) == Status.Down) {
                LOG.info("xenha-bridge: VM {} is not running: the bridge fenced {} and reset its VMs", vm.getInstanceName(),
                        Hosts.describe(host));
                return false;
            }
        }
        throw new UnknownVM();
    }
}
