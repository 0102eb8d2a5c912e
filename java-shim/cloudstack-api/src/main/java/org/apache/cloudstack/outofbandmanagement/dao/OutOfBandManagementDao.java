// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package org.apache.cloudstack.outofbandmanagement.dao;

import org.apache.cloudstack.outofbandmanagement.OutOfBandManagement;

/**
 * Mirror of CloudStack's {@code OutOfBandManagementDao} (engine/schema): the
 * call the shim makes. Upstream it extends GenericDao and StateDao, left out.
 */
public interface OutOfBandManagementDao {
    /** The host's settings, or null when it has none. */
    OutOfBandManagement findByHost(long hostId);
}
