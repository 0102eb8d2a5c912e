package io.github.cloudstackxenha.client;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
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

    /** The largest token file read (as the bridge's secret files). */
    static final long MAX_FILE = 64 * 1024;

    /**
     * Reads the token file by the bridge's rules for secret files
     * (config/files.go): a regular file, not empty, at most 64 KiB, read only
     * by its owner and group and written only by its owner, holding a token
     * of printable ASCII without spaces (surrounding whitespace is trimmed).
     *
     * @param key the configuration key that named the file, for messages
     */
    public static BearerToken fromFile(String key, Path file) throws IOException {
        BasicFileAttributes a = Files.readAttributes(file, BasicFileAttributes.class);
        if (a.isDirectory()) {
            throw new IOException(key + ": " + file + " is a directory, not a file");
        }
        if (!a.isRegularFile()) {
            throw new IOException(key + ": " + file + " is not a regular file");
        }
        try {
            Set<PosixFilePermission> perms = Files.getPosixFilePermissions(file);
            List<String> loose = new ArrayList<>();
            if (perms.contains(PosixFilePermission.OTHERS_READ)) {
                loose.add("readable by other users");
            }
            if (perms.contains(PosixFilePermission.OTHERS_WRITE)) {
                loose.add("writable by other users");
            }
            if (perms.contains(PosixFilePermission.GROUP_WRITE)) {
                loose.add("writable by its group");
            }
            if (!loose.isEmpty()) {
                throw new IOException(key + ": " + file + " is " + String.join(" and ", loose) + " (mode "
                        + PosixFilePermissions.toString(perms) + "): a secret file may be read only by its owner and group, and "
                        + "written only by its owner (chmod 600 " + file + ")");
            }
        } catch (UnsupportedOperationException notPosix) {
            // No POSIX permissions on this file system: nothing to check.
        }
        if (a.size() == 0) {
            throw new IOException(key + ": " + file + " is empty");
        }
        if (a.size() > MAX_FILE) {
            throw new IOException(key + ": " + file + " is too large (" + a.size() + " bytes, at most " + MAX_FILE + ")");
        }
        String t = new String(Files.readAllBytes(file), StandardCharsets.UTF_8).trim();
        if (t.isEmpty()) {
            throw new IOException(key + ": " + file + " holds no token (only blanks)");
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
