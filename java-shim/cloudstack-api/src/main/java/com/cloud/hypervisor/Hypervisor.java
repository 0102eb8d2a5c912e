// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.hypervisor;

import java.util.Objects;

/**
 * Mirror of CloudStack main's {@code Hypervisor}: there HypervisorType is a
 * class with constants (since 4.20.0, apache/cloudstack#8798; an enum up to
 * 4.19). Only two of its constants are here. The adapters compare with
 * {@code HypervisorType.XenServer.equals(...)}, which works with both.
 */
public class Hypervisor {
    public static class HypervisorType {
        public static final HypervisorType XenServer = new HypervisorType("XenServer");
        /** Not used by the adapters: their tests need a hypervisor that is not XenServer. */
        public static final HypervisorType KVM = new HypervisorType("KVM");

        private final String name;

        public HypervisorType(String name) {
            this.name = name;
        }

        public String name() {
            return name;
        }

        @Override
        public int hashCode() {
            return Objects.hash(name);
        }

        @Override
        public boolean equals(Object o) {
            if (o == this) {
                return true;
            } else if (o == null || getClass() != o.getClass()) {
                return false;
            }
            return Objects.equals(name, ((HypervisorType) o).name);
        }

        @Override
        public String toString() {
            return name;
        }
    }
}
