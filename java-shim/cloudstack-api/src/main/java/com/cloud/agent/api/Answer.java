// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.agent.api;

/** Mirror of CloudStack's {@code Answer} (api module): the type and its protected no-argument constructor. */
public class Answer extends Command {
    protected Answer() {
    }
}
