// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.dc.dao;

import com.cloud.dc.ClusterVO;
import com.cloud.utils.db.GenericDao;

/** Mirror of CloudStack's {@code ClusterDao} (engine/schema): its type only; the shim calls {@code findById}. */
public interface ClusterDao extends GenericDao<ClusterVO, Long> {
}
