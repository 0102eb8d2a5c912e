package io.github.cloudstackxenha.e2e;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

/**
 * `xenha-bridge sim`: a simulated XenServer pool on loopback of its own, for a
 * bridge that has no pool until CloudStack attaches one. Every host's XAPI
 * on one port (each host has its own 127.77.x.y address), as XenServer's 443.
 */
final class SimProcess implements AutoCloseable {
    private final Process process;
    final JsonObject info;
    final int xapiPort;

    SimProcess(int standalone) throws IOException, InterruptedException {
        xapiPort = BridgeProcess.freePort();
        process = new ProcessBuilder(List.of(BridgeProcess.binary().toString(), "sim", "--json", "--standalone",
                String.valueOf(standalone), "--port", String.valueOf(xapiPort), "--control", "127.0.0.1:" + BridgeProcess.freePort()))
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        String line = out.readLine();
        if (line == null) {
            process.destroyForcibly();
            throw new IOException("xenha-bridge sim printed nothing (exit " + process.waitFor() + ")");
        }
        info = JsonParser.parseString(line).getAsJsonObject();
    }

    String controlUrl() {
        return info.get("control_url").getAsString();
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly();
        }
    }
}
