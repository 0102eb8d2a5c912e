// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.vm;

/** Mirror of CloudStack's {@code VirtualMachine} (api module). */
public interface VirtualMachine {
    /**
     * @return The name of the vm instance used by the cloud stack to uniquely
     *         reference this VM (the VM's name_label on XenServer).
     */
    String getInstanceName();
}
