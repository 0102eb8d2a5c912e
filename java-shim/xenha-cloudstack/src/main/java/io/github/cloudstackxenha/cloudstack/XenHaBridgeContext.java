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
 * <p>The started bean is also {@link #current()}: the XenServer plugin's
 * XenServerConnectionPool (a static singleton) and XcpServerDiscoverer (in a
 * sibling Spring module, which cannot see this module's beans) reach the
 * locator and the attacher through it.
 *
 * <p>The configuration is a properties file, by default
 * {@code /etc/cloudstack/management/xenha-bridge.properties} beside
 * CloudStack's own {@code db.properties}; the JVM property
 * {@code xenha.bridge.config} names another. A missing file means the
 * defaults: a bridge on 127.0.0.1:50051 without TLS or token, the sidecar
 * layout. A file with an unknown key or a bad value stops the start-up
 * with a message naming the key.
 */
public class XenHaBridgeContext implements AutoCloseable {
    /** Where the configuration is looked for unless told otherwise. */
    public static final String DEFAULT_CONFIG_FILE = "/etc/cloudstack/management/xenha-bridge.properties";
    /** The JVM property that overrides the configuration file. */
    public static final String CONFIG_FILE_PROPERTY = "xenha.bridge.config";

    private static final Logger LOG = LogManager.getLogger(XenHaBridgeContext.class);
    private static final AtomicReference<XenHaBridgeContext> CURRENT = new AtomicReference<>();

    private String configFile = DEFAULT_CONFIG_FILE;
    private XenHaBridgeClient client;
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
    }

    public void setConfigFile(String configFile) {
        this.configFile = configFile;
    }

    /** The file in use: the JVM property's, else the bean property's. */
    public Path configPath() {
        String override = System.getProperty(CONFIG_FILE_PROPERTY);
        return Path.of(override != null && !override.trim().isEmpty() ? override.trim() : configFile);
    }

    /**
     * Reads the configuration and builds the client. No connection is made
     * yet, so a bridge that is down does not stop CloudStack from starting.
     *
     * @throws IllegalStateException with the offending key or file
     */
    public synchronized void start() {
        if (client != null) {
            return;
        }
        Path path = configPath();
        Properties props = new Properties();
        if (Files.exists(path)) {
            try (InputStream in = Files.newInputStream(path)) {
                props.load(in);
            } catch (IOException e) {
                throw new IllegalStateException("xenha-bridge: cannot read " + path + ": " + e.getMessage(), e);
            }
        } else {
            LOG.info("xenha-bridge: {} does not exist: using the defaults (a bridge on 127.0.0.1:50051)", path);
        }
        Path base = path.toAbsolutePath().getParent();
        try {
            XenHaBridgeConfig config = XenHaBridgeConfig.fromProperties(props, base);
            settings = ShimSettings.fromProperties(props, base);
            client = XenHaBridgeClient.connect(config);
        } catch (IllegalArgumentException | IOException e) {
            throw new IllegalStateException("xenha-bridge: " + path + ": " + e.getMessage(), e);
        }
        pools = new PoolDirectory(client);
        CURRENT.set(this);
        LOG.info("xenha-bridge: {}; {}", client.config(), settings);
    }

    /** Stops the event listeners and closes the channel. */
    @Override
    public synchronized void close() {
        CURRENT.compareAndSet(this, null);
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

    /** What hands a cluster's pool to the bridge. */
    public XenServerPoolAttacher poolAttacher() {
        return poolAttacher;
    }

    private void requireStarted() {
        if (client == null) {
            throw new IllegalStateException("xenha-bridge: the context was not started (init-method start)");
        }
    }
}
