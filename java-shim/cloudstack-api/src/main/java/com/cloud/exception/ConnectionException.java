// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.exception;

/**
 * Mirror of CloudStack's {@code ConnectionException} (api module; upstream it
 * extends CloudException): the type only. Upstream has no no-argument
 * constructor (both take a setupError flag and a message), so the one here is
 * private: the shim cannot call one CloudStack lacks.
 */
public class ConnectionException extends Exception {
    private static final long serialVersionUID = 1L;

    private ConnectionException() {
    }
}
