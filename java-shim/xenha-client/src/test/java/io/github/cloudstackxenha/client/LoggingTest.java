package io.github.cloudstackxenha.client;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.Configurator;
import org.apache.logging.log4j.core.config.Property;
import org.junit.jupiter.api.Test;

/**
 * The client logs through log4j 2, CloudStack's logging API, so its lines
 * reach management-server.log (it used java.util.logging before, which the
 * management server does not route there).
 */
class LoggingTest {
    @Test
    void theClientLogsThroughLog4j() throws Exception {
        List<String> seen = new CopyOnWriteArrayList<>();
        AbstractAppender capture = new AbstractAppender("client-capture", null, null, true, Property.EMPTY_ARRAY) {
            @Override
            public void append(LogEvent e) {
                seen.add(e.getLoggerName() + " " + e.getMessage().getFormattedMessage());
            }
        };
        capture.start();
        LoggerContext ctx = (LoggerContext) LogManager.getContext(false);
        ctx.getConfiguration().getRootLogger().addAppender(capture, null, null);
        Configurator.setLevel(XenHaBridgeClient.class.getName(), Level.INFO);
        ctx.updateLoggers();
        try (XenHaBridgeClient c = XenHaBridgeClient.connect(FakeBridge.testConfig().target("127.0.0.1:1").build())) {
            assertTrue(seen.stream().anyMatch(l -> l.startsWith(XenHaBridgeClient.class.getName() + " xenha-bridge client: ")),
                    "the client's start line went through log4j: " + seen);
        } finally {
            ctx.getConfiguration().getRootLogger().removeAppender("client-capture");
            Configurator.setLevel(XenHaBridgeClient.class.getName(), Level.WARN);
            ctx.updateLoggers();
        }
    }
}
