// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.ha;

import com.cloud.host.Host;
import com.cloud.utils.component.Adapter;
import com.cloud.vm.VirtualMachine;

/** Mirror of CloudStack's {@code FenceBuilder} (api module). */
public interface FenceBuilder extends Adapter {
    /**
     * Fence off the vm.
     *
     * @param vm vm
     * @param host host where the vm was running on.
     * @return true if fenced, false if not fenced, null if not handled by this fencer.
     */
    Boolean fenceOff(VirtualMachine vm, Host host);
}
