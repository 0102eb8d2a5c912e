"""Tests of plugins/xenha-heartbeat, the XAPI plugin that reads CloudStack's
storage heartbeats (NFS files and LVM volumes) on a XenServer host.

The plugin file has no .py extension, so it is loaded by path. Fake trees
in tmp_path stand in for /var/run/sr-mount, /dev and /opt/cloud/bin/heartbeat.
"""

import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLUGIN = os.path.join(ROOT, "plugins", "xenha-heartbeat")


def load_plugin():
    loader = importlib.machinery.SourceFileLoader("xenha_heartbeat", PLUGIN)
    spec = importlib.util.spec_from_loader("xenha_heartbeat", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


hb = load_plugin()

HOST = "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b"
OTHER = "0a0b0c0d-1111-4222-8333-444455556666"
SR1 = "11111111-aaaa-4bbb-8ccc-000000000001"
SR2 = "22222222-aaaa-4bbb-8ccc-000000000002"
SR3 = "33333333-aaaa-4bbb-8ccc-000000000003"
SR4 = "44444444-aaaa-4bbb-8ccc-000000000004"
SR5 = "55555555-aaaa-4bbb-8ccc-000000000005"
TS = 1732000000


def nfs_bytes(ts):
    """An NFS heartbeat file: `date +%s | dd of=file` truncates, so it holds
    just the digits and a newline."""
    return b"%d\n" % ts


def lvm_bytes(ts, size=8192, tail=b"\xde\xad\xbe\xef old junk \x01\x02"):
    """A heartbeat LV as dd leaves it: setup_heartbeat_sr.sh zeroed the
    first 100 bytes, then `date +%s | dd of=lv count=100 bs=1` wrote the
    digits and "\\n" in place; beyond byte 100, whatever the LV held."""
    head = b"%d\n" % ts
    data = head + b"\x00" * (100 - len(head)) + tail
    return data + b"\x00" * (size - len(data))


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


class Tree:
    """Fake host layout under tmp_path."""

    def __init__(self, base):
        self.base = str(base)
        self.sr_mount = os.path.join(self.base, "var", "run", "sr-mount")
        self.dev = os.path.join(self.base, "dev")
        self.hb_list = os.path.join(self.base, "opt", "cloud", "bin", "heartbeat")
        self.mounts = os.path.join(self.base, "proc", "mounts")
        os.makedirs(self.sr_mount)
        os.makedirs(self.dev)

    def nfs(self, sr, host=HOST, data=None):
        path = os.path.join(self.sr_mount, sr, "hb-" + host)
        if data is not None:
            write(path, data)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def lvm(self, sr, host=HOST, data=None):
        path = os.path.join(self.dev, "VG_XenStorage-" + sr, "hb-" + host)
        if data is not None:
            write(path, data)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def list_file(self, lines):
        write(self.hb_list, ("\n".join(lines) + "\n").encode())

    def mounts_file(self, entries):
        text = "".join("%s %s %s rw 0 0\n" % (src, os.path.join(self.sr_mount, sr), fs)
                       for sr, fs, src in entries)
        write(self.mounts, text.encode())

    def kwargs(self, **extra):
        kw = dict(sr_mount_root=self.sr_mount, dev_root=self.dev,
                  heartbeat_lists=(self.hb_list,), mounts_file=None)
        kw.update(extra)
        return kw


@pytest.fixture
def tree(tmp_path):
    return Tree(tmp_path)


# --- parse_timestamp --------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b"1732000000\n",                       # NFS file
    b"1732000000",                         # no newline
    lvm_bytes(TS),                         # LV image: NULs then junk
    lvm_bytes(TS)[:100],                   # what check_heartbeat.sh reads (100 bytes)
    b"1732000000\nGARBAGE\xff\xfe\x00\x00",  # junk right after the newline
    b"1732000000\x00\x00\x00\x00",         # NUL-terminated
    b"  1732000000  \r\n",                 # whitespace
    b"\n\t1732000000\n",
    bytearray(b"1732000000\n"),
])
def test_parse_timestamp_accepts_cloudstack_formats(raw):
    assert hb.parse_timestamp(raw) == TS


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00" * 100,                # fresh volume: setup_heartbeat_sr.sh zeroes it
    b"   \n\n",
    b"abc\n",
    b"-1732000000\n",             # negative
    b"+1732000000\n",
    b"1732000000abc\n",           # digits run into junk
    b"1732000000 1732000001\n",
    b"1732000000.5\n",
    b"0\n",                       # absurdly old
    b"123\n",
    b"99999999999\n",             # after 2106
    b"1" * 5000,                  # huge
    b"\xff\xfe\xfd",
    b"\x001732000000\n",          # starts with a NUL: nothing before it
])
def test_parse_timestamp_rejects_garbage(raw):
    with pytest.raises(ValueError):
        hb.parse_timestamp(raw)


