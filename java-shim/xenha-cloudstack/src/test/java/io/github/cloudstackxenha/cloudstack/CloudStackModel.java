package io.github.cloudstackxenha.cloudstack;

import java.io.IOException;
import java.io.InputStream;
import java.net.URL;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;

import org.springframework.beans.BeansException;
import org.springframework.beans.factory.config.BeanPostProcessor;
import org.springframework.context.ApplicationContext;
import org.springframework.context.SmartLifecycle;
import org.springframework.context.support.GenericApplicationContext;
import org.springframework.context.support.GenericXmlApplicationContext;
import org.springframework.core.io.Resource;
import org.springframework.core.io.support.PathMatchingResourcePatternResolver;

import com.cloud.ha.FenceBuilder;
import com.cloud.ha.Investigator;
import com.cloud.host.Host;
import com.cloud.host.Status;
import com.cloud.utils.component.Named;
import com.cloud.utils.component.Registry;
import com.cloud.vm.VirtualMachine;

/**
 * A model of the parts of CloudStack's management server the shim lives in,
 * built from its sources (apache/cloudstack, files below); the tests drive
 * the adapters through it the way CloudStack does. It is a model: what it
 * gets wrong, the tests get wrong; each rule cites where it comes from.
 *
 * <ul>
 * <li>Module loading (framework/spring/module: DefaultModuleDefinition,
 * DefaultModuleDefinitionSet): every {@code META-INF/cloudstack/*}{@code /module.properties}
 * on the class path, {@code name} and {@code parent}; a name whose first
 * {@code module.properties} on the class path is another file fails the
 * whole start ("do not appear to be the same resource",
 * checkNameMatchesSelf); children load in name order under their parent;
 * a module whose context fails is logged ("Failed to start module") and
 * skipped (loadContexts).</li>
 * <li>Registries (ExtensionRegistry, RegistryLifecycle): a live read-only
 * list; {@code register} refuses excluded names, ordered names go to their
 * place, others to the end; each context under compute inherits a
 * RegistryLifecycle per type that registers that context's beans of the
 * type at start, phase 2000.</li>
 * <li>The HA manager (server: HighAvailabilityManagerImpl): investigators in
 * order until one answers non-null; fence builders in order until one
 * answers true (false and null both go on).</li>
 * <li>Stock XenServer beans (xenserver-compute's
 * spring-xenserver-compute-context.xml): {@code XenServerFenceBuilder}
 * (XenServerFencer) and {@code XenServerInvestigator}, here recording
 * stand-ins answering what the test tells them.</li>
 * </ul>
 */
public final class CloudStackModel implements AutoCloseable {
    /** ExtensionRegistry's rules (register, unregister, getRegistered). */
    public static final class ModelRegistry implements Registry<Object> {
        private final String name;
        private final List<String> order;
        private final Set<String> exclude;
        private final List<Object> registered = new CopyOnWriteArrayList<>();
        private final List<Object> readOnly = Collections.unmodifiableList(registered);

        ModelRegistry(String name, List<String> order, Set<String> exclude) {
            this.name = name;
            this.order = order;
            this.exclude = exclude;
        }

        @Override
        public boolean register(Object item) {
            String n = ((Named) item).getName();
            if (registered.contains(item) || exclude.contains(n)) {
                return false;
            }
            int at = order.indexOf(n);
            if (at < 0) {
                registered.add(item);
                return true;
            }
            int i = 0;
            while (i < registered.size()) {
                int other = order.indexOf(((Named) registered.get(i)).getName());
                if (other < 0 || other > at) {
                    break;
                }
                i++;
            }
            registered.add(i, item);
            return true;
        }

        @Override
        public void unregister(Object item) {
            registered.remove(item);
        }

        @Override
        public List<Object> getRegistered() {
            return readOnly;
        }

        @Override
        public String getName() {
            return name;
        }
    }

    /** RegistryLifecycle: collects its context's beans of a type, registers them at start (phase 2000). */
    public static final class ModelRegistryLifecycle implements BeanPostProcessor, SmartLifecycle {
        private final Registry<Object> registry;
        private final Class<?> type;
        private final List<Object> beans = new ArrayList<>();

        public ModelRegistryLifecycle(Registry<Object> registry, Class<?> type) {
            this.registry = registry;
            this.type = type;
        }

        @Override
        public Object postProcessAfterInitialization(Object bean, String beanName) {
            if (type.isInstance(bean)) {
                beans.add(bean);
            }
            return bean;
        }

