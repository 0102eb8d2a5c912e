package io.github.cloudstackxenha.e2e;

import com.cloud.vm.VirtualMachine;

/** A VM as CloudStack's HA manager hands it to the adapters. */
final class CsVm implements VirtualMachine {
    private final String instanceName;

    CsVm(String instanceName) {
        this.instanceName = instanceName;
    }

    @Override
    public String getInstanceName() {
        return instanceName;
    }
}
