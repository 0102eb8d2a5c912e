package io.github.cloudstackxenha.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import io.github.cloudstackxenha.client.XenHaBridgeClient;
import io.github.cloudstackxenha.client.XenHaBridgeConfig;
import io.github.cloudstackxenha.client.XenHaBridgeException;
import io.grpc.Status;
import io.grpc.testing.TlsTesting;

/**
 * The Java client against the real bridge configured with TLS, a client CA
 * (mTLS) and a bearer token (tls.*, auth.token_file). The certificates are
 * grpc-testing's: the server's names *.test.google.fr, so the client
 * overrides the authority (xenha.bridge.tls.authority).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class TlsTokenIT {
    private static final String TOKEN = "e2e-token-7f3a";

    private Path dir;
    private BridgeProcess bridge;

    private Path file(String name, String content) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, content.getBytes(StandardCharsets.UTF_8));
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rw-------"));
        return p;
    }

    private Path cert(String name) throws IOException {
        Path p = dir.resolve(name);
        try (InputStream in = TlsTesting.loadCert(name)) {
            Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
        }
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rw-------"));
        return p;
    }

    @BeforeAll
    void start() throws Exception {
        dir = Files.createTempDirectory("xenha-e2e-tls-");
        int port = BridgeProcess.freePort();
        Path cfg = file("bridge.yaml", String.join("\n",
                "listen: 127.0.0.1:" + port,
                "tls:",
                "  cert_file: " + cert("server1.pem"),
                "  key_file: " + cert("server1.key"),
                "  client_ca_file: " + cert("ca.pem"),
                "auth:",
                "  token_file: " + file("token", TOKEN + "\n"),
                ""));
        bridge = new BridgeProcess(dir, List.of("--config", cfg.toString()));
        bridge.start();
    }

    @AfterAll
    void stop() throws Exception {
        if (bridge != null) {
            bridge.close();
        }
        BridgeProcess.deleteTree(dir);
    }

    private XenHaBridgeConfig.Builder config() throws IOException {
        return XenHaBridgeConfig.builder().target(bridge.target()).caFile(cert("ca.pem")).authority("foo.test.google.fr")
                .retryMaxAttempts(1);
    }

    @Test
    void mutualTlsAndTheTokenGetThrough() throws Exception {
        try (XenHaBridgeClient c = XenHaBridgeClient.connect(config().certFile(cert("client.pem")).keyFile(cert("client.key"))
                .tokenFile(file("client-token", TOKEN)).build())) {
            assertEquals("sim", c.haMode("sim").getPool());
            assertTrue(c.listPools().stream().anyMatch(p -> p.getName().equals("sim")));
        }
    }

    @Test
    void aWrongTokenIsRefusedWithoutEchoingIt() throws Exception {
        try (XenHaBridgeClient c = XenHaBridgeClient.connect(config().certFile(cert("client.pem")).keyFile(cert("client.key"))
                .tokenFile(file("bad-token", "not-the-token")).build())) {
            XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> c.haMode("sim"));
            assertEquals(Status.Code.UNAUTHENTICATED, e.code());
            assertFalse(e.getMessage().contains("not-the-token") || e.getMessage().contains(TOKEN), e.getMessage());
        }
    }

    @Test
    void withoutAClientCertificateTheBridgeRefuses() throws Exception {
        try (XenHaBridgeClient c = XenHaBridgeClient.connect(config().tokenFile(file("client-token2", TOKEN)).build())) {
            XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> c.haMode("sim"));
            assertEquals(Status.Code.UNAUTHENTICATED, e.code(), e.getMessage());
        }
    }
}
