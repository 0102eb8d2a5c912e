package io.github.cloudstackxenha.cloudstack;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.LoggerConfig;
import org.apache.logging.log4j.core.config.Property;

/**
 * Collects what one class logs (warnings and worse, as the test
 * configuration lets through), beside the console: an appender on the root
 * logger that keeps the events of that class.
 */
final class LogCapture extends AbstractAppender implements AutoCloseable {
    private final String loggerName;
    private final List<String> lines = new CopyOnWriteArrayList<>();

    private LogCapture(String loggerName) {
        super("capture-" + loggerName + "-" + System.nanoTime(), null, null, true, Property.EMPTY_ARRAY);
        this.loggerName = loggerName;
    }

    static LogCapture of(Class<?> c) {
        LogCapture capture = new LogCapture(c.getName());
        capture.start();
        root().addAppender(capture, null, null);
        context().updateLoggers();
        return capture;
    }

    private static LoggerContext context() {
        return (LoggerContext) LogManager.getContext(false);
    }

    private static LoggerConfig root() {
        return context().getConfiguration().getRootLogger();
    }

    @Override
    public void append(LogEvent event) {
        if (loggerName.equals(event.getLoggerName())) {
            lines.add(event.getLevel() + " " + event.getMessage().getFormattedMessage());
        }
    }

    List<String> lines() {
        return lines;
    }

    String all() {
        return lines.stream().collect(Collectors.joining("\n"));
    }

    @Override
    public void close() {
        root().removeAppender(getName());
        context().updateLoggers();
        stop();
    }
}
