package io.github.cloudstackxenha.cloudstackapi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.Executable;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Enumeration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;

import com.cloud.ha.FenceBuilder;

/**
 * The mirror and UPSTREAM.tsv describe the same types and members.
 *
 * <p>Every type compiled from src/main/java (found where {@link FenceBuilder}'s
 * class file is: target/classes or the module's jar) is turned into
 * {@code member} strings by reflection, and that set must equal the
 * {@code member} column of UPSTREAM.tsv. So a type, method, constructor or
 * field added to the mirror without a row, or a row the mirror no longer has,
 * fails here with the difference listed. Each row must also name an upstream
 * file and a 40-hex commit.
 *
 * <p>The strings (UPSTREAM.tsv's header explains them too), with type names as
 * {@link Type#getTypeName()} gives them ({@code Outer$Inner}, generics as
 * {@code java.util.List<com.cloud.host.HostVO>}, arrays as {@code T[]}):
 * <ul>
 * <li>type: {@code NAME[<TYPE-PARAMETERS>] KIND[ extends A][ implements B, C]}, KIND
 *     being {@code interface}, {@code enum}, {@code annotation} or {@code class}
 *     preceded by {@code abstract}, {@code static} (a nested class) and
 *     {@code final} where they apply, and {@code non-public} for a type that is not public;
 * <li>method: {@code TYPE#name(P1,P2) [MODIFIERS ]RETURN[ throws E1,E2]}, MODIFIERS among
 *     {@code protected static final abstract default} ({@code abstract} only in a class);
 * <li>constructor: {@code TYPE#<init>(P1,P2)[ protected][ throws E1,E2]};
 * <li>field: {@code TYPE#NAME [protected ][static ][final ]FIELD-TYPE[ = VALUE]}, the
 *     value for static final primitives and strings (javac copies those into the shim);
 * <li>an enum's constants, in declaration order: {@code TYPE#constants A,B,C}.
 * </ul>
 * Only public and protected members count (the shim, in other packages, sees no
 * others); synthetic and bridge methods, and an enum's implicit {@code values()}
 * and {@code valueOf(String)}, are left out.
 */
class UpstreamRecordTest {
    private static final List<String> HEADER = List.of("member", "upstream_file", "commit", "note");
    private static final Pattern COMMIT = Pattern.compile("[0-9a-f]{40}");

    @Test
    void everyTypeAndMemberOfTheMirrorIsRecordedAndNothingElse() throws Exception {
        Set<String> mirror = new TreeSet<>();
        for (Class<?> type : mirrorTypes()) {
            mirror.addAll(members(type));
        }
        Set<String> recorded = new TreeSet<>(rows().keySet());

        Set<String> unrecorded = new TreeSet<>(mirror);
        unrecorded.removeAll(recorded);
        Set<String> absent = new TreeSet<>(recorded);
        absent.removeAll(mirror);
        if (!unrecorded.isEmpty() || !absent.isEmpty()) {
            StringBuilder diff = new StringBuilder("the mirror and " + tsv() + " differ\n");
            if (!unrecorded.isEmpty()) {
                diff.append("in the mirror, not in UPSTREAM.tsv (check upstream, then add a row):\n");
                unrecorded.forEach(m -> diff.append("  + ").append(m).append('\n'));
            }
            if (!absent.isEmpty()) {
                diff.append("in UPSTREAM.tsv, not in the mirror (remove the row, or fix the mirror):\n");
                absent.forEach(m -> diff.append("  - ").append(m).append('\n'));
            }
            fail(diff.toString());
        }
    }

    @Test
    void everyRowNamesAnUpstreamFileAndACommit() throws Exception {
        List<String> bad = new ArrayList<>();
        for (Map.Entry<String, List<String>> row : rows().entrySet()) {
            String file = row.getValue().get(1);
            String commit = row.getValue().get(2);
            if (file.isEmpty() || file.startsWith("/") || !file.endsWith(".java")) {
                bad.add(row.getKey() + ": upstream_file is not a .java path in apache/cloudstack: '" + file + "'");
            }
            if (!COMMIT.matcher(commit).matches()) {
                bad.add(row.getKey() + ": commit is not 40 lower-case hex digits: '" + commit + "'");
            }
        }
        assertTrue(bad.isEmpty(), () -> String.join("\n", bad));
    }

