// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.ha;

import com.cloud.host.Host;
import com.cloud.host.Status;
import com.cloud.utils.component.Adapter;
import com.cloud.vm.VirtualMachine;

/**
 * Mirror of CloudStack main's {@code Investigator} (api module). Main and
 * 4.22.1 name the host check {@code getHostAgentStatus} (apache/cloudstack#13088);
 * 4.22.0 and the 4.20 releases name it {@code isAgentAlive}, with the same
 * parameter and return types.
 */
public interface Investigator extends Adapter {
    /**
     * Returns if the vm is still alive.
     *
     * @param vm to work on.
     * @return true if vm is alive, otherwise false
     */
    boolean isVmAlive(VirtualMachine vm, Host host) throws UnknownVM;

    /**
     * Returns the agent status of the host.
     *
     * @return status of the host agent, null when this investigator cannot tell
     */
    Status getHostAgentStatus(Host host);

    class UnknownVM extends Exception {
        private static final long serialVersionUID = 1L;
    }
}
