package io.github.cloudstackxenha.e2e;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

/** The simulator's control endpoint (README, "The simulator"): faults in, state out. */
final class SimControl {
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private final String base;

    SimControl(String base) {
        this.base = base;
    }

    /** POST /hosts/{index}/{action}, e.g. power-off, cut-bridge, restore-bridge. */
    void host(int index, String action) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + "/hosts/" + index + "/" + action))
                .POST(HttpRequest.BodyPublishers.noBody()).timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200 || !r.body().contains("\"ok\"")) {
            throw new IOException("POST /hosts/" + index + "/" + action + ": " + r.statusCode() + " " + r.body());
        }
    }

    JsonObject state() throws IOException, InterruptedException {
        return get("/state");
    }

    JsonObject info() throws IOException, InterruptedException {
        return get("/info");
    }

    private JsonObject get(String path) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + path)).GET().timeout(Duration.ofSeconds(10)).build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IOException("GET " + path + ": " + r.statusCode() + " " + r.body());
        }
        return JsonParser.parseString(r.body()).getAsJsonObject();
    }

    /** A host of /state by index. */
    JsonObject stateHost(int index) throws IOException, InterruptedException {
        JsonArray hosts = state().getAsJsonArray("hosts");
        for (JsonElement h : hosts) {
            if (h.getAsJsonObject().get("index").getAsInt() == index) {
                return h.getAsJsonObject();
            }
        }
        throw new IOException("no host " + index + " in /state");
    }

    /** How old host {@code index}'s last storage heartbeat is, in seconds of the simulator's clock. */
    long heartbeatAge(int index) throws IOException, InterruptedException {
        JsonObject s = state();
        long now = java.time.Instant.parse(s.get("now").getAsString()).getEpochSecond();
        for (JsonElement h : s.getAsJsonArray("hosts")) {
            if (h.getAsJsonObject().get("index").getAsInt() == index) {
                return now - h.getAsJsonObject().get("last_heartbeat").getAsLong();
            }
        }
        throw new IOException("no host " + index + " in /state");
    }
}
