// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.host;

/**
 * Mirror of CloudStack's {@code HostVO} (engine/schema), a concrete entity
 * upstream: abstract here, since the shim only reads it through {@link Host}.
 * Its no-argument constructor is protected, as upstream's is.
 */
public abstract class HostVO implements Host {
    protected HostVO() {
    }
}