def test_parse_timestamp_rejects_text():
    with pytest.raises(ValueError):
        hb.parse_timestamp("1732000000\n")


# --- host_uuid validation ---------------------------------------------------

BAD_UUIDS = [
    "",
    "../../etc/passwd",
    "../" + HOST,
    HOST + "/../../etc/shadow",
    HOST + "/..",
    "/" + HOST,
    HOST + "\n",                  # `$` would let this through; \Z does not
    HOST + "\x00",
    " " + HOST,
    HOST.replace("-", ""),
    HOST[:-1],
    HOST + "0",
    HOST[:-1] + "g",
    "*",
    "hb-" + HOST,
    None,
    123,
    [HOST],
]


@pytest.mark.parametrize("bad", BAD_UUIDS)
def test_invalid_host_uuid_rejected_everywhere(bad, tree):
    tree.nfs(SR1, data=nfs_bytes(TS))
    with pytest.raises(hb.InvalidArgument):
        hb.read(None, {"host_uuid": bad})
    with pytest.raises(ValueError):
        hb.find_heartbeat_files(bad, **tree.kwargs())
    with pytest.raises(ValueError):
        hb.read_beats(bad, **tree.kwargs())


def test_read_requires_host_uuid():
    for args in ({}, None, {"host": HOST}):
        with pytest.raises(hb.InvalidArgument):
            hb.read(None, args)


def test_uppercase_uuid_is_normalised():
    assert hb.validate_uuid(HOST.upper()) == HOST


# --- discovery and reading --------------------------------------------------

def test_nfs_heartbeats_on_two_srs(tree):
    tree.nfs(SR1, data=nfs_bytes(TS))
    tree.nfs(SR2, data=nfs_bytes(TS + 60))
    tree.nfs(SR1, host=OTHER, data=nfs_bytes(TS - 999))   # another host's file
    os.makedirs(os.path.join(tree.sr_mount, "lost+found"))  # not an SR
    os.makedirs(os.path.join(tree.sr_mount, "not-a-uuid"))

    files = hb.find_heartbeat_files(HOST, **tree.kwargs())
    assert [(f.sr_uuid, f.kind) for f in files] == [(SR1, "nfs"), (SR2, "nfs")]
    assert files[0].path == os.path.join(tree.sr_mount, SR1, "hb-" + HOST)

    beats = hb.read_beats(HOST, **tree.kwargs())
    assert beats == [{"sr_uuid": SR1, "timestamp": TS},
                     {"sr_uuid": SR2, "timestamp": TS + 60}]
    other = hb.read_beats(OTHER, **tree.kwargs())
    assert other[0] == {"sr_uuid": SR1, "timestamp": TS - 999}


def test_lvm_heartbeat_volume(tree):
    tree.lvm(SR3, data=lvm_bytes(TS + 5))
    tree.lvm(SR4)                                  # local LVM SR: no hb volume
    tree.lvm(SR4, host=OTHER, data=lvm_bytes(TS))  # someone else's volume

    files = hb.find_heartbeat_files(HOST, **tree.kwargs())
    assert [(f.sr_uuid, f.kind) for f in files] == [(SR3, "lvm")]
    assert files[0].path == os.path.join(tree.dev, "VG_XenStorage-" + SR3, "hb-" + HOST)
    assert hb.read_beats(HOST, **tree.kwargs()) == [{"sr_uuid": SR3, "timestamp": TS + 5}]


