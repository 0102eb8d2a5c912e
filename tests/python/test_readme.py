"""README's "Try it" commands, run exactly as printed against `serve --simulate`
(what `make run` starts)."""

import os
import queue
import socket
import subprocess
import threading
import time

import pytest

from conftest import BINARY, ROOT

GRPCURL = os.environ.get("GRPCURL", os.path.join(ROOT, "bin", "tools", "grpcurl"))


def readme_block(name):
    text = open(os.path.join(ROOT, "README.md")).read()
    block = text.split(f"<!-- readme-test: {name} -->", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def try_it_commands():
    return readme_block("try-it")


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_server():
    """Start `serve --simulate`; None if a port was briefly taken."""
    proc = subprocess.Popen([BINARY, "serve", "--simulate"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 20
    while not port_open(50051):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            out = proc.stdout.read() or ""
            if "address already in use" in out:
                return None, out
            pytest.fail("serve --simulate did not start: " + out)
        time.sleep(0.1)
    return proc, ""


@pytest.fixture
def served():
    for port in (50051, 50052):
        if port_open(port):
            pytest.fail(f"port {port} is taken: stop `make run` before running the README test")
    # 50051 and 50052 lie in Linux's ephemeral range: the client end of some
    # other connection on this machine can hold one for a while. Try again
    # then, for up to a minute, and name the holder if it stays.
    for _ in range(60):
        proc, out = start_server()
        if proc:
            break
        time.sleep(1)
    else:
        holders = subprocess.run(["ss", "-tanp"], capture_output=True, text=True).stdout
        holders = "\n".join(l for l in holders.splitlines() if ":50051 " in l or ":50052 " in l)
        pytest.fail("serve --simulate could not bind its ports: " + out + "\nheld by:\n" + holders)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def run_block(cmds, expect, env):
    """Run each command as printed; expect maps a fragment of a command to
    (whether it must succeed, what its output must contain)."""
    for cmd in cmds:
        out = subprocess.run(cmd, shell=True, env=env, cwd=ROOT, capture_output=True, text=True, timeout=90)
        ok, want = next(((ok, want) for key, (ok, want) in expect.items() if key in cmd), (True, ""))
        assert (out.returncode == 0) == ok, f"{cmd}\n{out.stdout}{out.stderr}"
        assert want in out.stdout + out.stderr, f"{cmd}: {want!r} not in\n{out.stdout}{out.stderr}"


def test_readme_commands_work_as_printed_in_order(served):
    """Terminal 2's stream, then terminal 3's blocks in README's order, on
    one bridge: each example must hold after the ones before it."""
    env = dict(os.environ, PATH=os.path.dirname(GRPCURL) + os.pathsep + os.environ["PATH"])
    (events,) = readme_block("events")
    stream = subprocess.Popen(events, shell=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in stream.stdout], daemon=True).start()
    time.sleep(1.5)  # let it subscribe before the fault below
    try:
        try_it = try_it_commands()
        assert any("HAMode" in c for c in try_it) and any("ElectMaster" in c for c in try_it)
        run_block(try_it, {
            " list": (True, "cloudstack.xenha.v1.XenHAService"),
            "HAMode": (True, "CONTROLLER_CLOUDSTACK"),
            "ListPools": (True, '"name": "sim"'),
            "Health/Check": (True, "SERVING"),
            "FenceHost": (True, "FENCE_OUTCOME_REFUSED_HOST_ALIVE"),
            "power-off": (True, '"status":"ok"'),
            "ElectMaster": (True, "ELECTED_BY_CLOUDSTACK"),
            "journal --pool": (True, "emergency_transition_to_master"),
            "power-on": (True, '"status":"ok"'),
            "status": (True, "sim"),
        }, env)
        deadline = time.time() + 30
        seen = ""
        while not ("MASTER_CHANGE_CAUSE_CLOUDSTACK_ELECTION" in seen and "SPLIT_BRAIN" in seen) and time.time() < deadline:
            try:
                seen += lines.get(timeout=0.5)
            except queue.Empty:
                pass
        assert "EVENT_TYPE_MASTER_LOST" in seen, seen
        assert "MASTER_CHANGE_CAUSE_CLOUDSTACK_ELECTION" in seen, seen
        assert "SPLIT_BRAIN" in seen, seen

        membership = readme_block("membership")
        assert len(membership) == 6
        run_block(membership, {
            "ClassifyHost": (True, "HOST_CLASS_STANDALONE"),
            '"dryRun":true': (True, "would run pool.join"),
            "JoinHost": (True, "the master lists host-3"),
            "EnableXenHA": (True, "CONTROLLER_XENHA"),
            "DisableXenHA": (True, "CONTROLLER_CLOUDSTACK"),
            "EjectHost": (True, "dropped from the pool's members"),
        }, env)
    finally:
        stream.terminate()
        stream.wait(timeout=5)
