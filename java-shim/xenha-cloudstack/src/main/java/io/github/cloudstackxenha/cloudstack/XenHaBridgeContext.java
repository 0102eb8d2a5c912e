package io.github.cloudstackxenha.cloudstack;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

import io.github.cloudstackxenha.client.XenHaBridgeClient;
import io.github.cloudstackxenha.client.XenHaBridgeConfig;

/**
 * What the adapters share on one management server: the client (one
 * channel to the bridge), the settings, the directory of pools, the ledger
 * of fenced hosts, the master locator and the pool attacher. A Spring bean:
 * {@code start()} as init-method, {@code close()} as destroy-method.
 *
 * <p>The started bean is also {@link #current()}: code outside the module
 * (CloudStack's XenServer plugin is in other Spring modules, its
 * XenServerConnectionPool a static singleton) reaches the locator and the
 * attacher through it. The drop-in itself needs no such caller.
 *
 * <p>The configuration is a properties file, by default
 * {@code /etc/cloudstack/management/xenha-bridge.properties} beside
 * CloudStack's own {@code db.properties}; the JVM property
 * {@code xenha.bridge.config} names another. A missing file means the
 * defaults: a bridge on 127.0.0.1:50051 without TLS or token, the sidecar
 * layout. A file with an unknown key or a bad value leaves the context
 * inactive with an ERROR naming the key (see {@link #start()}).
 */
public class XenHaBridgeContext implements AutoCloseable {
    /** Where the configuration is looked for unless told otherwise. */
    public static final String DEFAULT_CONFIG_FILE = "/etc/cloudstack/management/xenha-bridge.properties";
    /** The JVM property that overrides the configuration file. */
    public static final String CONFIG_FILE_PROPERTY = "xenha.bridge.config";

    private static final Logger LOG = LogManager.getLogger(XenHaBridgeContext.class);
    private static final AtomicReference<XenHaBridgeContext> CURRENT = new AtomicReference<>();

    private String configFile = DEFAULT_CONFIG_FILE;
    private String module = "xenha-bridge";
    private volatile String problem;
    private volatile boolean closed;
    private volatile java.util.function.LongConsumer clusterResync;
    private MasterRecovery recovery;
    private volatile XenHaBridgeClient client;
    private ShimSettings settings;
    private PoolDirectory pools;
    private final FenceLedger fences = new FenceLedger();
    private final XenServerMasterLocator masterLocator = new XenServerMasterLocator(this);
    private final XenServerPoolAttacher poolAttacher = new XenServerPoolAttacher(this);

    /**
     * The context started by CloudStack's Spring module, for code outside
     * it; empty before start-up and after shutdown.
     */
    public static Optional<XenHaBridgeContext> current() {
        return Optional.ofNullable(CURRENT.get());
    }

    /** For Spring: configured by {@link #setConfigFile} and {@link #start()}. */
    public XenHaBridgeContext() {
    }

    /** Over a client built elsewhere (tests, or code outside Spring). */
    public XenHaBridgeContext(XenHaBridgeClient client, ShimSettings settings) {
        this.client = client;
        this.settings = settings;
        this.pools = new PoolDirectory(client);
        this.recovery = new MasterRecovery(this);
    }

    public void setConfigFile(String configFile) {
        this.configFile = configFile;
    }

    /** The file in use: the JVM property's, else the bean property's. */
    public Path configPath() {
        String override = System.getProperty(CONFIG_FILE_PROPERTY);
        return Path.of(override != null && !override.trim().isEmpty() ? override.trim() : configFile);
    }

    /** The CloudStack module this context belongs to, for messages (set by the module's Spring XML). */
    public void setModule(String module) {
        this.module = module;
    }

    public String module() {
        return module;
    }

