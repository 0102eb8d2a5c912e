// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.agent;

/** Mirror of CloudStack's {@code AgentManager} (engine/components-api): the calls the shim makes. */
public interface AgentManager {
    /**
     * @param connections get host connect and disconnect events
     * @param commands get the commands hosts send
     * @param priority be called before the listeners registered without it
     * @return the listener's id
     */
    int registerForHostEvents(Listener listener, boolean connections, boolean commands, boolean priority);
}
