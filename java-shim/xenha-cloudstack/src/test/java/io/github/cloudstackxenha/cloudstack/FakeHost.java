package io.github.cloudstackxenha.cloudstack;

import com.cloud.host.Host;
import com.cloud.hypervisor.Hypervisor.HypervisorType;

/** A CloudStack host as the adapters see it. */
final class FakeHost implements Host {
    private final long id;
    private final String name;
    private final String guid;
    private final String ip;
    private final Long clusterId;
    private final HypervisorType type;

    FakeHost(long id, String name, String guid, String ip, Long clusterId, HypervisorType type) {
        this.id = id;
        this.name = name;
        this.guid = guid;
        this.ip = ip;
        this.clusterId = clusterId;
        this.type = type;
    }

    static FakeHost xen(long id, String guid, String ip, long clusterId) {
        return new FakeHost(id, "xs-" + id, guid, ip, clusterId, HypervisorType.XenServer);
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
        return type;
    }

    @Override
    public Long getClusterId() {
        return clusterId;
    }
}