def test_lvm_volume_reached_through_a_symlink(tree):
    # On a host /dev/VG_XenStorage-<sr>/hb-<host> links to /dev/dm-N.
    target = os.path.join(tree.dev, "dm-7")
    write(target, lvm_bytes(TS))
    link = tree.lvm(SR3)
    os.symlink(target, link)
    assert hb.read_beats(HOST, **tree.kwargs()) == [{"sr_uuid": SR3, "timestamp": TS}]


def test_nfs_and_lvm_together_sorted(tree):
    tree.nfs(SR2, data=nfs_bytes(TS))
    tree.lvm(SR1, data=lvm_bytes(TS + 1))
    beats = hb.read_beats(HOST, **tree.kwargs())
    assert beats == [{"sr_uuid": SR1, "timestamp": TS + 1},
                     {"sr_uuid": SR2, "timestamp": TS}]


def test_missing_nfs_file_is_an_entry_not_an_exception(tree):
    tree.nfs(SR1, data=nfs_bytes(TS))
    tree.nfs(SR2)   # mounted SR, no heartbeat file for this host
    beats = hb.read_beats(HOST, **tree.kwargs())
    assert beats[0] == {"sr_uuid": SR1, "timestamp": TS}
    assert beats[1]["sr_uuid"] == SR2
    assert beats[1]["timestamp"] == 0
    assert "no heartbeat file" in beats[1]["error"]


def test_listed_srs_are_reported_even_when_missing(tree):
    # setup_heartbeat_file.sh lists directories in /opt/cloud/bin/heartbeat.
    tree.list_file([
        "/var/run/sr-mount/" + SR1,
        "/dev/VG_XenStorage-" + SR3,
        "/var/run/sr-mount/../../etc",     # junk lines are ignored
        "/dev/VG_XenStorage-../../etc",
        "garbage",
        "",
    ])
    beats = hb.read_beats(HOST, activate_lvm=False, **tree.kwargs())
    assert [b["sr_uuid"] for b in beats] == [SR1, SR3]
    assert all(b["timestamp"] == 0 and b["error"] for b in beats)
    assert "not active" in beats[1]["error"]


def test_list_file_parsing(tree):
    tree.list_file(["/var/run/sr-mount/" + SR1 + "/", "/dev/VG_XenStorage-" + SR3,
                    "  /run/sr-mount/" + SR2 + "  ", "/dev/VG_XenStorage-" + SR4 + "x"])
    nfs, lvm = hb.read_heartbeat_lists((tree.hb_list, os.path.join(tree.base, "absent")))
    assert nfs == {SR1, SR2}
    assert lvm == {SR3}


def fake_lvchange(tree, tmp_path, fail=False):
    """A stand-in for lvchange: `-ay VG/LV` creates <dev>/VG/LV."""
    path = str(tmp_path / "lvchange")
    body = textwrap.dedent("""\
        #!{python}
        import os, sys
        assert sys.argv[1] == "-ay", sys.argv
        if {fail!r}:
            sys.stderr.write("  Failed to find logical volume %s\\n" % sys.argv[2])
            sys.exit(5)
        vg, lv = sys.argv[2].split("/")
        with open(os.path.join({dev!r}, vg, lv), "wb") as f:
            f.write(b"{ts}\\n" + b"\\0" * 99)
        """).format(python=sys.executable, fail=fail, dev=tree.dev, ts=TS + 7)
    with open(path, "w") as f:
        f.write(body)
    os.chmod(path, 0o755)
    return path


def test_listed_inactive_volume_is_activated(tree, tmp_path):
    tree.list_file(["/dev/VG_XenStorage-" + SR3])
    lvchange = fake_lvchange(tree, tmp_path)
    os.makedirs(os.path.join(tree.dev, "VG_XenStorage-" + SR3))
    files = hb.find_heartbeat_files(HOST, **tree.kwargs())
    assert files[0].activate == "VG_XenStorage-%s/hb-%s" % (SR3, HOST)
    beats = hb.read_beats(HOST, lvchange=lvchange, **tree.kwargs())
    assert beats == [{"sr_uuid": SR3, "timestamp": TS + 7}]


