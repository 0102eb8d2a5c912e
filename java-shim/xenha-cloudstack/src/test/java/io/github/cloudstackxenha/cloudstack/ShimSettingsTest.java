package io.github.cloudstackxenha.cloudstack;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Properties;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import cloudstack.xenha.v1.Xenha.Policy;

class ShimSettingsTest {
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
    void defaults() {
        ShimSettings s = ShimSettings.defaults();
        assertEquals("https://10.0.0.11", s.memberUrl("10.0.0.11"));
        assertEquals(Policy.POLICY_AUTO, s.policy());
        assertNull(s.storageTimeout());
        assertEquals(Duration.ofSeconds(90), s.maxViewAge());
        assertFalse(s.xapiTls().getAllowPlainHttp());
        assertEquals(Duration.ofMinutes(5), s.resyncInterval());
    }

    @Test
    void readsEveryKey() throws Exception {
        Files.write(dir.resolve("xapi-ca.pem"), "-----BEGIN CERTIFICATE-----\n".getBytes(StandardCharsets.UTF_8));
        ShimSettings s = ShimSettings.fromProperties(props("xenha.xapi.scheme", "http", "xenha.xapi.port", "8080",
                "xenha.xapi.tls.allow_plain_http", "true", "xenha.xapi.tls.ca_file", "xapi-ca.pem",
                "xenha.xapi.tls.pin_sha256", "AB:CD", "xenha.pool.policy", "observe", "xenha.pool.storage_timeout", "3m",
                "xenha.investigator.max_view_age", "45s", "xenha.clusters.resync_interval", "90s",
                "xenha.bridge.target", "127.0.0.1:1"), dir);
        assertEquals("http://10.0.0.11:8080", s.memberUrl("10.0.0.11"));
        assertEquals("http://[fd00::1]:8080", s.memberUrl("fd00::1"));
        assertTrue(s.xapiTls().getCaPem().startsWith("-----BEGIN CERTIFICATE-----"));
        assertEquals("AB:CD", s.xapiTls().getPinSha256());
        assertEquals(Policy.POLICY_OBSERVE, s.policy());
        assertEquals(Duration.ofMinutes(3), s.storageTimeout());
        assertEquals(Duration.ofSeconds(45), s.maxViewAge());
        assertEquals(Duration.ofSeconds(90), s.resyncInterval());
        assertEquals(Duration.ZERO, ShimSettings.fromProperties(props("xenha.clusters.resync_interval", "0"), dir).resyncInterval());
        assertFalse(s.toString().contains("BEGIN"), "no certificate in toString");
    }

    @Test
    void plainHttpMembersMustBeAllowedExplicitly() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ShimSettings.fromProperties(props("xenha.xapi.scheme", "http"), dir));
        assertTrue(e.getMessage().contains("xenha.xapi.tls.allow_plain_http"), e.getMessage());
    }

    @Test
    void badValuesAndUnknownKeysNameTheKey() {
        assertKey("xenha.pool.policy", props("xenha.pool.policy", "sometimes"));
        assertKey("xenha.xapi.port", props("xenha.xapi.port", "99999"));
        assertKey("xenha.xapi.scheme", props("xenha.xapi.scheme", "ftp"));
        assertKey("xenha.pool.storage_timeout", props("xenha.pool.storage_timeout", "120"));
        assertKey("xenha.xapi.tls.ca_file", props("xenha.xapi.tls.ca_file", "missing.pem"));
        assertKey("xenha.pool.polcy", props("xenha.pool.polcy", "auto"));
        assertKey("xenha.clusters.resync_interval", props("xenha.clusters.resync_interval", "500ms"));
        assertKey("xenha.clusters.resync_interval", props("xenha.clusters.resync_interval", "25h"));
        assertKey("xenha.clusters.resync_interval", props("xenha.clusters.resync_interval", "often"));
    }

    private void assertKey(String key, Properties p) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ShimSettings.fromProperties(p, dir));
        assertTrue(e.getMessage().contains(key), e.getMessage());
    }
}
