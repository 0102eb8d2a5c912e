// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.host;

import com.cloud.hypervisor.Hypervisor.HypervisorType;

/**
 * Mirror of CloudStack's {@code Host} (api module). CloudStack declares
 * {@code getId()} on InternalIdentity, a super-interface of Host: a call
 * through Host resolves the same way.
 */
public interface Host {
    long getId();

    /** @return name of the machine. */
    String getName();

    /** @return the ip address of the host (its management address; XAPI's host.address). */
    String getPrivateIpAddress();

    /** @return the host's GUID: for a XenServer host, XenServer's host UUID. */
    String getGuid();

    /** @return type of hypervisor */
    HypervisorType getHypervisorType();

    Long getClusterId();
}
