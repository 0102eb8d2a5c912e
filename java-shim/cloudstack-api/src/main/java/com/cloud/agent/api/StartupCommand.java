// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.agent.api;

/**
 * Mirror of CloudStack's {@code StartupCommand} (core module): the type only.
 * Upstream has no no-argument constructor (each of its constructors takes a
 * Host.Type), so the one here is private: the shim cannot call one CloudStack lacks.
 */
public class StartupCommand extends Command {
    private StartupCommand() {
    }
}