        @Override
        public void start() {
            for (Object b : beans) {
                registry.register(b);
            }
        }

        @Override
        public void stop() {
        }

        @Override
        public boolean isRunning() {
            return false; // as upstream: never stopped
        }

        @Override
        public int getPhase() {
            return 2000;
        }
    }

    /** A stock adapter standing in for XenServerFencer / KVMFencer / XenServerInvestigator: records, answers as told. */
    public static final class StockAdapter extends XenHaAdapterBase implements FenceBuilder, Investigator {
        public final List<String> calls = new CopyOnWriteArrayList<>();
        public volatile Boolean fenceAnswer = Boolean.TRUE;
        public volatile Status statusAnswer;
        private final com.cloud.hypervisor.Hypervisor.HypervisorType serves;

        public StockAdapter(String name, com.cloud.hypervisor.Hypervisor.HypervisorType serves) {
            setName(name);
            this.serves = serves;
        }

        @Override
        public Boolean fenceOff(VirtualMachine vm, Host host) {
            if (host.getHypervisorType() != serves) {
                return null;
            }
            calls.add("fenceOff " + vm.getInstanceName() + " " + host.getName());
            return fenceAnswer;
        }

        @Override
        public boolean isVmAlive(VirtualMachine vm, Host host) throws UnknownVM {
            throw new UnknownVM();
        }

        @Override
        public Status getHostAgentStatus(Host host) {
            if (host.getHypervisorType() != serves) {
                return null;
            }
            calls.add("getHostAgentStatus " + host.getName());
            return statusAnswer;
        }
    }

    public final ModelRegistry fenceBuilders;
    public final ModelRegistry investigators;
    public final StockAdapter stockXenFencer = new StockAdapter("XenServerFenceBuilder",
            com.cloud.hypervisor.Hypervisor.HypervisorType.XenServer);
    public final StockAdapter stockKvmFencer = new StockAdapter("KVMFenceBuilder", com.cloud.hypervisor.Hypervisor.HypervisorType.KVM);
    public final StockAdapter stockXenInvestigator = new StockAdapter("XenServerInvestigator",
            com.cloud.hypervisor.Hypervisor.HypervisorType.XenServer);
    /** What the loader logged at WARN ("Failed to start module ..."). */
    public final List<String> warnings = new CopyOnWriteArrayList<>();
    private final List<GenericApplicationContext> contexts = new ArrayList<>();
    private final GenericApplicationContext core;

    /**
     * @param coreBeans CloudStack beans by name for the root context (DAOs, AgentManager)
     * @param fenceExclude {@code ha.fence.builders.exclude} (upstream default: RecreatableFencer)
     * @param investigatorOrder {@code ha.investigators.order}
     */
    public CloudStackModel(Map<String, Object> coreBeans, Set<String> fenceExclude, List<String> investigatorOrder) {
        fenceBuilders = new ModelRegistry("haFenceBuildersRegistry", List.of(), fenceExclude);
        investigators = new ModelRegistry("haInvestigatorsRegistry", investigatorOrder, Set.of());
        core = new GenericApplicationContext();
        core.getBeanFactory().registerSingleton("haFenceBuildersRegistry", fenceBuilders);
        core.getBeanFactory().registerSingleton("haInvestigatorsRegistry", investigators);
        coreBeans.forEach(core.getBeanFactory()::registerSingleton);
        core.refresh();
        contexts.add(core);
    }

    /** The default settings: exclude RecreatableFencer, upstream's investigator order. */
    public static CloudStackModel withDefaults(Map<String, Object> coreBeans) {
        return new CloudStackModel(coreBeans, Set.of("RecreatableFencer"), List.of("SimpleInvestigator", "XenServerInvestigator",
                "KVMInvestigator", "HypervInvestigator", "VMwareInvestigator", "PingInvestigator", "ManagementIPSysVMInvestigator",
                "Ovm3Investigator"));
    }