def test_failed_activation_is_an_entry(tree, tmp_path):
    tree.list_file(["/dev/VG_XenStorage-" + SR3])
    lvchange = fake_lvchange(tree, tmp_path, fail=True)
    beats = hb.read_beats(HOST, lvchange=lvchange, **tree.kwargs())
    assert beats[0]["timestamp"] == 0
    assert "cannot activate" in beats[0]["error"]
    assert "Failed to find logical volume" in beats[0]["error"]


def test_missing_lvchange_is_an_entry(tree, tmp_path):
    tree.list_file(["/dev/VG_XenStorage-" + SR3])
    beats = hb.read_beats(HOST, lvchange=str(tmp_path / "no-such-lvchange"), **tree.kwargs())
    assert beats[0]["timestamp"] == 0
    assert "cannot activate" in beats[0]["error"]


def test_unreadable_contents_are_entries(tree):
    tree.nfs(SR1, data=b"")                        # empty
    tree.nfs(SR2, data=b"not a number\n")          # garbage
    os.makedirs(tree.nfs(SR3))                     # a directory, not a file
    tree.lvm(SR4, data=b"\x00" * 4096)             # zeroed, never written
    beats = {b["sr_uuid"]: b for b in hb.read_beats(HOST, **tree.kwargs())}
    assert set(beats) == {SR1, SR2, SR3, SR4}
    for b in beats.values():
        assert b["timestamp"] == 0 and b["error"], b
    assert "empty" in beats[SR1]["error"]
    assert "not a timestamp" in beats[SR2]["error"]
    assert "cannot read" in beats[SR3]["error"]


def test_reads_are_bounded(tree):
    tree.nfs(SR1, data=b"%d\n" % TS + b"x" * (1024 * 1024))
    out = subprocess.run([sys.executable, PLUGIN, "--read-one", tree.nfs(SR1)],
                         stdout=subprocess.PIPE, check=True).stdout
    assert len(out) == hb.READ_LIMIT
    assert hb.read_beats(HOST, **tree.kwargs()) == [{"sr_uuid": SR1, "timestamp": TS}]


def test_mount_table_filters_local_and_unmounted_srs(tree):
    tree.nfs(SR1, data=nfs_bytes(TS))   # NFS SR: read
    tree.nfs(SR2, data=nfs_bytes(TS))   # local EXT SR mounted there: skipped
    tree.nfs(SR3, data=nfs_bytes(TS))   # stale dir, nothing mounted: skipped
    tree.nfs(SR4, data=nfs_bytes(TS))   # NFSv4
    tree.list_file(["/var/run/sr-mount/" + SR5])   # listed, not mounted
    tree.mounts_file([(SR1, "nfs", "filer:/export/sr1"),
                      (SR2, "ext4", "/dev/mapper/XSLocalEXT--x"),
                      (SR4, "nfs4", "filer:/export/sr4")])
    beats = hb.read_beats(HOST, **tree.kwargs(mounts_file=tree.mounts))
    assert [b["sr_uuid"] for b in beats] == [SR1, SR4, SR5]
    assert beats[0] == {"sr_uuid": SR1, "timestamp": TS}
    assert beats[1] == {"sr_uuid": SR4, "timestamp": TS}
    assert beats[2]["timestamp"] == 0 and "not mounted" in beats[2]["error"]


def test_mount_table_matches_the_real_path_of_the_root(tmp_path):
    # /var/run is a link to /run: /proc/mounts shows /run/sr-mount/<sr>.
    real = tmp_path / "run"
    (real / "sr-mount" / SR1).mkdir(parents=True)
    (tmp_path / "var").mkdir()
    os.symlink(str(real), str(tmp_path / "var" / "run"))
    mounts = tmp_path / "mounts"
    mounts.write_text("filer:/x %s nfs rw 0 0\n" % (real / "sr-mount" / SR1))
    got = hb.read_sr_mounts(str(tmp_path / "var" / "run" / "sr-mount"), str(mounts))
    assert got == {SR1: "nfs"}


def test_no_storage_at_all(tmp_path):
    kw = dict(sr_mount_root=str(tmp_path / "none"), dev_root=str(tmp_path / "nodev"),
              heartbeat_lists=(str(tmp_path / "nolist"),), mounts_file=None)
    assert hb.find_heartbeat_files(HOST, **kw) == []
    assert hb.read_beats(HOST, **kw) == []


