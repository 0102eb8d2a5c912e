// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package org.apache.cloudstack.outofbandmanagement;

/**
 * Mirror of CloudStack's {@code OutOfBandManagement} (api module): a host's
 * out-of-band management (BMC) settings, the getters the shim reads.
 */
public interface OutOfBandManagement {
    boolean isEnabled();

    /** IPMITOOL, REDFISH or NESTEDCLOUDSTACK (the drivers' names). */
    String getDriver();

    String getAddress();

    String getPort();

    String getUsername();

    /** Decrypted: OutOfBandManagementVO marks the column {@code @Encrypt}. */
    String getPassword();
}
