// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.utils.component;

import java.util.Map;

import javax.naming.ConfigurationException;

/**
 * Mirror of CloudStack's {@code ComponentLifecycle} (utils module), complete:
 * the adapters implement it, so every method CloudStack may call is here.
 */
public interface ComponentLifecycle extends Named {
    int RUN_LEVEL_SYSTEM_BOOTSTRAP = 0;
    int RUN_LEVEL_SYSTEM = 1;
    int RUN_LEVEL_FRAMEWORK_BOOTSTRAP = 2;
    int RUN_LEVEL_FRAMEWORK = 3;
    int RUN_LEVEL_COMPONENT_BOOTSTRAP = 4;
    int RUN_LEVEL_COMPONENT = 5;
    int RUN_LEVEL_APPLICATION_MAINLOOP = 6;
    int MAX_RUN_LEVELS = 7;

    @Override
    String getName();

    void setName(String name);

    void setConfigParams(Map<String, Object> params);

    Map<String, Object> getConfigParams();

    int getRunLevel();

    void setRunLevel(int level);

    boolean configure(String name, Map<String, Object> params) throws ConfigurationException;

    boolean start();

    boolean stop();
}
