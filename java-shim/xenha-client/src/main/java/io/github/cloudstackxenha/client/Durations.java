package io.github.cloudstackxenha.client;

import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Durations written the way the bridge's own configuration writes them
 * ({@code 500ms}, {@code 5s}, {@code 2m}, {@code 1m30s}, {@code 1h}), so an
 * operator uses one notation on both sides.
 */
public final class Durations {
    private static final Pattern PART = Pattern.compile("(\\d+)(ms|s|m|h)");

    private Durations() {
    }

    /**
     * Parses {@code text}; {@code key} names the setting in the error.
     *
     * @throws IllegalArgumentException when the text is not a positive duration with units
     */
    public static Duration parse(String key, String text) {
        String t = text == null ? "" : text.trim();
        Matcher m = PART.matcher(t);
        Duration total = Duration.ZERO;
        int end = 0;
        while (m.find()) {
            if (m.start() != end) {
                break;
            }
            long n = Long.parseLong(m.group(1));
            switch (m.group(2)) {
                case "ms":
                    total = total.plusMillis(n);
                    break;
                case "s":
                    total = total.plusSeconds(n);
                    break;
                case "m":
                    total = total.plusMinutes(n);
                    break;
                default:
                    total = total.plusHours(n);
                    break;
            }
            end = m.end();
        }
        if (t.isEmpty() || end != t.length() || total.isZero()) {
            throw new IllegalArgumentException(key + ": want a positive duration with a unit, e.g. 500ms, 5s, 2m, 1m30s (got \"" + t + "\")");
        }
        return total;
    }

    /** Formats a duration in the same notation, for messages. */
    public static String format(Duration d) {
        long ms = d.toMillis();
        if (ms % 1000 != 0) {
            return ms + "ms";
        }
        long s = ms / 1000;
        if (s % 60 != 0 || s == 0) {
            return s + "s";
        }
        return s % 3600 == 0 ? s / 3600 + "h" : s / 60 + "m";
    }
}
