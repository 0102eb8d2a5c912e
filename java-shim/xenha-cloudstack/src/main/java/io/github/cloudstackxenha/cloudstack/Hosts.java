package io.github.cloudstackxenha.cloudstack;

import java.net.URI;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Pattern;

import com.cloud.host.Host;
import com.cloud.hypervisor.Hypervisor.HypervisorType;

import cloudstack.xenha.v1.Xenha.HAModeResponse;

/**
 * How a CloudStack host is named to the bridge. CloudStack stores a
 * XenServer host's UUID as the host's GUID (XcpServerDiscoverer sets
 * {@code guid = record.uuid}) and its management address as the private IP;
 * the bridge accepts either, the UUID is preferred because it survives a
 * readdressing.
 */
final class Hosts {
    private static final Pattern UUID = Pattern.compile("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");

    private Hosts() {
    }

    /**
     * Whether CloudStack manages the host as a XenServer host. Compared with
     * equals(): HypervisorType is a class in CloudStack main and was an enum
     * before, and equals() is right for both.
     */
    static boolean isXenServer(Host host) {
        return HypervisorType.XenServer.equals(host.getHypervisorType());
    }

    /** XenServer's host UUID from CloudStack's GUID, if it holds one. */
    static Optional<String> xenUuid(Host host) {
        String guid = host.getGuid();
        if (guid == null) {
            return Optional.empty();
        }
        java.util.regex.Matcher m = UUID.matcher(guid.trim());
        return m.find() ? Optional.of(m.group().toLowerCase(Locale.ROOT)) : Optional.empty();
    }

    /** What FenceHost's {@code host} field gets: the UUID, else the management address. */
    static String bridgeId(Host host) {
        return xenUuid(host).orElse(host.getPrivateIpAddress() == null ? "" : host.getPrivateIpAddress());
    }

    /** The bridge's record of this host in a pool's HAMode answer. */
    static Optional<cloudstack.xenha.v1.Xenha.Host> find(HAModeResponse mode, Host host) {
        Optional<String> uuid = xenUuid(host);
        String ip = host.getPrivateIpAddress();
        for (cloudstack.xenha.v1.Xenha.Host h : mode.getHostsList()) {
            if (uuid.isPresent() ? uuid.get().equalsIgnoreCase(h.getUuid()) : ip != null && ip.equals(h.getAddress())) {
                return Optional.of(h);
            }
        }
        return Optional.empty();
    }

    /** The host part of a member URL ({@code https://10.0.0.11:443} gives {@code 10.0.0.11}). */
    static String hostOfUrl(String url) {
        try {
            String h = URI.create(url).getHost();
            if (h == null) {
                return "";
            }
            return h.startsWith("[") && h.endsWith("]") ? h.substring(1, h.length() - 1) : h;
        } catch (IllegalArgumentException e) {
            return "";
        }
    }

    /** For log lines: CloudStack's id and name, and what the bridge is asked about. */
    static String describe(Host host) {
        return "host " + host.getId() + " (" + host.getName() + ", " + bridgeId(host) + ")";
    }
}
