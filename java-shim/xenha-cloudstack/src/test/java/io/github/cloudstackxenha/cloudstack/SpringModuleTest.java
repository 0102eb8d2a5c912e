package io.github.cloudstackxenha.cloudstack;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Properties;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.beans.factory.BeanCreationException;
import org.springframework.context.support.GenericXmlApplicationContext;

import com.cloud.ha.FenceBuilder;
import com.cloud.ha.Investigator;

/**
 * The module as CloudStack loads it: module.properties under the compute
 * module, and the Spring XML beside it, with Spring 5.3 as in CloudStack.
 */
class SpringModuleTest {
    private static final String XML = "classpath:META-INF/cloudstack/xenha-bridge/spring-xenha-bridge-context.xml";

    @TempDir
    Path dir;

    @AfterEach
    void clearProperty() {
        System.clearProperty(XenHaBridgeContext.CONFIG_FILE_PROPERTY);
    }

    @Test
    void theModuleHangsUnderCompute() throws Exception {
        Properties p = new Properties();
        try (InputStream in = getClass().getResourceAsStream("/META-INF/cloudstack/xenha-bridge/module.properties")) {
            p.load(in);
        }
        assertEquals("xenha-bridge", p.getProperty("name"));
        assertEquals("compute", p.getProperty("parent"));
    }

    @Test
    void theContextWiresTheAdaptersUnderTheirRegistryNames() throws Exception {
        Path cfg = dir.resolve("xenha-bridge.properties");
        Files.write(cfg, "xenha.bridge.target=127.0.0.1:1\nxenha.pool.policy=auto\n".getBytes(StandardCharsets.UTF_8));
        System.setProperty(XenHaBridgeContext.CONFIG_FILE_PROPERTY, cfg.toString());
        XenHaBridgeContext bridge;
        try (GenericXmlApplicationContext ctx = new GenericXmlApplicationContext(XML)) {
            Map<String, Investigator> investigators = ctx.getBeansOfType(Investigator.class);
            Map<String, FenceBuilder> fencers = ctx.getBeansOfType(FenceBuilder.class);
            assertEquals("XenHaBridgeInvestigator", investigators.values().iterator().next().getName());
            assertEquals("XenHaBridgeFenceBuilder", fencers.values().iterator().next().getName());
            bridge = ctx.getBean(XenHaBridgeContext.class);
            assertEquals("127.0.0.1:1", bridge.client().config().target());
            assertSame(bridge, ((XenHaBridgeInvestigator) investigators.values().iterator().next()).bridge());
            assertSame(bridge, XenHaBridgeContext.current().orElseThrow(), "reachable from the XenServer plugin's code");
            assertSame(bridge.masterLocator(), XenHaBridgeContext.current().get().masterLocator());
        }
        assertTrue(bridge.client().isTerminated(), "the destroy-method closes the channel");
        assertTrue(XenHaBridgeContext.current().isEmpty(), "not current once closed");
    }

    @Test
    void aBadConfigurationStopsTheStartWithTheKey() throws Exception {
        Path cfg = dir.resolve("xenha-bridge.properties");
        Files.write(cfg, "xenha.bridge.target=10.0.0.5:50051\n".getBytes(StandardCharsets.UTF_8));
        System.setProperty(XenHaBridgeContext.CONFIG_FILE_PROPERTY, cfg.toString());
        BeanCreationException e = assertThrows(BeanCreationException.class, () -> new GenericXmlApplicationContext(XML).close());
        Throwable c = e;
        while (c != null && !(c instanceof IllegalStateException)) {
            c = c.getCause();
        }
        String msg = String.valueOf(c == null ? e : c.getMessage());
        assertTrue(msg.contains(cfg.toString()) && msg.contains("xenha.bridge.target") && msg.contains("needs TLS"), msg);
    }

    @Test
    void withoutAFileTheDefaultsApply() {
        System.setProperty(XenHaBridgeContext.CONFIG_FILE_PROPERTY, dir.resolve("absent.properties").toString());
        XenHaBridgeContext c = new XenHaBridgeContext();
        c.start();
        assertEquals("127.0.0.1:50051", c.client().config().target());
        c.close();
    }
}
