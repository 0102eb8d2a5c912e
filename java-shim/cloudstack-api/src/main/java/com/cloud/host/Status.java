// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.host;

/** Mirror of CloudStack's {@code Status} (api module): every constant, none of the state machine. */
public enum Status {
    Creating,
    Connecting,
    Up,
    Down,
    Disconnected,
    Alert,
    Removed,
    Error,
    Rebalancing,
    Unknown
}