def test_a_hanging_read_does_not_hang_the_plugin(tree, monkeypatch):
    tree.nfs(SR1, data=nfs_bytes(TS))
    tree.nfs(SR2, data=nfs_bytes(TS + 1))
    real_argv = hb._reader_argv
    hung_sr = os.path.join(tree.sr_mount, SR1)

    def argv(f, lvchange):
        if f.path.startswith(hung_sr):   # a read stuck on dead storage
            return [sys.executable, "-c", "import time; time.sleep(60)"]
        return real_argv(f, lvchange)

    monkeypatch.setattr(hb, "_reader_argv", argv)
    start = time.monotonic()
    beats = hb.read_beats(HOST, timeout=1.0, **tree.kwargs())
    elapsed = time.monotonic() - start
    assert elapsed < 5, elapsed
    assert beats[0]["sr_uuid"] == SR1 and beats[0]["timestamp"] == 0
    assert "timed out" in beats[0]["error"]
    assert beats[1] == {"sr_uuid": SR2, "timestamp": TS + 1}


def test_many_hanging_reads_share_one_deadline(tree, monkeypatch):
    for sr in (SR1, SR2, SR3, SR4, SR5):
        tree.nfs(sr, data=nfs_bytes(TS))
    monkeypatch.setattr(hb, "_reader_argv",
                        lambda f, l: [sys.executable, "-c", "import time; time.sleep(60)"])
    start = time.monotonic()
    beats = hb.read_beats(HOST, timeout=1.0, **tree.kwargs())
    assert time.monotonic() - start < 5
    assert len(beats) == 5 and all("timed out" in b["error"] for b in beats)


# --- the read() JSON contract ------------------------------------------------

@pytest.fixture
def host_tree(tree, monkeypatch):
    """Point the plugin's module settings at the fake tree."""
    monkeypatch.setattr(hb, "SR_MOUNT_ROOT", tree.sr_mount)
    monkeypatch.setattr(hb, "DEV_ROOT", tree.dev)
    monkeypatch.setattr(hb, "HEARTBEAT_LISTS", (tree.hb_list,))
    monkeypatch.setattr(hb, "MOUNTS_FILE", None)
    return tree


def test_read_json_contract(host_tree):
    host_tree.nfs(SR1, data=nfs_bytes(TS))
    host_tree.lvm(SR3, data=lvm_bytes(TS + 30))
    host_tree.nfs(SR2)   # missing file

    before = int(time.time())
    out = hb.read(None, {"host_uuid": HOST})
    after = int(time.time())

    assert isinstance(out, str)
    doc = json.loads(out)
    assert set(doc) == {"now", "host_uuid", "beats"}
    assert isinstance(doc["now"], int) and before <= doc["now"] <= after
    assert doc["host_uuid"] == HOST
    assert doc["beats"][:2] == [{"sr_uuid": SR1, "timestamp": TS},
                                {"sr_uuid": SR2, "timestamp": 0,
                                 "error": doc["beats"][1]["error"]}]
    assert doc["beats"][2] == {"sr_uuid": SR3, "timestamp": TS + 30}
    for beat in doc["beats"]:
        assert set(beat) <= {"sr_uuid", "timestamp", "error"}
        assert isinstance(beat["timestamp"], int)
        assert isinstance(beat.get("error", ""), str)


def test_read_with_no_heartbeats(host_tree):
    doc = json.loads(hb.read(None, {"host_uuid": HOST.upper()}))
    assert doc["host_uuid"] == HOST
    assert doc["beats"] == []


def test_read_ignores_extra_arguments(host_tree):
    host_tree.nfs(SR1, data=nfs_bytes(TS))
    doc = json.loads(hb.read(None, {"host_uuid": HOST, "sr_mount_root": "/etc"}))
    assert doc["beats"] == [{"sr_uuid": SR1, "timestamp": TS}]


# --- running the file as a plugin --------------------------------------------

