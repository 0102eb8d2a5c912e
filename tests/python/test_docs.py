"""The commands of docs/, run as printed, in order (README's are in
test_readme.py).

A page marks each command block with `<!-- docs-test: NAME -->` on the line
before it (README: `readme-test`); test_every_command_block_is_marked fails
for a ```sh or ```console block without a mark, and for a mark no test here
runs. Commands meant for a production host (installing to /usr and /etc,
systemctl, the journal in /var/lib) run on a scratch host: a mount namespace
whose /etc, /usr, /var and /run are overlays on this machine's, so they run
as printed and leave the machine as it was; systemctl and journalctl there
are stand-ins (tests/python/standin/) since no systemd runs as PID 1.

Pages that show default addresses (127.0.0.1:50051) run serially with
README's test: pytest runs one test at a time here.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time

import pytest

from conftest import BINARY, ROOT
from test_readme import GRPCURL, port_open, run_block, served, try_it_commands  # noqa: F401 (served: a fixture)

DOCS = os.path.join(ROOT, "docs")
STANDIN = os.path.join(ROOT, "tests", "python", "standin")
MARK = re.compile(r"<!-- (docs|readme)-test: ([\w-]+) -->")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
COMMAND_LANGS = {"sh", "console"}

# Every mark in docs/, and the test that runs its block.
RUN = {
    ("architecture.md", "make-targets"): "test_architecture_make_targets",
    ("simulator.md", "sim"): "test_simulator",
    ("simulator.md", "sim-client"): "test_simulator",
    ("operator.md", "status"): "test_operator_status_after_the_election",
    ("install.md", "systemd"): "test_production_host",
    ("operator.md", "journal"): "test_production_host",
    ("operations.md", "backup"): "test_production_host",
    ("operations.md", "backup-timer"): "test_production_host",
    ("operator.md", "journalctl"): "test_production_host",
    ("operations.md", "restore"): "test_production_host",
    ("operations.md", "promtool"): "test_alerting_rules",
    ("several-management-servers.md", "not-holder"): "test_several_management_servers",
    ("install.md", "podman"): "test_podman",
}

# README's command blocks without a mark (README is being rewritten by
# someone else; these two are not run by a docs test): the exact text, and
# why. A block changed or added there must carry a readme-test mark.
README_UNMARKED = {
    "make run    # the gRPC service on 127.0.0.1:50051 with an embedded simulated 3-host pool \"sim\"\n"
    "make test   # every test: gofmt, go vet, buf checks, Go tests with -race against real peers\n"
    "            # (ipmi_sim, sushy-emulator, MariaDB, buildah, systemd-analyze, promtool, Prometheus),\n"
    "            # the official XenAPI Python SDK against the simulator, this README's commands,\n"
    "            # and the Java shim's unit and end-to-end tests (Maven)":
        "make test is this suite; make run is serve --simulate, which test_readme.py starts",
    "make run": "serve --simulate, which test_readme.py's fixture starts as make run does",
}


class Block:
    def __init__(self, page, line, lang, mark, text):
        self.page, self.line, self.lang, self.mark, self.text = page, line, lang, mark, text

    def commands(self):
        """The commands as a shell gets them: comment lines dropped, a line
        ending in a backslash joined with the next."""
        cmds, cur = [], ""
        for line in self.text.splitlines():
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            cur += line
            if line.endswith("\\"):
                cur += "\n"
                continue
            cmds.append(cur)
            cur = ""
        return cmds

    def transcript(self):
        """A console block: the command after `$ ` and the lines shown below it."""
        first, *shown = self.text.splitlines()
        assert first.startswith("$ "), f"{self.page}:{self.line}: a console block starts with `$ `"
        return first[2:], shown


def fences(path):
    """Every fenced block of a Markdown file, with the mark before it."""
    lines = open(path).read().splitlines()
    blocks, prev, i = [], "", 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            if lines[i].strip():
                prev = lines[i]
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        mark = MARK.fullmatch(prev.strip())
        body = "\n".join(l[len(m.group(1)):] for l in lines[i + 1:j])
        blocks.append(Block(os.path.relpath(path, ROOT), i + 1, m.group(2), mark and mark.group(2), body))
        prev, i = "", j + 1
    return blocks


def docs_block(page, name):
    (block,) = [b for b in fences(os.path.join(DOCS, page)) if b.mark == name]
    assert (page, name) in RUN
    return block


def test_every_command_block_is_marked():
    """Every ```sh or ```console block in README and docs/ carries a mark,
    every docs-test mark is run by a test here, and every entry of RUN
    names a mark that exists."""
    unmarked, seen = [], set()
    for path in [os.path.join(ROOT, "README.md")] + sorted(
            os.path.join(DOCS, f) for f in os.listdir(DOCS) if f.endswith(".md")):
        for b in fences(path):
            if b.mark:
                kind = "readme" if b.page == "README.md" else "docs"
                assert MARK.fullmatch(f"<!-- {kind}-test: {b.mark} -->"), f"{b.page}:{b.line}: mark it {kind}-test"
                if kind == "docs":
                    key = (os.path.basename(b.page), b.mark)
                    assert key not in seen, f"{b.page}:{b.line}: the mark {b.mark} is used twice"
                    seen.add(key)
                    assert key in RUN, f"{b.page}:{b.line}: no test runs the block marked {b.mark}: add it to RUN"
            elif b.lang in COMMAND_LANGS and not (b.page == "README.md" and b.text in README_UNMARKED):
                unmarked.append(f"{b.page}:{b.line}")
            elif not b.lang and any(l.startswith("$ ") for l in b.text.splitlines()):
                unmarked.append(f"{b.page}:{b.line} (a command shown in a plain block: make it ```console, marked)")
    assert not unmarked, "command blocks without a readme-test/docs-test mark (mark them and run them in a test): " + ", ".join(unmarked)
    assert set(RUN) <= seen, f"marks gone from the pages: {sorted(set(RUN) - seen)}"


def test_the_mark_check_sees_an_unmarked_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n<!-- docs-test: a -->\n```sh\ntrue\n```\n\n```sh\nfalse \\\n  x\n```\n")
    a, b = fences(str(page))
    assert (a.mark, a.lang, a.commands()) == ("a", "sh", ["true"])
    assert (b.mark, b.commands()) == (None, ["false \\\n  x"])


def need(tool, package, skip_var=None):
    """A peer a test cannot do without (`make peers` installs it), as the
    Go tests find theirs: missing fails, unless skip_var=1 skips."""
    if skip_var and os.environ.get(skip_var) == "1":
        pytest.skip(f"{skip_var}=1")
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if not path:
        pytest.fail(f"{tool} is not installed: apt-get install {package} (make peers does)"
                    + (f", or set {skip_var}=1 to skip this test" if skip_var else ""))
    return path


def grpcurl_env(**extra):
    return dict(os.environ, PATH=os.path.dirname(GRPCURL) + os.pathsep + os.environ["PATH"], **extra)


class Background:
    """A long-running command of a page (a server, until Ctrl-C), started as
    printed, in its own process group; tried again while a fixed port is
    briefly held by the client end of another connection."""

    def __init__(self, cmd, ready, env=None, cwd=ROOT):
        for _ in range(10):
            self.proc = subprocess.Popen(cmd, shell=True, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
            deadline = time.time() + 30
            while not ready() and self.proc.poll() is None and time.time() < deadline:
                time.sleep(0.1)
            if self.proc.poll() is None and ready():
                return
            self.stop()
            out = self.proc.stdout.read()
            if "address already in use" not in out:
                pytest.fail(f"{cmd} did not start: {out}")
            time.sleep(1)
        pytest.fail(f"{cmd}: its address stayed in use")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


def start_sim(*flags):
    """A simulated pool of `xenha-bridge sim`; returns (process, its JSON)."""
    proc = subprocess.Popen([BINARY, "sim", "--json", *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail("sim printed nothing: " + proc.stderr.read())
    return proc, json.loads(line)


# ---------------------------------------------------------------- simulator


def test_simulator():
    (serve,) = docs_block("simulator.md", "sim").commands()
    sim = Background(serve, lambda: port_open(50181))
    try:
        run_block(docs_block("simulator.md", "sim-client").commands(), {
            "/jsonrpc": (True, '{"error":{"code":1,"data":["127.77.0.1"],"message":"HOST_IS_SLAVE"},"id":1,"jsonrpc":"2.0"}'),
            "/state": (True, '"name":"host-1"'),
        }, os.environ)
    finally:
        sim.stop()


# ---------------------------------------------------------------- architecture


def test_architecture_make_targets():
    """make test, make chaos and make fuzz run for many minutes (make test
    is this suite's caller): dry runs show the targets exist and run what the
    page says. The replay of one seed runs for real (about 10 s; MariaDB)."""
    cmds = docs_block("architecture.md", "make-targets").commands()
    want = {
        "make test ": ["go test -race -count=1 ./...", "pytest", "mvn -B -ntp -f java-shim/pom.xml verify"],
        "make chaos  ": ["-chaos.n=3000", "-chaos.parallel=20", "-chaos.first=$first"],
        "make fuzz": ["-fuzz='^FuzzDecodeResponse$$'".replace("$$", "$"), "FuzzParse", "FuzzRequests", "-fuzztime=30s"],
    }
    replay = [c for c in cmds if "SEED=" in c]
    assert len(cmds) == 4 and len(replay) == 1
    for cmd in cmds:
        if cmd in replay:
            continue
        (key,) = [k for k in want if cmd.startswith(k) or cmd == k.strip()]
        dry = subprocess.run(cmd.replace("make ", "make -n ", 1), shell=True, cwd=ROOT, capture_output=True, text=True,
                             env=dict(os.environ, MAKEFLAGS="", MAKELEVEL=""))
        assert dry.returncode == 0, f"{cmd}: {dry.stdout}{dry.stderr}"
        for w in want[key]:
            assert w in dry.stdout, f"{cmd}: {w!r} not in its dry run:\n{dry.stdout}"
    need("mariadbd", "mariadb-server-core", "XENHA_SKIP_MARIADB")  # the schedules keep their journal there
    run_block(replay, {"SEED=": (True, "--- PASS: TestChaos")}, dict(os.environ, MAKEFLAGS="", MAKELEVEL=""))


# ---------------------------------------------------------------- operator: status


TIME = re.compile(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d")
HOST_ROW = re.compile(r"^(\s+host-\d+\s+\S+\s+\S+)\s")


def transcript_matches(shown, got):
    """Every line shown is in the output, in order; times and ages match
    any; a host row's PROBE and the rest follow the probes' timing, so only
    its NAME, ADDRESS and LIVE are compared; `...` stands for any lines."""
    lines = got.splitlines()
    at = 0
    for line in shown:
        if line.strip() == "...":
            continue
        host = HOST_ROW.match(line)
        if host:
            pat = re.escape(host.group(1)) + r"\s.*"
        else:
            pat = re.escape(line)
            pat = TIME.sub(lambda _: r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d", pat.replace(r"\ ", " "))
            pat = re.sub(r"\d+s ago", r"\\d+s ago", pat)
        while at < len(lines) and not re.fullmatch(pat, lines[at]):
            at += 1
        assert at < len(lines), f"not in the output (in order): {line!r}\n{got}"
        at += 1


def test_operator_status_after_the_election(served):
    """operator.md's status, after README's Try-it election (as printed,
    up to its journal command), on the bridge `make run` starts."""
    env = grpcurl_env()
    try_it = try_it_commands()
    upto = next(i for i, c in enumerate(try_it) if "journal --pool" in c)
    run_block(try_it[:upto + 1], {"ElectMaster": (True, "ELECTED_BY_CLOUDSTACK")}, env)
    cmd, shown = docs_block("operator.md", "status").transcript()
    out = subprocess.run(cmd, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    transcript_matches(shown, out.stdout)


# ---------------------------------------------------------------- production host


class ScratchHost:
    """A mount namespace whose /etc, /usr, /var and /run are overlays on this
    machine's (the changes land in a tmpfs and vanish with it): the pages'
    commands for a production host run there as printed, as root, with the
    systemctl and journalctl stand-ins first on PATH."""

    def __init__(self, tmp):
        self.ns = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "infinity"])
        mine = os.readlink("/proc/self/ns/mnt")
        deadline = time.time() + 10
        while os.readlink(f"/proc/{self.ns.pid}/ns/mnt") == mine:
            assert time.time() < deadline, "unshare -m did not make a mount namespace"
            time.sleep(0.05)
        scratch = os.path.join(tmp, "scratch")
        os.mkdir(scratch)
        setup = [f"mount -t tmpfs scratch {scratch}"]
        for d in ("etc", "usr", "var", "run"):
            up, work = f"{scratch}/{d}.upper", f"{scratch}/{d}.work"
            setup += [f"mkdir {up} {work}",
                      f"mount -t overlay overlay -o lowerdir=/{d},upperdir={up},workdir={work} /{d}"]
        out = self.sh(" && ".join(setup))
        assert out.returncode == 0, out.stdout + out.stderr
        self.env = {"PATH": f"{STANDIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOME": "/root", "LANG": "C.UTF-8"}

    def wrap(self, cmd):
        return f"nsenter -t {self.ns.pid} -m --wd={ROOT} -- sh -c {shlex.quote(cmd)}"

    def sh(self, cmd, **kw):
        return subprocess.run(self.wrap(cmd), shell=True, cwd=ROOT, capture_output=True, text=True, timeout=90, **kw)

    def run(self, cmds, expect, after=None, **env):
        """Each command as printed, in the namespace (run_block's checks);
        after[fragment] runs once the command holding it has."""
        for cmd in cmds:
            run_block([self.wrap(cmd)], expect, dict(self.env, **env))
            for key, fn in (after or {}).items():
                if key in cmd:
                    fn()

    def write(self, path, text, mode=0o600):
        out = self.sh(f"mkdir -p $(dirname {path}) && umask 077 && cat > {path} && chmod {mode:o} {path}", input=text)
        assert out.returncode == 0, out.stderr

    def read(self, path):
        out = self.sh(f"cat {path}")
        assert out.returncode == 0, out.stderr
        return out.stdout

    def close(self):
        self.sh("for f in /run/standin/*.pid; do [ -e \"$f\" ] && kill -9 $(cat \"$f\"); done", env=self.env)
        self.ns.kill()
        self.ns.wait()


@pytest.fixture
def scratch(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the scratch host needs root (its mount namespace and overlays)")
    need("unshare", "util-linux")
    need("nsenter", "util-linux")
    need("systemd-analyze", "systemd", "XENHA_SKIP_SYSTEMD")  # the systemctl stand-in verifies the units
    need("systemd-sysusers", "systemd", "XENHA_SKIP_SYSTEMD")
    host = ScratchHost(str(tmp_path))
    try:
        yield host
    finally:
        host.close()


def ini_files(block):
    """An ini block holding several files, each after a `# /path` line."""
    files, cur = {}, None
    for line in block.text.splitlines():
        if re.fullmatch(r"# /\S+", line):
            cur = line[2:]
            files[cur] = ""
        elif cur:
            files[cur] += line + "\n"
    return {path: text.strip() + "\n" for path, text in files.items()}


def test_production_host(scratch, tmp_path):
    """install.md's systemd block, then operator.md's and operations.md's
    journal backups, the backup timer, a request followed in the logs and
    a restore, as an operator runs them on one host, in that order. The
    pool is a simulated one the operator names in the configuration."""
    need("jq", "jq")
    for port in (50051, 9102):
        if port_open(port):
            pytest.fail(f"port {port} is taken: the unit's configuration (deploy/config.yaml) listens there")
    sim, info = start_sim("--hosts", "3")
    try:
        install = docs_block("install.md", "systemd")
        (dropin,) = [b for b in fences(os.path.join(DOCS, "install.md")) if b.lang == "ini"]
        editor = tmp_path / "dropin.conf"
        editor.write_text(dropin.text + "\n")

        def edit_config():
            # "then edit it": the pool's members, plain http (a simulator),
            # and the files the drop-in loads.
            cfg = scratch.read("/etc/xenha-bridge/config.yaml")
            members = re.search(r"members: \[.*\]", cfg).group(0)
            cfg = cfg.replace(members, "members: [" + ", ".join(h["url"] for h in info["hosts"]) + "]")
            cfg = cfg.replace("    tls:\n", "    tls:\n      allow_plain_http: true\n")
            scratch.write("/etc/xenha-bridge/config.yaml", cfg)
            scratch.write("/etc/xenha-bridge/cluster-a.password", info["password"] + "\n")
            scratch.write("/etc/xenha-bridge/xs-ca.pem", open("/etc/ssl/certs/ca-certificates.crt").read())
            scratch.write("/etc/xenha-bridge/token", "not-used-by-this-configuration\n")

        scratch.run(install.commands(), {
            "systemd-sysusers": (True, ""),
            "enable --now": (True, "Created symlink /etc/systemd/system/multi-user.target.wants/xenha-bridge.service"),
            "health": (True, "127.0.0.1:50051 SERVING"),
        }, after={"deploy/config.yaml": edit_config}, SYSTEMD_EDITOR=f"cp {editor}")
        assert "xenha-bridge:x:" in scratch.read("/etc/passwd")
        assert "LoadCredential=cluster-a.password:" in scratch.read("/etc/systemd/system/xenha-bridge.service.d/override.conf")

        backup_checks = {
            "install -d": (True, ""),
            "--backup": (True, "journal backed up to /var/backups/xenha-bridge/journal.db"),
            "--check": (True, "a sound journal"),
        }
        scratch.run(docs_block("operator.md", "journal").commands(), backup_checks)
        scratch.run(docs_block("operations.md", "backup").commands(), backup_checks)

        # The backup timer: the operator saves the two units shown, then
        # runs the block; the service takes one backup as the bridge's user.
        (timer_ini,) = [b for b in fences(os.path.join(DOCS, "operations.md"))
                        if b.lang == "ini" and "xenha-journal-backup.timer" in b.text]
        units = ini_files(timer_ini)
        assert sorted(units) == ["/etc/systemd/system/xenha-journal-backup.service",
                                 "/etc/systemd/system/xenha-journal-backup.timer"]
        for path, text in units.items():
            scratch.write(path, text, 0o644)
        before = scratch.sh("stat -c %Y.%s /var/backups/xenha-bridge/journal.db").stdout
        time.sleep(1.1)
        scratch.run(docs_block("operations.md", "backup-timer").commands(), {
            "enable --now": (True, "timers.target.wants/xenha-journal-backup.timer"),
        })
        owner = scratch.sh("stat -c %U:%a /var/backups/xenha-bridge/journal.db").stdout.strip()
        assert owner == "xenha-bridge:600", owner  # written by the timer's service, as the bridge's user
        assert scratch.sh("stat -c %Y.%s /var/backups/xenha-bridge/journal.db").stdout != before

        # One request followed through the logs: CloudStack asks ElectMaster
        # of the pool with a request id (its master is alive: nothing to do).
        elect = subprocess.run([GRPCURL, "-plaintext", "-d", '{"pool":"cluster-a","request_id":"cs-1"}',
                                "127.0.0.1:50051", "cloudstack.xenha.v1.XenHAService/ElectMaster"],
                               capture_output=True, text=True, timeout=30)
        assert "ELECTED_BY_NONE" in elect.stdout, elect.stdout + elect.stderr
        cmd, shown = docs_block("operator.md", "journalctl").transcript()
        out = scratch.sh(cmd, env=scratch.env)
        assert out.returncode == 0, out.stderr
        got = [json.loads(l) for l in out.stdout.splitlines()]
        for line in shown:
            if line.strip() == "...":
                continue
            want = json.loads(line)
            del want["@timestamp"]
            assert any(dict(g, **{"@timestamp": None}) == dict(want, **{"@timestamp": None}) for g in got), \
                f"not logged: {line}\n{out.stdout}"

        # A restore, the journal damaged while the bridge is stopped.
        def damage():
            out = scratch.sh("printf '\\377%.0s' $(seq 4096) | dd of=/var/lib/xenha-bridge/journal.db bs=4096 seek=2 conv=notrunc 2>&1")
            assert out.returncode == 0, out.stdout + out.stderr
            refused = scratch.sh("xenha-bridge journal --check /var/lib/xenha-bridge/journal.db", env=scratch.env)
            assert refused.returncode != 0 and "damaged" in refused.stdout + refused.stderr, refused.stdout + refused.stderr

        scratch.run(docs_block("operations.md", "restore").commands(), {
            "--check": (True, "pool cluster-a"),
            "health": (True, "pool cluster-a"),
        }, after={"systemctl stop": damage})
        assert scratch.sh("test -e /var/lib/xenha-bridge/journal.db.damaged").returncode == 0
    finally:
        scratch.sh("systemctl stop xenha-bridge", env=scratch.env)
        sim.terminate()
        sim.wait(timeout=10)


# ---------------------------------------------------------------- alerts


def test_alerting_rules():
    need("promtool", "prometheus", "XENHA_SKIP_PROMETHEUS")
    run_block(docs_block("operations.md", "promtool").commands(), {
        "check rules": (True, "SUCCESS"),
        "test rules": (True, "SUCCESS"),
    }, os.environ)


# ---------------------------------------------------------------- several management servers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mariadb(tmp_path):
    """A MariaDB on loopback, as internal/mariadbtest starts one: its port
    and its socket (root by the socket)."""
    daemon = need("mariadbd", "mariadb-server-core", "XENHA_SKIP_MARIADB")
    need("mariadb-install-db", "mariadb-server-core")
    need("mariadb", "mariadb-client-core")
    data, sock, port = tmp_path / "data", str(tmp_path / "sock"), free_port()
    user = ["--user=root"] if os.geteuid() == 0 else []
    out = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=socket",
                          "--skip-test-db", *user], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    proc = subprocess.Popen([daemon, "--no-defaults", f"--datadir={data}", f"--socket={sock}", f"--port={port}",
                             "--bind-address=127.0.0.1", "--skip-name-resolve", f"--log-error={tmp_path / 'error.log'}",
                             f"--pid-file={tmp_path / 'pid'}", "--innodb-buffer-pool-size=64M", *user])
    try:
        deadline = time.time() + 60
        while subprocess.run(["mariadb", f"--socket={sock}", "-u", "root", "-e", "SELECT 1"], capture_output=True).returncode:
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "error.log").read_text()
            time.sleep(0.2)
        yield port, sock
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def ham(addr, pool):
    """HAMode of a bridge; {} while it does not answer."""
    if not port_open(int(addr.rsplit(":", 1)[1])):
        return {}
    out = subprocess.run([GRPCURL, "-plaintext", "-max-time", "5", "-d", json.dumps({"pool": pool}), addr,
                          "cloudstack.xenha.v1.XenHAService/HAMode"], capture_output=True, text=True, timeout=10)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def test_several_management_servers(mariadb, tmp_path):
    """The page's setup as printed (its SQL on the database server, its YAML
    on each bridge, the database's address being this test's), two bridges
    on one simulated pool, then its command at the bridge that does not
    hold the lease, on 127.0.0.1:50051 as printed."""
    port, sock = mariadb
    if port_open(50051):
        pytest.fail("port 50051 is taken: stop `make run` first")
    page = os.path.join(DOCS, "several-management-servers.md")
    (sql,) = [b for b in fences(page) if b.lang == "sql"]
    out = subprocess.run(["mariadb", f"--socket={sock}", "-u", "root"], input=sql.text, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    password = re.search(r"IDENTIFIED BY '(.*)'", sql.text).group(1)
    (shared,) = [b for b in fences(page) if b.lang == "yaml"]
    sim, info = start_sim("--hosts", "3")
    bridges = []
    try:
        (tmp_path / "mysql.password").write_text(password + "\n")
        (tmp_path / "sim.password").write_text(info["password"] + "\n")
        os.chmod(tmp_path / "mysql.password", 0o600)
        os.chmod(tmp_path / "sim.password", 0o600)
        pool = ("pools:\n  - name: sim\n    members: [" + ", ".join(h["url"] for h in info["hosts"]) + "]\n"
                f"    username: root\n    password_file: {tmp_path / 'sim.password'}\n"
                "    tls:\n      allow_plain_http: true\n")

        def config(name, lease_id, advertise, listen):
            text = (shared.text.replace("10.0.0.5:3306", f"127.0.0.1:{port}")
                    .replace("/etc/xenha-bridge/mysql.password", str(tmp_path / "mysql.password"))
                    .replace("id: mgmt-1 ", f"id: {lease_id} ").replace("advertise: 10.0.0.21:50051", f"advertise: {advertise}"))
            path = tmp_path / name
            path.write_text((f"listen: {listen}\n" if listen else "") + text + "\n" + pool)
            return path

        # mgmt-2 first, on a port of its own: it takes the lease.
        holder_addr = f"127.0.0.1:{free_port()}"
        holder = Background(f"{BINARY} serve --config {config('mgmt-2.yaml', 'mgmt-2', '10.0.0.22:50051', holder_addr)}",
                            lambda: ham(holder_addr, "sim").get("lease", {}).get("heldHere"))
        bridges.append(holder)
        # mgmt-1 as the page's YAML has it: listening on the default address.
        other = Background(f"{BINARY} serve --config {config('mgmt-1.yaml', 'mgmt-1', '10.0.0.21:50051', None)}",
                           lambda: ham("127.0.0.1:50051", "sim").get("lease", {}).get("holder") == "mgmt-2")
        bridges.append(other)
        block = docs_block("several-management-servers.md", "not-holder")
        shown = [l[2:] for l in block.text.splitlines() if l.startswith("# ") and not l.startswith("# on ")]
        run_block(block.commands(), {"ElectMaster": (False, "Code: FailedPrecondition")}, grpcurl_env())
        out = subprocess.run(block.commands()[0], shell=True, env=grpcurl_env(), capture_output=True, text=True)
        for line in shown:
            assert line.strip() in out.stdout + out.stderr, f"{line!r} not in\n{out.stdout}{out.stderr}"
    finally:
        for b in reversed(bridges):
            b.stop()
        sim.terminate()
        sim.wait(timeout=10)


# ---------------------------------------------------------------- commands in the text


SCOPE = ["api.md", "architecture.md", "bench.md", "configuration.md", "install.md", "operations.md",
         "operator.md", "reliability.md", "several-management-servers.md", "simulator.md"]


def prose_spans(page):
    """The inline code of a page outside its fenced blocks, line breaks as spaces."""
    text, inside = [], False
    for line in open(os.path.join(DOCS, page)).read().splitlines():
        if FENCE.match(line):
            inside = not inside
        elif not inside:
            text.append(line)
    return [" ".join(m.split()) for m in re.findall(r"`([^`]+)`", "\n".join(text))]


def flags_of(argv):
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    flags = set(re.findall(r"^\s+-([\w.-]+)", out.stdout + out.stderr, re.M))
    assert flags, f"{argv}: no flags in\n{out.stdout}{out.stderr}"
    return flags


def test_commands_in_the_text_name_real_flags():
    """The commands the pages name in their text (benchmark and fault-schedule
    runs of minutes to hours, the CLI's flags) cannot all run in a test:
    their subcommands, flags and make targets must exist, and `make bench`
    runs what bench.md says it runs."""
    subs = {c: flags_of([BINARY, c, "--help"]) for c in ("serve", "status", "journal", "health", "sim")}
    bench = flags_of(["go", "run", "./cmd/xenha-bench", "-h"])
    chaos = set(re.findall(r'flag\.\w+\("(chaos\.[\w]+)"', open(os.path.join(ROOT, "chaos", "chaos_test.go")).read()))
    targets = set(re.findall(r"^([\w-]+):", open(os.path.join(ROOT, "Makefile")).read(), re.M))
    wrong, seen = [], 0
    for page in SCOPE:
        for span in prose_spans(page):
            words = [w.strip("[]") for w in span.split()]
            if words[0] in ("xenha-bridge", "bin/xenha-bridge") and len(words) > 1 and words[1] in subs:
                flags, known = [w[2:].split("=")[0] for w in words[2:] if w.startswith("--")], subs[words[1]]
            elif span.startswith("go run ./cmd/xenha-bench") or (page == "bench.md" and span.startswith("-")):
                flags, known = [w[1:] for w in words if w.startswith("-") and w != "-h"], bench
            elif (span.startswith("go test") and "./chaos" in words) or span.startswith("-chaos."):
                flags, known = [w[1:].split("=")[0] for w in words if w.startswith("-chaos.")], chaos
            elif words[0] == "make" and len(words) > 1 and "=" not in words[1]:
                flags, known = [words[1]], targets
            else:
                continue
            seen += 1
            wrong += [f"{page}: `{span}`: {f}" for f in flags if f not in known]
    assert seen > 30, seen
    assert not wrong, "flags or targets that do not exist: " + "; ".join(wrong)
    # configuration.md lists every flag of serve
    page = open(os.path.join(DOCS, "configuration.md")).read()
    assert not [f for f in subs["serve"] if f"--{f}" not in page], subs["serve"]
    # what bench.md says make bench runs
    dry = subprocess.run(["make", "-n", "bench"], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, MAKEFLAGS="", MAKELEVEL=""))
    for cmd in ["go run ./cmd/xenha-bench\n", "-fence 10", "-failover 5", "-e2e 5",
                "go test -run '^$' -bench . -benchtime 2s -benchmem ./mysqlstore"]:
        assert cmd in dry.stdout, f"{cmd!r} not in make -n bench:\n{dry.stdout}"


# ---------------------------------------------------------------- podman


def test_podman():
    """podman is not among the test peers, and cannot start a container on
    this project's machines (crun's setrlimit is refused; no systemd for
    health-check timers): deploy/image_test.go runs the image with buildah.
    Here the block is held to what that test proves: the health command is
    the one it runs inside the image, the volumes are the image's
    directories, the image name is what `make image` writes."""
    block = docs_block("install.md", "podman")
    load, run = block.commands()
    assert "podman load -q -i bin/xenha-bridge-image.tar" in load
    health = json.loads(re.search(r"--health-cmd '(\[.*\])'", run).group(1))
    assert health == ["/xenha-bridge", "health", "--addr", "127.0.0.1:50051"]
    image_test = open(os.path.join(ROOT, "deploy", "image_test.go")).read()
    assert '"health", "--addr"' in image_test
    containerfile = open(os.path.join(ROOT, "deploy", "Containerfile")).read()
    assert 'CMD ["serve", "--config", "/etc/xenha-bridge/config.yaml"]' in containerfile
    assert "/var/lib/xenha-bridge" in containerfile and ":/var/lib/xenha-bridge" in run and ":/etc/xenha-bridge:ro" in run
    assert "IMAGE_NAME:-localhost/xenha-bridge:" in open(os.path.join(ROOT, "deploy", "build-image.sh")).read()


def test_the_drop_in_jar_builds_as_printed():
    """README's and docs/java-shim.md's build command, as printed, gives the
    one jar they say to copy, with the versioned CloudStack module in it."""
    import glob
    import zipfile

    cmd = "mvn -B -f java-shim/pom.xml package -DskipITs"
    for page in ("README.md", "docs/java-shim.md"):
        assert f"`{cmd}`" in open(os.path.join(ROOT, page)).read(), f"{page} no longer prints {cmd}"
    need("mvn", "maven")
    r = subprocess.run(shlex.split(cmd) + ["-q", "-ntp"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jars = glob.glob(os.path.join(ROOT, "java-shim/xenha-cloudstack-bundle/target/xenha-cloudstack-bundle-*.jar"))
    jars = [j for j in jars if not j.endswith(("-sources.jar", "-tests.jar"))]
    assert len(jars) == 1, jars
    with zipfile.ZipFile(jars[0]) as z:
        modules = [n for n in z.namelist() if re.fullmatch(r"META-INF/cloudstack/xenha-bridge-[^/]+/module\.properties", n)]
        assert len(modules) == 1, modules
        props = z.read(modules[0]).decode()
        assert "parent=xenserver-compute" in props, props
