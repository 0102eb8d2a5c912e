package io.github.cloudstackxenha.client;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Set;
import java.util.concurrent.Executor;

import io.grpc.CallCredentials;
import io.grpc.Metadata;

/**
 * The bridge's bearer token ({@code auth.token_file} on the bridge), sent as
 * {@code authorization: Bearer <token>} on every call.
 *
 * <p>The token is read once from a file, as the bridge reads its own: a
 * secret never sits in a properties file or on a command line. It appears in
 * no message and no {@link #toString()}.
 */
public final class BearerToken extends CallCredentials {
    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    private final String token;

    private BearerToken(String token) {
        this.token = token;
    }

    /**
     * Reads the token file. Like the bridge, it refuses a file other users
     * may read, and a file with no token in it.
     *
     * @param key the configuration key that named the file, for messages
     */
    public static BearerToken fromFile(String key, Path file) throws IOException {
        try {
            Set<PosixFilePermission> perms = Files.getPosixFilePermissions(file);
            if (perms.contains(PosixFilePermission.OTHERS_READ)) {
                throw new IOException(key + ": " + file + " is readable by other users: chmod 600 or 640");
            }
        } catch (UnsupportedOperationException notPosix) {
            // No POSIX permissions on this file system: nothing to check.
        }
        String t = new String(Files.readAllBytes(file), StandardCharsets.UTF_8).trim();
        if (t.isEmpty()) {
            throw new IOException(key + ": " + file + " holds no token");
        }
        if (!t.chars().allMatch(c -> c > 0x20 && c < 0x7f)) {
            throw new IOException(key + ": " + file + " holds characters a header cannot carry (want printable ASCII)");
        }
        return new BearerToken(t);
    }

    /** For tests: a token given directly. */
    static BearerToken of(String token) {
        return new BearerToken(token);
    }

    @Override
    public void applyRequestMetadata(RequestInfo requestInfo, Executor appExecutor, MetadataApplier applier) {
        Metadata headers = new Metadata();
        headers.put(AUTHORIZATION, "Bearer " + token);
        applier.apply(headers);
    }

    @Override
    public String toString() {
        return "BearerToken[redacted]";
    }
}