STUB = '''\
"""Test stub of XenAPIPlugin: dispatch(fn_table) calls fn_table[argv[1]]
with session None and the JSON object in argv[2]."""
import json
import sys

DISPATCHED = []


def dispatch(fn_table):
    name, args = sys.argv[1], json.loads(sys.argv[2])
    if name not in fn_table:
        print("UNKNOWN_XENAPI_PLUGIN_FUNCTION " + name)
        sys.exit(2)
    try:
        result = fn_table[name](None, args)
    except Exception as exc:
        print("XENAPI_PLUGIN_FAILURE %s %s %s" % (name, exc.__class__.__name__, exc))
        sys.exit(1)
    print("FUNCTIONS " + ",".join(sorted(fn_table)))
    print(result)
'''


def interpreters():
    """This interpreter, and Python 3.6 (XenServer 8 / XCP-ng 8 dom0) when
    one is installed."""
    found = [sys.executable]
    for cand in ("/root/.pyenv/versions/3.6.15/bin/python3.6", shutil.which("python3.6")):
        if cand and os.access(cand, os.X_OK):
            try:
                subprocess.run([cand, "--version"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, check=True, timeout=20)
            except (OSError, subprocess.SubprocessError):
                continue
            found.append(cand)
            break
    return found


@pytest.fixture
def stub_dir(tmp_path):
    d = tmp_path / "stub"
    d.mkdir()
    (d / "XenAPIPlugin.py").write_text(STUB)
    return str(d)


def run_plugin(python, stub_dir, *argv):
    env = dict(os.environ, PYTHONPATH=stub_dir)
    return subprocess.run([python, PLUGIN] + list(argv), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env, timeout=60)


@pytest.mark.parametrize("python", interpreters())
def test_runs_as_a_plugin_script(python, stub_dir):
    res = run_plugin(python, stub_dir, "read", json.dumps({"host_uuid": HOST}))
    assert res.returncode == 0, res.stderr.decode()
    lines = res.stdout.decode().splitlines()
    assert lines[0] == "FUNCTIONS read"
    doc = json.loads(lines[1])
    assert set(doc) == {"now", "host_uuid", "beats"}
    assert doc["host_uuid"] == HOST
    assert isinstance(doc["beats"], list)
    assert abs(doc["now"] - time.time()) < 60


@pytest.mark.parametrize("python", interpreters())
def test_script_rejects_a_bad_uuid(python, stub_dir):
    res = run_plugin(python, stub_dir, "read", json.dumps({"host_uuid": "../../etc/passwd"}))
    assert res.returncode == 1
    assert res.stdout.decode().startswith("XENAPI_PLUGIN_FAILURE read InvalidArgument")


@pytest.mark.parametrize("python", interpreters())
def test_script_reader_mode(python, stub_dir, tree):
    path = tree.lvm(SR3, data=lvm_bytes(TS))
    res = run_plugin(python, stub_dir, "--read-one", path)
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout == lvm_bytes(TS)[:hb.READ_LIMIT]
    res = run_plugin(python, stub_dir, "--read-one", path + "-missing")
    assert res.returncode == 2
    assert b"no heartbeat file" in res.stderr


@pytest.mark.parametrize("python", interpreters())
def test_script_reads_a_tree_through_its_children(python, tree):
    # The whole read path (children included) under each interpreter,
    # without XenAPIPlugin: import the module by path and call read_beats.
    tree.nfs(SR1, data=nfs_bytes(TS))
    tree.lvm(SR3, data=lvm_bytes(TS + 3))
    code = textwrap.dedent("""\
        import importlib.machinery, importlib.util, json, sys
        loader = importlib.machinery.SourceFileLoader("p", sys.argv[1])
        spec = importlib.util.spec_from_loader("p", loader)
        m = importlib.util.module_from_spec(spec)
        loader.exec_module(m)
        print(json.dumps(m.read_beats(sys.argv[2], sr_mount_root=sys.argv[3],
                                      dev_root=sys.argv[4], heartbeat_lists=(),
                                      mounts_file=None)))
        """)
    res = subprocess.run([python, "-c", code, PLUGIN, HOST, tree.sr_mount, tree.dev],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert res.returncode == 0, res.stderr.decode()
    assert json.loads(res.stdout.decode()) == [{"sr_uuid": SR1, "timestamp": TS},
                                               {"sr_uuid": SR3, "timestamp": TS + 3}]
