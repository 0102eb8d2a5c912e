package io.github.cloudstackxenha.cloudstack;

import java.util.HashMap;
import java.util.Map;

import javax.naming.ConfigurationException;

import com.cloud.utils.component.Adapter;
import com.cloud.utils.component.ComponentLifecycle;

/**
 * The lifecycle CloudStack expects of an adapter, kept here rather than
 * inherited from CloudStack's AdapterBase: AdapterBase marks its subclasses
 * for CloudStack's CGLIB method interception, which these adapters do not
 * need, and this keeps the provided API to the interfaces alone.
 *
 * <p>The name is what CloudStack's registries order and exclude by
 * ({@code ha.investigators.order}, {@code ha.*.exclude}); the Spring XML
 * sets it. The bridge context is injected as the {@code bridge}
 * property.
 */
abstract class XenHaAdapterBase implements Adapter {
    private String name = getClass().getSimpleName();
    private int runLevel = ComponentLifecycle.RUN_LEVEL_COMPONENT;
    private Map<String, Object> configParams = new HashMap<>();
    private XenHaBridgeContext bridge;

    public void setBridge(XenHaBridgeContext bridge) {
        this.bridge = bridge;
    }

    protected XenHaBridgeContext bridge() {
        if (bridge == null) {
            throw new IllegalStateException(name + ": no xenha-bridge context: set the bean's 'bridge' property");
        }
        return bridge;
    }

    @Override
    public String getName() {
        return name;
    }

    @Override
    public void setName(String name) {
        this.name = name;
    }

    @Override
    public void setConfigParams(Map<String, Object> params) {
        this.configParams = params;
    }

    @Override
    public Map<String, Object> getConfigParams() {
        return configParams;
    }

    @Override
    public int getRunLevel() {
        return runLevel;
    }

    @Override
    public void setRunLevel(int level) {
        this.runLevel = level;
    }

    @Override
    public boolean configure(String name, Map<String, Object> params) throws ConfigurationException {
        if (name != null) {
            this.name = name;
        }
        if (params != null) {
            this.configParams = params;
        }
        return true;
    }

    @Override
    public boolean start() {
        return true;
    }

    @Override
    public boolean stop() {
        return true;
    }
}
