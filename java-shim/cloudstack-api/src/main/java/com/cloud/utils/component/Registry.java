// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.utils.component;

import java.util.List;

/** Mirror of CloudStack's {@code Registry} (utils module), which ExtensionRegistry implements. */
public interface Registry<T> extends Named {
    boolean register(T type);

    void unregister(T type);

    /** A live, read-only list: it changes as items are registered and unregistered. */
    List<T> getRegistered();
}
