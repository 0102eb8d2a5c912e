package io.github.cloudstackxenha.bundle;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.List;
import java.util.jar.JarFile;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;

import io.github.cloudstackxenha.client.FakeBridge;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;

/**
 * The jar an existing CloudStack puts on its classpath: self-contained,
 * relocated, and working when nothing else is there.
 */
class BundleIT {
    private static final String SHADED = "io/github/cloudstackxenha/shaded/";

    private static Path bundle() {
        return Path.of(System.getProperty("xenha.bundle.jar"));
    }

    @Test
    void everythingOutsideTheShimIsRelocated() throws IOException {
        try (JarFile jar = new JarFile(bundle().toFile())) {
            List<String> names = jar.stream().map(java.util.zip.ZipEntry::getName).collect(Collectors.toList());
            List<String> stray = names.stream().filter(n -> n.endsWith(".class"))
                    .filter(n -> !n.startsWith("io/github/cloudstackxenha/") && !n.startsWith("cloudstack/xenha/v1/"))
                    .collect(Collectors.toList());
            assertTrue(stray.isEmpty(), "classes outside the shim's packages: " + stray.subList(0, Math.min(10, stray.size())));
            assertTrue(names.contains(SHADED + "io/grpc/ManagedChannel.class"));
            assertTrue(names.contains(SHADED + "com/google/protobuf/Message.class"));
            assertTrue(names.contains("io/github/cloudstackxenha/cloudstack/XenHaBridgeFenceBuilder.class"));
            // the module under its versioned name, so two versions never stop CloudStack's start
            String module = "META-INF/cloudstack/xenha-bridge-" + System.getProperty("project.version", "") + "/";
            assertTrue(names.contains(module + "module.properties"), module + " in " + names.stream()
                    .filter(n -> n.startsWith("META-INF/cloudstack/")).collect(Collectors.toList()));
            assertTrue(names.contains(module + "spring-xenha-bridge-context.xml"));
            assertEquals(2, names.stream().filter(n -> n.startsWith("META-INF/cloudstack/") && !n.endsWith("/")).count(),
                    "one module only: " + names.stream().filter(n -> n.startsWith("META-INF/cloudstack/")).collect(Collectors.toList()));
            assertFalse(names.stream().anyMatch(n -> n.startsWith("com/cloud/")), "CloudStack's classes are CloudStack's");
            assertFalse(names.stream().anyMatch(n -> n.startsWith("org/apache/logging/")), "log4j is CloudStack's");
            assertTrue(names.stream().anyMatch(n -> n.equals("META-INF/services/" + SHADED.replace('/', '.') + "io.grpc.ManagedChannelProvider")),
                    "gRPC's service files follow the relocation");
        }
    }

    @Test
    void aCallGoesThroughFromAClassLoaderThatSeesOnlyTheBundleAndLog4j() throws Exception {
        Server server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create()).addService(new FakeBridge.Service())
                .build().start();
        // log4j-api is what the management server provides beside the bundle.
        URL log4jApi = org.apache.logging.log4j.LogManager.class.getProtectionDomain().getCodeSource().getLocation();
        try (URLClassLoader isolated = new URLClassLoader(new URL[] {bundle().toUri().toURL(), log4jApi}, ClassLoader.getPlatformClassLoader())) {
            Class<?> configClass = isolated.loadClass("io.github.cloudstackxenha.client.XenHaBridgeConfig");
            Object builder = configClass.getMethod("builder").invoke(null);
            builder.getClass().getMethod("target", String.class).invoke(builder, "127.0.0.1:" + server.getPort());
            Object config = builder.getClass().getMethod("build").invoke(builder);
            Class<?> clientClass = isolated.loadClass("io.github.cloudstackxenha.client.XenHaBridgeClient");
            Object client = clientClass.getMethod("connect", configClass).invoke(null, config);
            try {
                Object mode = clientClass.getMethod("haMode", String.class).invoke(client, "sim");
                assertEquals("sim", mode.getClass().getMethod("getPool").invoke(mode));
                Method ctrl = mode.getClass().getMethod("getController");
                assertEquals("CONTROLLER_CLOUDSTACK", ctrl.invoke(mode).toString());
                assertTrue(ctrl.getReturnType().getName().startsWith("cloudstack.xenha.v1."));
                assertTrue(mode.getClass().getSuperclass().getName().startsWith("io.github.cloudstackxenha.shaded.com.google.protobuf."),
                        mode.getClass().getSuperclass().getName());
            } catch (InvocationTargetException e) {
                throw new AssertionError("the call through the bundle failed", e.getCause());
            } finally {
                clientClass.getMethod("close").invoke(client);
            }
        } finally {
            server.shutdownNow();
        }
    }
}
