package io.github.cloudstackxenha.cloudstack;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.springframework.beans.BeansException;
import org.springframework.context.ApplicationContext;
import org.springframework.context.ApplicationContextAware;
import org.springframework.context.SmartLifecycle;

import com.cloud.ha.FenceBuilder;
import com.cloud.utils.component.Named;
import com.cloud.utils.component.Registry;

/**
 * Makes this module's fence builder the only XenServer fencer, per cluster,
 * without any global setting.
 *
 * <p>CloudStack's HA manager tries every registered fence builder until one
 * answers true (HighAvailabilityManagerImpl.restart), over the live list of
 * {@code haFenceBuildersRegistry} (ExtensionRegistry.getRegistered). So with
 * the stock XenServerFencer (bean name {@code XenServerFenceBuilder}, module
 * xenserver-compute) still registered, a host the bridge refuses to fence
 * (it is alive) would be fenced by the stock one: two captains. Excluding it
 * globally ({@code ha.fence.builders.exclude}) would take VM HA from every
 * XenServer cluster the bridge does not have.
 *
 * <p>Instead, once this module's context has registered its adapters
 * (RegistryLifecycle, phase 2000; this runs after, phase {@value #PHASE}),
 * the stock fencer is taken out of the registry and handed to
 * {@link XenHaBridgeFenceBuilder} as its delegate: hosts of clusters the
 * bridge controls are fenced by the bridge only, every other XenServer host
 * by the stock fencer exactly as before. The module's parent is
 * xenserver-compute, so the stock fencer is registered before this runs.
 *
 * <p>Nothing changes unless the context is active and this module's fencer
 * is registered: a module that failed leaves the stock fencer in place.
 */
public class StockFencerHandover implements SmartLifecycle, ApplicationContextAware {
    /** CloudStack's registry of fence builders (spring-core-registry-core-context.xml). */
    public static final String REGISTRY_BEAN = "haFenceBuildersRegistry";

    /** After RegistryLifecycle (2000), which registers the adapters at start. */
    public static final int PHASE = 3000;
    /** The stock XenServer fencer's name in the registry (its bean name in spring-xenserver-compute-context.xml). */
    public static final String STOCK_NAME = "XenServerFenceBuilder";

    private static final Logger LOG = LogManager.getLogger(StockFencerHandover.class);

    private XenHaBridgeContext bridge;
    private Registry<Object> registry;
    private XenHaBridgeFenceBuilder fencer;
    private FenceBuilder stock;
    private volatile boolean running;

    public void setBridge(XenHaBridgeContext bridge) {
        this.bridge = bridge;
    }

    @SuppressWarnings("unchecked")
    public void setRegistry(Registry<?> registry) {
        this.registry = (Registry<Object>) registry;
    }

    /** Finds {@value #REGISTRY_BEAN} in the module's parents unless set. */
    @Override
    public void setApplicationContext(ApplicationContext ctx) {
        if (registry == null) {
            try {
                setRegistry(ctx.getBean(REGISTRY_BEAN, Registry.class));
            } catch (BeansException e) {
                LOG.error("xenha-bridge: CloudStack's {} was not found ({}): the stock {} stays registered beside {}",
                        REGISTRY_BEAN, e.getMessage(), STOCK_NAME, "XenHaBridgeFenceBuilder");
            }
        }
    }

    public void setFencer(XenHaBridgeFenceBuilder fencer) {
        this.fencer = fencer;
    }

    @Override
    public synchronized void start() {
        running = true;
        if (!bridge.isActive()) {
            return; // the context said why at ERROR; the stock fencer stays
        }
        if (registry == null) {
            bridge.deactivate("CloudStack's " + REGISTRY_BEAN + " was not found, so the stock " + STOCK_NAME
                    + " cannot be handed over: this module stays inactive to keep one fencer per pool");
            return;
        }
        if (!registry.getRegistered().contains(fencer)) {
            bridge.deactivate(fencer.getName() + " is not registered (listed in ha.fence.builders.exclude?), so the bridge "
                    + "could not fence: this module stays inactive. Remove it from ha.fence.builders.exclude and restart");
            return;
        }
        for (Object o : registry.getRegistered()) {
            if (o instanceof FenceBuilder && o instanceof Named && STOCK_NAME.equals(((Named) o).getName())) {
                stock = (FenceBuilder) o;
            }
        }
        if (stock == null) {
            LOG.error("xenha-bridge: the stock {} is not registered (listed in ha.fence.builders.exclude?): XenServer clusters "
                    + "the bridge does not control have no fencer. Remove {} from ha.fence.builders.exclude and restart",
                    STOCK_NAME, STOCK_NAME);
            return;
        }
        fencer.setStockFencer(stock);
        registry.unregister(stock);
        LOG.info("xenha-bridge: {} fences the hosts of clusters the bridge controls; the stock {} every other XenServer host, "
                + "through it", fencer.getName(), STOCK_NAME);
    }

    /**
     * The stock fencer is not registered again: this module's fencer stays
     * registered (RegistryLifecycle never unregisters) and would otherwise
     * share the pools with it. This only happens when the management server
     * stops.
     */
    @Override
    public synchronized void stop() {
        running = false;
    }

    @Override
    public boolean isRunning() {
        return running;
    }

    @Override
    public int getPhase() {
        return PHASE;
    }

    @Override
    public boolean isAutoStartup() {
        return true;
    }
}
