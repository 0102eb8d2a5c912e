// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.host.dao;

import java.util.List;

import com.cloud.host.HostVO;
import com.cloud.utils.db.GenericDao;

/** Mirror of CloudStack's {@code HostDao} (engine/schema): the call the shim makes. */
public interface HostDao extends GenericDao<HostVO, Long> {
    /** Every host of the cluster, whatever its state. */
    List<HostVO> findByClusterId(Long clusterId);
}