    /**
     * Reads the configuration and builds the client. No connection is made
     * yet, so a bridge that is down does not stop CloudStack from starting.
     *
     * <p>Never throws: CloudStack's module loader would log a failure at WARN
     * and go on without the module (DefaultModuleDefinitionSet.loadContexts),
     * which nobody reads. Instead a bad configuration, a second copy of the
     * module or classes that cannot load leave this context inactive and say
     * so at ERROR with what to do: every adapter then answers as if the
     * bridge were not installed, and the stock XenServer fencer keeps every
     * cluster (the handover never happens).
     */
    public synchronized void start() {
        if (client != null || problem != null) {
            return;
        }
        XenHaBridgeContext first = CURRENT.get();
        if (first != null && first != this) {
            anotherCopyActive(first);
            return;
        }
        Path path = configPath();
        try {
            Properties props = new Properties();
            if (Files.exists(path)) {
                try (InputStream in = Files.newInputStream(path)) {
                    props.load(in);
                }
            } else {
                LOG.info("xenha-bridge: {} does not exist: using the defaults (a bridge on 127.0.0.1:50051)", path);
            }
            Path base = path.toAbsolutePath().getParent();
            XenHaBridgeConfig config = XenHaBridgeConfig.fromProperties(props, base);
            ShimSettings s = ShimSettings.fromProperties(props, base);
            XenHaBridgeClient c = XenHaBridgeClient.connect(config);
            settings = s;
            client = c;
        } catch (IllegalArgumentException | IOException e) {
            fail(path + ": " + e.getMessage() + ". Fix the file and restart the management server");
            return;
        } catch (RuntimeException | LinkageError e) {
            fail("cannot start (" + e + "). Is the jar in lib/ the xenha-cloudstack-bundle jar, alone? Fix and restart");
            return;
        }
        if (!CURRENT.compareAndSet(null, this)) {
            client.close();
            client = null;
            anotherCopyActive(CURRENT.get());
            return;
        }
        pools = new PoolDirectory(client);
        recovery = new MasterRecovery(this);
        LOG.info("xenha-bridge: module {} started: {}; {}", module, client.config(), settings);
    }

    /**
     * Makes a started context inactive: something around it (the fencer
     * registry) does not allow the bridge to act safely.
     */
    public synchronized void deactivate(String why) {
        if (problem == null) {
            fail(why);
        }
    }

    private void fail(String why) {
        problem = why;
        LOG.error("xenha-bridge: {}. Until then every XenServer cluster keeps CloudStack's stock behaviour on this management "
                + "server, fencing included; with several management servers, keep the module active on all or on none, or this "
                + "one's stock fencer may act on pools another server's bridge controls", why);
    }

    /** Whether the context started: configured, the only copy, with a client. The adapters act only then. */
    public boolean isActive() {
        return client != null && problem == null && !closed;
    }

    /** Why the context is inactive, or null. */
    public String problem() {
        return problem;
    }

    /** Stops the event listeners and closes the channel. */
    @Override
    public synchronized void close() {
        closed = true;
        CURRENT.compareAndSet(this, null);
        if (recovery != null) {
            recovery.close();
        }
        if (client != null) {
            client.close();
        }
    }

    public XenHaBridgeClient client() {
        requireStarted();
        return client;
    }

    public ShimSettings settings() {
        requireStarted();
        return settings;
    }

    public PoolDirectory pools() {
        requireStarted();
        return pools;
    }

    public FenceLedger fences() {
        return fences;
    }

    /** Where the Xen connection pool asks for a master it can reach. */
    public XenServerMasterLocator masterLocator() {
        return masterLocator;
    }

    /** Set by {@link XenServerClusterSync}: hands a cluster over anew from CloudStack's records. */
    void setClusterResync(java.util.function.LongConsumer resync) {
        this.clusterResync = resync;
    }

    /**
     * The bridge lost cluster {@code clusterId}'s pool: forgotten here, and
     * handed over anew when clusters are synced here.
     */
    void resyncCluster(long clusterId) {
        poolAttacher().forgetCluster(clusterId);
        java.util.function.LongConsumer r = clusterResync;
        if (r != null) {
            r.accept(clusterId);
        }
    }

    private void anotherCopyActive(XenHaBridgeContext first) {
        fail("another copy of the module is active (" + first.module() + "): this copy (" + module
                + ") stays inactive. Keep exactly one xenha-cloudstack-bundle jar in the management server's lib/ and restart");
    }

    /** What asks for an election when an attached pool's master is lost. */
    public MasterRecovery masterRecovery() {
        requireStarted();
        return recovery;
    }

    /** What hands a cluster's pool to the bridge. */
    public XenServerPoolAttacher poolAttacher() {
        return poolAttacher;
    }

    private void requireStarted() {
        if (client == null || problem != null) {
            throw new IllegalStateException("xenha-bridge: the context is not active: "
                    + (problem != null ? problem : "not started (init-method start)"));
        }
    }
}
