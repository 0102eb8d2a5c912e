package io.github.cloudstackxenha.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.TlsServerCredentials;
import io.grpc.testing.TlsTesting;

/**
 * TLS, mTLS and the bearer token over a real (Netty) connection on
 * loopback, with grpc-testing's certificates: the server's names
 * *.test.google.fr, so the client overrides the authority.
 */
class TlsTest {
    @TempDir
    Path dir;
    private Server server;
    private FakeBridge.Service service;

    /** Copies a grpc-testing certificate or key to a file. */
    static Path cert(Path dir, String name) throws IOException {
        Path p = dir.resolve(name);
        try (InputStream in = TlsTesting.loadCert(name)) {
            Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
        }
        return p;
    }

    @BeforeEach
    void startServer() throws IOException {
        service = new FakeBridge.Service();
        server = startTlsServer(service);
    }

    /** A bridge on a loopback port with mTLS that wants the token "right-token". */
    private Server startTlsServer(FakeBridge.Service service) throws IOException {
        ServerInterceptor requireToken = new ServerInterceptor() {
            @Override
            public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata h, ServerCallHandler<Q, R> next) {
                if (!"Bearer right-token".equals(h.get(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER)))) {
                    call.close(Status.UNAUTHENTICATED.withDescription("invalid bearer token"), new Metadata());
                    return new ServerCall.Listener<Q>() { };
                }
                return next.startCall(call, h);
            }
        };
        io.grpc.ServerCredentials creds = TlsServerCredentials.newBuilder()
                .keyManager(cert(dir, "server1.pem").toFile(), cert(dir, "server1.key").toFile())
                .trustManager(cert(dir, "ca.pem").toFile())
                .clientAuth(TlsServerCredentials.ClientAuth.REQUIRE)
                .build();
        return Grpc.newServerBuilderForPort(0, creds).addService(ServerInterceptors.intercept(service, requireToken)).build().start();
    }

    @AfterEach
    void stopServer() {
        server.shutdownNow();
    }

    private Path token(String value) throws IOException {
        Path t = dir.resolve("token-" + value);
        Files.write(t, (value + "\n").getBytes(StandardCharsets.UTF_8));
        Files.setPosixFilePermissions(t, PosixFilePermissions.fromString("rw-------"));
        return t;
    }

    private XenHaBridgeConfig.Builder config() throws IOException {
        return FakeBridge.testConfig().target("127.0.0.1:" + server.getPort()).caFile(cert(dir, "ca.pem"))
                .authority("foo.test.google.fr");
    }

    @Test
    void mutualTlsWithATokenWorks() throws IOException {
        try (XenHaBridgeClient c = XenHaBridgeClient.connect(config().certFile(cert(dir, "client.pem"))
                .keyFile(cert(dir, "client.key")).tokenFile(token("right-token")).build())) {
            assertEquals("sim", c.haMode("sim").getPool());
        }
    }

    @Test
    void aRefusalIsFollowedToTheLeaseHolderWithTheSameTlsAndToken() throws IOException {
        FakeBridge.Service holderService = new FakeBridge.Service();
        Server holder = startTlsServer(holderService);
        try {
            String holderAddress = "127.0.0.1:" + holder.getPort();
            service.failNext("FenceHost", FakeBridge.notLeaseHolder("bridge-b", holderAddress, "pool-uuid-sim"));
            try (XenHaBridgeClient c = XenHaBridgeClient.connect(config().certFile(cert(dir, "client.pem"))
                    .keyFile(cert(dir, "client.key")).tokenFile(token("right-token")).build())) {
                c.fenceHost(cloudstack.xenha.v1.Xenha.FenceHostRequest.newBuilder().setPool("sim").setHost("h")
                        .setRequestId("f-tls").build());
                // the holder, like the first bridge, only answers mTLS with the right token
                assertEquals("f-tls", holderService.fenceRequests.get(0).getRequestId());
                assertEquals(1, service.fenceRequests.size());
                assertEquals(1, holderService.fenceRequests.size());
            }
        } finally {
            holder.shutdownNow();
        }
    }

    @Test
    void aWrongTokenIsUnauthenticated() throws IOException {
        try (XenHaBridgeClient c = XenHaBridgeClient.connect(config().certFile(cert(dir, "client.pem"))
                .keyFile(cert(dir, "client.key")).tokenFile(token("wrong-token")).build())) {
            XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> c.haMode("sim"));
            assertEquals(Status.Code.UNAUTHENTICATED, e.code());
            assertTrue(!e.getMessage().contains("wrong-token"), e.getMessage());
        }
    }

    @Test
    void withoutAClientCertificateTheHandshakeFails() throws IOException {
        try (XenHaBridgeClient c = XenHaBridgeClient.connect(config().retryMaxAttempts(1).tokenFile(token("right-token")).build())) {
            XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> c.haMode("sim"));
            assertEquals(Status.Code.UNAVAILABLE, e.code());
        }
    }

    @Test
    void anUnreadableCertificateNamesItsKey() throws IOException {
        Path garbage = dir.resolve("garbage.pem");
        Files.write(garbage, "not a certificate".getBytes(StandardCharsets.UTF_8));
        IOException e = assertThrows(IOException.class, () -> XenHaBridgeClient.connect(config().caFile(garbage).build()));
        assertTrue(e.getMessage().startsWith("xenha.bridge.tls.ca_file: "), e.getMessage());
        IOException k = assertThrows(IOException.class, () -> XenHaBridgeClient.connect(config().certFile(cert(dir, "client.pem"))
                .keyFile(dir.resolve("missing.key")).build()));
        assertTrue(k.getMessage().startsWith("xenha.bridge.tls.cert_file/xenha.bridge.tls.key_file: "), k.getMessage());
    }

    @Test
    void anUntrustedServerIsRefused() throws IOException {
        Path otherCa = cert(dir, "badserver.pem"); // a self-signed certificate, not the CA that signed the server
        try (XenHaBridgeClient c = XenHaBridgeClient.connect(config().retryMaxAttempts(1).caFile(otherCa).certFile(cert(dir, "client.pem"))
                .keyFile(cert(dir, "client.key")).tokenFile(token("right-token")).build())) {
            XenHaBridgeException e = assertThrows(XenHaBridgeException.class, () -> c.haMode("sim"));
            assertEquals(Status.Code.UNAVAILABLE, e.code());
        }
    }
}
