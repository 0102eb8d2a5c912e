package io.github.cloudstackxenha.cloudstack;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Proxy;
import java.util.HashMap;
import java.util.Map;

import com.cloud.host.Host;
import com.cloud.hypervisor.Hypervisor.HypervisorType;
import com.cloud.vm.VirtualMachine;

/**
 * CloudStack objects for tests, as dynamic proxies: they implement whatever
 * the interface declares, so the same test code compiles against the mirror
 * in cloudstack-api and against CloudStack's real interfaces (whose Host and
 * VirtualMachine declare dozens of methods the adapters never call). A call
 * to a method the fake was not given fails the test with its name.
 */
public final class Fakes {
    private Fakes() {
    }

    /** An object of {@code type} answering each method named in {@code answers} with its value. */
    public static <T> T of(Class<T> type, Map<String, Object> answers) {
        Map<String, Object> a = new HashMap<>(answers);
        String label = type.getSimpleName() + a;
        InvocationHandler h = (proxy, m, args) -> {
            switch (m.getName()) {
                case "toString":
                    return label;
                case "hashCode":
                    return System.identityHashCode(proxy);
                case "equals":
                    return proxy == args[0];
                default:
                    if (a.containsKey(m.getName()) && (args == null || args.length == 0)) {
                        return a.get(m.getName());
                    }
                    throw new UnsupportedOperationException("fake " + label + ": " + m + " is not faked");
            }
        };
        return type.cast(Proxy.newProxyInstance(type.getClassLoader(), new Class<?>[] {type}, h));
    }

    /** A host as CloudStack's HA manager hands it to the adapters. */
    public static Host host(long id, String name, String guid, String ip, Long clusterId, HypervisorType type) {
        Map<String, Object> a = new HashMap<>();
        a.put("getId", id);
        a.put("getName", name);
        a.put("getGuid", guid);
        a.put("getPrivateIpAddress", ip);
        a.put("getClusterId", clusterId);
        a.put("getHypervisorType", type);
        return of(Host.class, a);
    }

    /** A XenServer host named {@code xs-<id>}; its GUID is XenServer's host UUID. */
    public static Host xen(long id, String guid, String ip, long clusterId) {
        return host(id, "xs-" + id, guid, ip, clusterId, HypervisorType.XenServer);
    }

    /** A VM known by its instance name (its name_label on XenServer). */
    public static VirtualMachine vm(String instanceName) {
        return of(VirtualMachine.class, Map.of("getInstanceName", instanceName));
    }
}