    /** UPSTREAM.tsv's rows, by member; checks the header, the column count and that no member repeats. */
    private static Map<String, List<String>> rows() throws IOException {
        List<String> lines = Files.readAllLines(tsv(), StandardCharsets.UTF_8).stream()
                .filter(l -> !l.startsWith("#") && !l.isBlank())
                .collect(Collectors.toList());
        assertTrue(!lines.isEmpty(), tsv() + " has no header line");
        assertEquals(HEADER, Arrays.asList(lines.get(0).split("\t", -1)), tsv() + ": header line");
        Map<String, List<String>> rows = new TreeMap<>();
        for (String line : lines.subList(1, lines.size())) {
            List<String> cells = Arrays.asList(line.split("\t", -1));
            assertEquals(HEADER.size(), cells.size(), () -> "not " + HEADER.size() + " tab-separated cells: " + line);
            if (rows.put(cells.get(0), cells) != null) {
                fail("member recorded twice in " + tsv() + ": " + cells.get(0));
            }
        }
        return rows;
    }

    private static Path tsv() {
        return Paths.get(System.getProperty("upstream.tsv", "UPSTREAM.tsv"));
    }

    /** Every class compiled from src/main/java, from the directory or jar FenceBuilder was loaded from. */
    private static List<Class<?>> mirrorTypes() throws IOException, URISyntaxException, ClassNotFoundException {
        Path root = Paths.get(FenceBuilder.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        List<String> names = new ArrayList<>();
        if (Files.isDirectory(root)) {
            try (Stream<Path> files = Files.walk(root)) {
                files.filter(p -> p.toString().endsWith(".class"))
                        .forEach(p -> names.add(root.relativize(p).toString().replace(root.getFileSystem().getSeparator(), "/")));
            }
        } else {
            try (JarFile jar = new JarFile(root.toFile())) {
                for (Enumeration<JarEntry> e = jar.entries(); e.hasMoreElements();) {
                    String name = e.nextElement().getName();
                    if (name.endsWith(".class") && !name.startsWith("META-INF/")) {
                        names.add(name);
                    }
                }
            }
        }
        List<Class<?>> types = new ArrayList<>();
        for (String file : names) {
            String name = file.substring(0, file.length() - ".class".length()).replace('/', '.');
            if (name.endsWith("module-info") || name.endsWith("package-info")) {
                continue;
            }
            Class<?> type = Class.forName(name, false, UpstreamRecordTest.class.getClassLoader());
            if (!type.isSynthetic() && !type.isAnonymousClass() && !type.isLocalClass()) {
                types.add(type);
            }
        }
        assertTrue(types.contains(FenceBuilder.class), "FenceBuilder not found under " + root);
        return types;
    }

    static List<String> members(Class<?> type) throws IllegalAccessException {
        List<String> out = new ArrayList<>();
        out.add(describeType(type));
        if (type.isEnum()) {
            out.add(type.getName() + "#constants " + Arrays.stream(type.getEnumConstants())
                    .map(c -> ((Enum<?>) c).name()).collect(Collectors.joining(",")));
        }
        for (Field f : type.getDeclaredFields()) {
            if (visible(f.getModifiers()) && !f.isSynthetic() && !f.isEnumConstant()) {
                out.add(describeField(f));
            }
        }
        for (Constructor<?> c : type.getDeclaredConstructors()) {
            if (visible(c.getModifiers()) && !c.isSynthetic()) {
                out.add(type.getName() + "#<init>(" + params(c) + ")"
                        + (Modifier.isProtected(c.getModifiers()) ? " protected" : "") + exceptions(c));
            }
        }
        for (Method m : type.getDeclaredMethods()) {
            if (visible(m.getModifiers()) && !m.isSynthetic() && !m.isBridge() && !enumImplicit(type, m)) {
                out.add(describeMethod(m));
            }
        }
        return out;
    }

    private static String describeType(Class<?> type) {
        int mod = type.getModifiers();
        StringBuilder s = new StringBuilder(type.getName()).append(typeParameters(type.getTypeParameters())).append(' ');
        if (!Modifier.isPublic(mod)) {
            s.append("non-public ");
        }
        if (type.isAnnotation()) {
            s.append("annotation");
        } else if (type.isInterface()) {
            s.append("interface");
        } else if (type.isEnum()) {
            s.append("enum");
        } else {
            if (Modifier.isAbstract(mod)) {
                s.append("abstract ");
            }
            if (type.isMemberClass() && Modifier.isStatic(mod)) {
                s.append("static ");
            }
            if (Modifier.isFinal(mod)) {
                s.append("final ");
            }
            s.append("class");
        }
        Type superclass = type.getGenericSuperclass();
        List<String> supers = Arrays.stream(type.getGenericInterfaces()).map(Type::getTypeName).collect(Collectors.toList());
        if (type.isInterface()) {
            if (!supers.isEmpty()) {
                s.append(" extends ").append(String.join(", ", supers));
            }
        } else {
            if (superclass != null && superclass != Object.class && !type.isEnum()) {
                s.append(" extends ").append(superclass.getTypeName());
            }
            if (!supers.isEmpty()) {
                s.append(" implements ").append(String.join(", ", supers));
            }
        }
        return s.toString();
    }

    private static String describeField(Field f) throws IllegalAccessException {
        int mod = f.getModifiers();
        StringBuilder s = new StringBuilder(f.getDeclaringClass().getName()).append('#').append(f.getName()).append(' ');
        s.append(protectedStaticFinal(mod));
        s.append(f.getGenericType().getTypeName());
        if (Modifier.isStatic(mod) && Modifier.isFinal(mod) && (f.getType().isPrimitive() || f.getType() == String.class)) {
            s.append(" = ").append(f.get(null));
        }
        return s.toString();
    }

    /** "protected ", "static ", "final " as mod has them, in that order. */
    private static String protectedStaticFinal(int mod) {
        return (Modifier.isProtected(mod) ? "protected " : "") + (Modifier.isStatic(mod) ? "static " : "")
                + (Modifier.isFinal(mod) ? "final " : "");
    }

    private static String describeMethod(Method m) {
        int mod = m.getModifiers();
        StringBuilder s = new StringBuilder(m.getDeclaringClass().getName()).append('#').append(m.getName())
                .append('(').append(params(m)).append(") ");
        s.append(protectedStaticFinal(mod));
        if (Modifier.isAbstract(mod) && !m.getDeclaringClass().isInterface()) {
            s.append("abstract ");
        }
        if (m.isDefault()) {
            s.append("default ");
        }
        s.append(m.getGenericReturnType().getTypeName());
        return s.append(exceptions(m)).toString();
    }

    private static String typeParameters(TypeVariable<?>[] vars) {
        if (vars.length == 0) {
            return "";
        }
        return Arrays.stream(vars).map(v -> {
            List<String> bounds = Arrays.stream(v.getBounds()).filter(b -> b != Object.class)
                    .map(Type::getTypeName).collect(Collectors.toList());
            return bounds.isEmpty() ? v.getName() : v.getName() + " extends " + String.join(" & ", bounds);
        }).collect(Collectors.joining(", ", "<", ">"));
    }

    private static String params(Executable e) {
        return Arrays.stream(e.getGenericParameterTypes()).map(Type::getTypeName).collect(Collectors.joining(","));
    }

    private static String exceptions(Executable e) {
        Type[] thrown = e.getGenericExceptionTypes();
        return thrown.length == 0 ? ""
                : " throws " + Arrays.stream(thrown).map(Type::getTypeName).collect(Collectors.joining(","));
    }

    private static boolean visible(int modifiers) {
        return Modifier.isPublic(modifiers) || Modifier.isProtected(modifiers);
    }

    private static boolean enumImplicit(Class<?> type, Method m) {
        return type.isEnum() && Modifier.isStatic(m.getModifiers())
                && (m.getName().equals("values") && m.getParameterCount() == 0
                        || m.getName().equals("valueOf") && Arrays.equals(m.getParameterTypes(), new Class<?>[] {String.class}));
    }
}
