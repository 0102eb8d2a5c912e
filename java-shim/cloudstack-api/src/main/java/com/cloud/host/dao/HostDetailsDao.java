// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.host.dao;

import java.util.Map;

/**
 * Mirror of CloudStack's {@code HostDetailsDao} (engine/schema): the call the
 * shim makes. Upstream it extends GenericDao&lt;DetailVO, Long&gt;, left out.
 */
public interface HostDetailsDao {
    /** The host's details, {@code password} decrypted (HostDetailsDaoImpl.findDetails). */
    Map<String, String> findDetails(long hostId);
}
