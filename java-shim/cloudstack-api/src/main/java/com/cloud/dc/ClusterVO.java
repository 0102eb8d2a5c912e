// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.dc;

import com.cloud.org.Cluster;

/**
 * Mirror of CloudStack's {@code ClusterVO} (engine/schema), a concrete entity
 * upstream: abstract here, since the shim only reads it through {@link Cluster}.
 */
public abstract class ClusterVO implements Cluster {
}
