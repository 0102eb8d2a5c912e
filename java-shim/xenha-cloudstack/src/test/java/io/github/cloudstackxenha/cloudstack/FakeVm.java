package io.github.cloudstackxenha.cloudstack;

import com.cloud.vm.VirtualMachine;

/** A CloudStack VM as the adapters see it. */
final class FakeVm implements VirtualMachine {
    private final String instanceName;

    FakeVm(String instanceName) {
        this.instanceName = instanceName;
    }

    @Override
    public String getInstanceName() {
        return instanceName;
    }
}
