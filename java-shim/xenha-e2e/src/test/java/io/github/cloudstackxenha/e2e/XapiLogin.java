package io.github.cloudstackxenha.e2e;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How CloudStack's XenServer resource finds its pool master, modelled on
 * XenServerConnectionPool.connect (plugins/hypervisors/xenserver,
 * com/cloud/hypervisor/xenserver/resource/XenServerConnectionPool.java,
 * apache/cloudstack @ 1981e5be04f0569e21e36e0f1ab8d419a499f3ad, lines
 * 223-268): log in to the host's own address with
 * session.login_with_password; a slave refuses with HOST_IS_SLAVE and its
 * master's address, and the login is made there instead (the catch of
 * Types.HostIsSlave); a master that does not answer fails the connect
 * (CloudRuntimeException "Unable to create master connection"). No
 * emergency transition, no election: that is what the shim brings.
 */
final class XapiLogin {
    private static final Pattern VALUE = Pattern.compile("<value>(?:<string>)?([^<]*)(?:</string>)?</value>");
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private final int port;
    private final String username;
    private final String password;

    XapiLogin(int port, String username, String password) {
        this.port = port;
        this.username = username;
        this.password = password;
    }

    /** The address of the master that accepted the login, starting at {@code hostAddress}. */
    String connect(String hostAddress) throws IOException, InterruptedException {
        List<String> answer = login(hostAddress);
        if (answer.size() >= 2 && answer.get(0).equals("HOST_IS_SLAVE")) {
            String master = answer.get(1);
            List<String> again = login(master);
            if (!again.isEmpty()) {
                throw new IOException("Unable to create master connection to host(" + master + "): " + again);
            }
            return master;
        }
        if (!answer.isEmpty()) {
            throw new IOException("login to " + hostAddress + " refused: " + answer);
        }
        return hostAddress;
    }

    /** Empty on success, else XAPI's ErrorDescription. */
    private List<String> login(String address) throws IOException, InterruptedException {
        String body = "<?xml version=\"1.0\"?><methodCall><methodName>session.login_with_password</methodName><params>"
                + "<param><value>" + username + "</value></param><param><value>" + password + "</value></param>"
                + "<param><value>1.0</value></param><param><value>xenha-e2e</value></param></params></methodCall>";
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://" + address + ":" + port + "/"))
                .header("Content-Type", "text/xml").timeout(Duration.ofSeconds(5))
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        String xml = r.body();
        if (xml.contains(">Success<")) {
            return List.of();
        }
        int at = xml.indexOf("ErrorDescription");
        List<String> out = new ArrayList<>();
        Matcher m = VALUE.matcher(at < 0 ? xml : xml.substring(at));
        while (m.find()) {
            if (!m.group(1).isEmpty()) {
                out.add(m.group(1));
            }
        }
        return out.isEmpty() ? List.of("unparsed answer: " + xml) : out;
    }
}
