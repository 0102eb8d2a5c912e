// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.utils.db;

import java.io.Serializable;

/** Mirror of CloudStack's {@code GenericDao} (framework/db): the call the shim makes. */
public interface GenericDao<T, ID extends Serializable> {
    T findById(ID id);
}
