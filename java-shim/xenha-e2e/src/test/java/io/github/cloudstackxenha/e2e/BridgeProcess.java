package io.github.cloudstackxenha.e2e;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The real xenha-bridge binary, `serve --simulate` on free ports, with the
 * embedded simulated pool "sim" (3 hosts and a standalone one). Restartable
 * with the same journal and ports, as an operator restarts the service.
 */
final class BridgeProcess implements AutoCloseable {
    private final Path binary;
    private final int grpcPort;
    private final int controlPort;
    private final Path journal;
    private final Path log;
    private final List<String> extraArgs;
    private final boolean simulate;
    private volatile Process process;
    private int starts;

    BridgeProcess(Path workDir, List<String> extraArgs) throws IOException {
        this(workDir, extraArgs, true);
    }

    /** {@code simulate} false: `serve` with no pool at all, as in production before CloudStack attaches any. */
    BridgeProcess(Path workDir, List<String> extraArgs, boolean simulate) throws IOException {
        this.simulate = simulate;
        this.binary = binary();
        this.grpcPort = freePort();
        this.controlPort = freePort();
        this.journal = workDir.resolve("journal.db");
        this.extraArgs = extraArgs;
        Path logs = Path.of(System.getProperty("xenha.e2e.logs", workDir.toString()));
        Files.createDirectories(logs);
        this.log = logs.resolve("bridge-" + grpcPort + ".log");
        // Never leave a bridge behind, even if the test JVM is stopped.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            Process p = process;
            if (p != null) {
                p.destroyForcibly();
            }
        }, "stop-bridge-" + grpcPort));
    }

    /** The binary under test: -Dxenha.bridge.binary, else bin/xenha-bridge of the repository. */
    static Path binary() {
        Path p = Path.of(System.getProperty("xenha.bridge.binary", "../../bin/xenha-bridge")).toAbsolutePath().normalize();
        if (!Files.isExecutable(p)) {
            throw new IllegalStateException("the end-to-end tests need the bridge binary at " + p
                    + ": run `make build` in the repository (or pass -Dxenha.bridge.binary=PATH; -DskipITs skips these tests)");
        }
        return p;
    }

    /**
     * A free loopback port, never one of the defaults (50051, 50052, 50080)
     * that `make run` and README's test use.
     */
    static int freePort() throws IOException {
        while (true) {
            try (ServerSocket s = new ServerSocket()) {
                s.setReuseAddress(false);
                s.bind(new InetSocketAddress("127.0.0.1", 0));
                int p = s.getLocalPort();
                if (p != 50051 && p != 50052 && p != 50080) {
                    return p;
                }
            }
        }
    }

    String target() {
        return "127.0.0.1:" + grpcPort;
    }

    int grpcPort() {
        return grpcPort;
    }

    String controlUrl() {
        return "http://127.0.0.1:" + controlPort;
    }

    void start() throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(binary.toString(), "serve", "--listen", target(), "--journal", journal.toString()));
        if (simulate) {
            cmd.addAll(List.of("--simulate", "--sim-control", "127.0.0.1:" + controlPort, "--sim-port", "0"));
        }
        cmd.addAll(extraArgs);
        Files.write(log, ("--- start " + (++starts) + ": " + String.join(" ", cmd) + "\n").getBytes(StandardCharsets.UTF_8),
                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
        process = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                .start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!(listening(grpcPort) && (!simulate || listening(controlPort)))) {
            if (!process.isAlive() || System.nanoTime() > deadline) {
                String tail = logTail();
                stop();
                throw new IllegalStateException("the bridge did not start (" + String.join(" ", cmd) + "):\n" + tail);
            }
            Thread.sleep(50);
        }
    }

    private static boolean listening(int port) {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", port), 200);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** SIGTERM, as systemd stops it; killed if it has not stopped after 15 s (or if the wait is interrupted). */
    void stop() {
        if (process == null) {
            return;
        }
        process.destroy();
        try {
            if (!process.waitFor(15, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        process = null;
    }

    /** Stops and starts again with the same journal and ports: a new incarnation. */
    void restart() throws IOException, InterruptedException {
        stop();
        start();
    }

    String logTail() {
        try {
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    /** Removes a test's work directory (the logs live elsewhere, under target/e2e-logs). */
    static void deleteTree(Path dir) throws IOException {
        if (dir == null || !Files.exists(dir)) {
            return;
        }
        try (java.util.stream.Stream<Path> files = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) files.sorted(java.util.Comparator.reverseOrder())::iterator) {
                Files.delete(p);
            }
        }
    }

    Path log() {
        return log;
    }

    @Override
    public void close() {
        stop();
    }
}
