package io.github.cloudstackxenha.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Properties;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class XenHaBridgeConfigTest {
    @TempDir
    Path dir;

    private static Properties props(String... kv) {
        Properties p = new Properties();
        for (int i = 0; i < kv.length; i += 2) {
            p.setProperty(kv[i], kv[i + 1]);
        }
        return p;
    }

    @Test
    void defaultsSuitALocalBridge() {
        XenHaBridgeConfig c = XenHaBridgeConfig.fromProperties(new Properties(), dir);
        assertEquals("127.0.0.1:50051", c.target());
        assertFalse(c.tls());
        assertEquals(Duration.ofSeconds(5), c.readTimeout());
        assertEquals(Duration.ofMinutes(2), c.electTimeout());
        assertEquals(Duration.ofMinutes(5), c.fenceTimeout());
        assertEquals(4, c.retryMaxAttempts());
        assertNull(c.tokenFile());
        assertTrue(c.followLeaseHolder());
    }

    @Test
    void readsEveryKeyAndResolvesFilesAgainstTheBaseDirectory() {
        XenHaBridgeConfig c = XenHaBridgeConfig.fromProperties(props(
                "xenha.bridge.target", "bridge.example:50051",
                "xenha.bridge.tls.ca_file", "ca.pem",
                "xenha.bridge.tls.cert_file", "/etc/x/client.pem",
                "xenha.bridge.tls.key_file", "client.key",
                "xenha.bridge.tls.authority", "bridge.internal",
                "xenha.bridge.token_file", "token",
                "xenha.bridge.timeout.read", "1500ms",
                "xenha.bridge.timeout.registry", "45s",
                "xenha.bridge.timeout.elect", "3m",
                "xenha.bridge.timeout.fence", "1m30s",
                "xenha.bridge.retry.max_attempts", "3",
                "xenha.bridge.events.stream_max_age", "1h",
                "xenha.bridge.events.retry_initial", "100ms",
                "xenha.bridge.events.retry_max", "10s",
                "xenha.bridge.lease.follow_holder", "false",
                "xenha.investigator.something", "left to its owner"), dir);
        assertTrue(c.tls());
        assertEquals(dir.resolve("ca.pem"), c.caFile());
        assertEquals(Path.of("/etc/x/client.pem"), c.certFile());
        assertEquals(dir.resolve("client.key"), c.keyFile());
        assertEquals("bridge.internal", c.authority());
        assertEquals(dir.resolve("token"), c.tokenFile());
        assertEquals(Duration.ofMillis(1500), c.readTimeout());
        assertEquals(Duration.ofSeconds(45), c.registryTimeout());
        assertEquals(Duration.ofMinutes(3), c.electTimeout());
        assertEquals(Duration.ofSeconds(90), c.fenceTimeout());
        assertEquals(3, c.retryMaxAttempts());
        assertEquals(Duration.ofHours(1), c.streamMaxAge());
        assertEquals(Duration.ofMillis(100), c.eventsRetryInitial());
        assertEquals(Duration.ofSeconds(10), c.eventsRetryMax());
        assertFalse(c.followLeaseHolder());
        assertTrue(c.toString().contains("followLeaseHolder=false"), c.toString());
    }

    @Test
    void toBuilderKeepsEveryValue() {
        XenHaBridgeConfig c = XenHaBridgeConfig.fromProperties(props(
                "xenha.bridge.target", "bridge.example:50051",
                "xenha.bridge.tls.ca_file", "ca.pem",
                "xenha.bridge.tls.authority", "bridge.internal",
                "xenha.bridge.timeout.fence", "1m30s",
                "xenha.bridge.retry.max_attempts", "2",
                "xenha.bridge.lease.follow_holder", "false"), dir);
        XenHaBridgeConfig other = c.toBuilder().target("other.example:50051").build();
        assertEquals("other.example:50051", other.target());
        assertEquals(c.toString().replace("bridge.example:", "other.example:"), other.toString());
        assertEquals(c.caFile(), other.caFile());
        assertEquals(c.authority(), other.authority());
        assertEquals(c.fenceTimeout(), other.fenceTimeout());
        assertEquals(2, other.retryMaxAttempts());
        assertFalse(other.followLeaseHolder());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> XenHaBridgeConfig.builder().build().toBuilder().target("10.0.0.2:50051").build());
        assertTrue(e.getMessage().contains("needs TLS"), e.getMessage());
    }

    @Test
    void anUnknownKeyIsAnErrorNamingIt() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> XenHaBridgeConfig.fromProperties(props("xenha.bridge.timeout.reed", "5s"), dir));
        assertTrue(e.getMessage().contains("xenha.bridge.timeout.reed"), e.getMessage());
    }

    @Test
    void badValuesNameTheirKey() {
        assertMessage("xenha.bridge.timeout.elect", props("xenha.bridge.timeout.elect", "120"));
        assertMessage("xenha.bridge.timeout.fence", props("xenha.bridge.timeout.fence", "0s"));
        assertMessage("xenha.bridge.retry.max_attempts", props("xenha.bridge.retry.max_attempts", "many"));
        assertMessage("xenha.bridge.retry.max_attempts", props("xenha.bridge.retry.max_attempts", "9"));
        assertMessage("xenha.bridge.tls.enabled", props("xenha.bridge.tls.enabled", "yes"));
        assertMessage("xenha.bridge.tls.key_file", props("xenha.bridge.tls.cert_file", "c.pem", "xenha.bridge.tls.ca_file", "ca.pem"));
        assertMessage("xenha.bridge.target", props("xenha.bridge.target", ":50051"));
        assertMessage("xenha.bridge.lease.follow_holder", props("xenha.bridge.lease.follow_holder", "yes"));
    }

    @Test
    void plaintextIsOnlyForLoopback() {
        assertMessage("needs TLS", props("xenha.bridge.target", "10.1.2.3:50051"));
        assertMessage("needs TLS", props("xenha.bridge.target", "bridge.example:50051"));
        assertFalse(XenHaBridgeConfig.fromProperties(props("xenha.bridge.target", "localhost:50051"), dir).tls());
        assertFalse(XenHaBridgeConfig.fromProperties(props("xenha.bridge.target", "[::1]:50051"), dir).tls());
        assertFalse(XenHaBridgeConfig.fromProperties(props("xenha.bridge.target", "127.0.0.2:9"), dir).tls());
        assertTrue(XenHaBridgeConfig.fromProperties(props("xenha.bridge.target", "10.1.2.3:50051",
                "xenha.bridge.tls.enabled", "true"), dir).tls());
    }

    private void assertMessage(String want, Properties p) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> XenHaBridgeConfig.fromProperties(p, dir));
        assertTrue(e.getMessage().contains(want), e.getMessage());
    }

    @Test
    void durationsUseTheBridgesNotation() {
        assertEquals(Duration.ofMillis(250), Durations.parse("k", "250ms"));
        assertEquals(Duration.ofSeconds(90), Durations.parse("k", "1m30s"));
        assertEquals(Duration.ofHours(2), Durations.parse("k", "2h"));
        assertThrows(IllegalArgumentException.class, () -> Durations.parse("k", "5 s"));
        assertThrows(IllegalArgumentException.class, () -> Durations.parse("k", "s5"));
        assertEquals("90s", Durations.format(Duration.ofSeconds(90)));
        assertEquals("2m", Durations.format(Duration.ofMinutes(2)));
        assertEquals("250ms", Durations.format(Duration.ofMillis(250)));
    }

    @Test
    void theTokenIsReadFromAPrivateFileAndNeverShown() throws IOException {
        Path token = dir.resolve("token");
        Files.write(token, "  tok-en-secret\n".getBytes(StandardCharsets.UTF_8));
        Files.setPosixFilePermissions(token, PosixFilePermissions.fromString("rw-------"));
        BearerToken t = BearerToken.fromFile("xenha.bridge.token_file", token);
        assertFalse(t.toString().contains("tok-en-secret"));
        XenHaBridgeConfig c = XenHaBridgeConfig.fromProperties(props("xenha.bridge.token_file", "token"), dir);
        assertFalse(c.toString().contains("tok-en-secret"), c.toString());
        assertTrue(c.toString().contains("tokenFile=" + token), c.toString());
    }

    @Test
    void aTokenFileOthersCanReadIsRefused() throws IOException {
        Path token = dir.resolve("token");
        Files.write(token, "t".getBytes(StandardCharsets.UTF_8));
        Files.setPosixFilePermissions(token, PosixFilePermissions.fromString("rw-r--r--"));
        IOException e = assertThrows(IOException.class, () -> BearerToken.fromFile("xenha.bridge.token_file", token));
        assertTrue(e.getMessage().startsWith("xenha.bridge.token_file: "), e.getMessage());
        assertTrue(e.getMessage().contains("readable by other users"), e.getMessage());
    }

    @Test
    void anEmptyTokenFileIsRefused() throws IOException {
        Path token = dir.resolve("token");
        Files.write(token, "\n".getBytes(StandardCharsets.UTF_8));
        Files.setPosixFilePermissions(token, PosixFilePermissions.fromString("rw-------"));
        IOException e = assertThrows(IOException.class, () -> BearerToken.fromFile("xenha.bridge.token_file", token));
        assertTrue(e.getMessage().contains("holds no token"), e.getMessage());
    }

    /** The bridge's rules for secret files (config/files.go), which the token file did not all follow before. */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({
            "rw-----w-, writable by other users",
            "rw-rw----, writable by its group",
            "rw-r---w-, writable by other users",
    })
    void aTokenFileOthersCanWriteIsRefused(String mode, String why) throws IOException {
        Path token = dir.resolve("token");
        Files.write(token, "tok".getBytes(StandardCharsets.UTF_8));
        Files.setPosixFilePermissions(token, PosixFilePermissions.fromString(mode));
        IOException e = assertThrows(IOException.class, () -> BearerToken.fromFile("xenha.bridge.token_file", token));
        assertTrue(e.getMessage().contains(why) && e.getMessage().contains("chmod 600"), e.getMessage());
    }

    @Test
    void aTokenFileThatIsNotAPlainSmallFileIsRefused() throws IOException {
        Path d = Files.createDirectory(dir.resolve("tokdir"));
        assertTrue(assertThrows(IOException.class, () -> BearerToken.fromFile("k", d)).getMessage().contains("is a directory"));
        Path big = dir.resolve("big");
        Files.write(big, new byte[(int) BearerToken.MAX_FILE + 1]);
        Files.setPosixFilePermissions(big, PosixFilePermissions.fromString("rw-------"));
        assertTrue(assertThrows(IOException.class, () -> BearerToken.fromFile("k", big)).getMessage().contains("too large"));
        Path blank = dir.resolve("blank");
        Files.write(blank, "   \t \n".getBytes(StandardCharsets.UTF_8));
        Files.setPosixFilePermissions(blank, PosixFilePermissions.fromString("rw-------"));
        assertTrue(assertThrows(IOException.class, () -> BearerToken.fromFile("k", blank)).getMessage().contains("holds no token"));
        Path none = dir.resolve("none");
        Files.createFile(none);
        Files.setPosixFilePermissions(none, PosixFilePermissions.fromString("rw-------"));
        assertTrue(assertThrows(IOException.class, () -> BearerToken.fromFile("k", none)).getMessage().contains("is empty"));
    }
}