    /**
     * Loads compute, its stock modules (server-fencer with KVMFenceBuilder,
     * xenserver-compute) and every module on {@code loader}'s class path
     * whose parent is one of them, in name order, and starts them.
     *
     * @throws IllegalStateException as CloudStack's start fails (a module defined twice)
     */
    public CloudStackModel load(ClassLoader loader) throws IOException {
        GenericApplicationContext compute = child(core, "compute", null);
        start(compute);
        // The stock modules' beans are given, not created by the context, so
        // their registration (RegistryLifecycle at each context's start) is
        // done here, in module order.
        start(child(compute, "server-fencer", null));
        fenceBuilders.register(stockKvmFencer);
        GenericApplicationContext xen = child(compute, "xenserver-compute", null);
        xen.getBeanFactory().registerSingleton("XenServerFencer", stockXenFencer);
        xen.getBeanFactory().registerSingleton("XenServerInvestigator", stockXenInvestigator);
        start(xen);
        fenceBuilders.register(stockXenFencer);
        investigators.register(stockXenInvestigator);
        PathMatchingResourcePatternResolver resolver = new PathMatchingResourcePatternResolver(loader);
        TreeMap<String, Resource> plugins = new TreeMap<>();
        for (Resource r : resolver.getResources("classpath*:META-INF/cloudstack/*/module.properties")) {
            Properties p = new Properties();
            try (InputStream in = r.getInputStream()) {
                p.load(in);
            }
            String name = p.getProperty("name");
            URL first = loader.getResource("META-INF/cloudstack/" + name + "/module.properties");
            if (first == null || !first.toString().equals(r.getURL().toString())) {
                throw new IllegalStateException("Failed to initialize CloudStack Spring modules: Resource [" + r.getURL() + "] and ["
                        + first + "] do not appear to be the same resource, please ensure the name property is correct");
            }
            if ("xenserver-compute".equals(p.getProperty("parent"))) {
                plugins.put(name, r);
            }
        }
        for (Map.Entry<String, Resource> m : plugins.entrySet()) {
            String dir = m.getValue().getURL().toString().replaceFirst("module\\.properties$", "");
            GenericXmlApplicationContext ctx = new GenericXmlApplicationContext();
            ctx.setClassLoader(loader);
            ctx.setParent(xen);
            inherit(ctx);
            try {
                ctx.load(resolver.getResources(dir + "*context.xml"));
                ctx.refresh();
                contexts.add(ctx);
            } catch (BeansException e) {
                warnings.add(String.format("Failed to start module [%s] due to: [%s].", m.getKey(), e.getMessage()));
            }
        }
        return this;
    }

    private GenericApplicationContext child(ApplicationContext parent, String name, Object unused) {
        GenericApplicationContext ctx = new GenericApplicationContext();
        ctx.setDisplayName(name);
        ctx.setParent(parent);
        inherit(ctx);
        return ctx;
    }

    /** compute's spring-core-lifecycle-compute-context-inheritable.xml, copied into every context under it. */
    private void inherit(GenericApplicationContext ctx) {
        ctx.getBeanFactory().registerSingleton("fenceBuildersRegistryLifecycle", new ModelRegistryLifecycle(fenceBuilders, FenceBuilder.class));
        ctx.getBeanFactory().registerSingleton("investigatorsRegistryLifecycle", new ModelRegistryLifecycle(investigators, Investigator.class));
    }

    private void start(GenericApplicationContext ctx) {
        ctx.refresh();
        contexts.add(ctx);
    }

    /** HighAvailabilityManagerImpl.investigate: investigators in order until one answers. */
    public Status investigate(Host host) {
        for (Object o : investigators.getRegistered()) {
            Status s = ((Investigator) o).getHostAgentStatus(host);
            if (s != null) {
                return s;
            }
        }
        return null;
    }

    /** HighAvailabilityManagerImpl.restart's fence loop: fence builders in order until one answers true. */
    public boolean fence(VirtualMachine vm, Host host) {
        for (Object o : fenceBuilders.getRegistered()) {
            Boolean r = ((FenceBuilder) o).fenceOff(vm, host);
            if (r != null && r) {
                return true;
            }
        }
        return false;
    }

    /** The names in a registry, in order. */
    public static List<String> names(Registry<Object> r) {
        List<String> out = new ArrayList<>();
        for (Object o : r.getRegistered()) {
            out.add(((Named) o).getName());
        }
        return out;
    }

    /** The started module contexts after the stock ones (the plugins). */
    public <T> List<T> beans(Class<T> type) {
        List<T> out = new ArrayList<>();
        for (GenericApplicationContext c : contexts) {
            out.addAll(c.getBeansOfType(type, false, false).values().stream().filter(b -> !out.contains(b))
                    .collect(java.util.stream.Collectors.toList()));
        }
        return out;
    }

    @Override
    public void close() {
        for (int i = contexts.size() - 1; i >= 0; i--) {
            contexts.get(i).close();
        }
    }
}
