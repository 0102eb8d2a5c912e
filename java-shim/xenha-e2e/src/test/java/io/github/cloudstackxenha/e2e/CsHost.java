package io.github.cloudstackxenha.e2e;

import com.cloud.host.Host;
import com.cloud.hypervisor.Hypervisor.HypervisorType;

/** A XenServer host as CloudStack's HA manager hands it to the adapters. */
final class CsHost implements Host {
    private final long id;
    private final String name;
    private final String guid;
    private final String ip;
    private final long clusterId;

    CsHost(long id, String name, String guid, String ip, long clusterId) {
        this.id = id;
        this.name = name;
        this.guid = guid;
        this.ip = ip;
        this.clusterId = clusterId;
    }

    @Override
    public long getId() {
        return id;
    }

    @Override
    public String getName() {
        return name;
    }

    @Override
    public String getPrivateIpAddress() {
        return ip;
    }

    @Override
    public String getGuid() {
        return guid;
    }

    @Override
    public HypervisorType getHypervisorType() {
        return HypervisorType.XenServer;
    }

    @Override
    public Long getClusterId() {
        return clusterId;
    }

    @Override
    public String toString() {
        return name + " (" + guid + ", " + ip + ")";
    }
}
