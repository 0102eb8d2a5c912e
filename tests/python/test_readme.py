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
    # other test's connection can hold one for a moment. Try again then.
    for _ in range(10):
        proc, out = start_server()
        if proc:
            break
        time.sleep(1)
    else:
        pytest.fail("serve --simulate could not bind its ports: " + out)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_try_it_commands_work_as_printed(served):
    env = dict(os.environ, PATH=os.path.dirname(GRPCURL) + os.pathsep + os.environ["PATH"])
    cmds = try_it_commands()
    assert any("HAMode" in c for c in cmds) and any("PoolEvents" in c for c in cmds)
    expect = {
        " list": "cloudstack.xenha.v1.XenHAService",
        "describe": "rpc HAMode",
        "HAMode": "CONTROLLER_CLOUDSTACK",
        "ListPools": '"name": "sim"',
        "Health/Check": "SERVING",
        "FenceHost": "FENCE_OUTCOME_REFUSED_HOST_ALIVE",
        "power-off": '"status":"ok"',
        "ElectMaster": "ELECTED_BY_CLOUDSTACK",
        "journal --pool": "emergency_transition_to_master",
    }
    stream = None
    for cmd in cmds:
        if "PoolEvents" in cmd:
            stream = subprocess.Popen(cmd, shell=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(1.5)  # let it subscribe before the fault below
            continue
        out = subprocess.run(cmd, shell=True, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{cmd}\n{out.stdout}{out.stderr}"
        for key, want in expect.items():
            if key in cmd:
                assert want in out.stdout, f"{cmd}: {want!r} not in\n{out.stdout}"
    assert stream is not None
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in stream.stdout], daemon=True).start()
    deadline = time.time() + 15
    seen = ""
    while "MASTER_CHANGE_CAUSE_CLOUDSTACK_ELECTION" not in seen and time.time() < deadline:
        try:
            seen += lines.get(timeout=0.5)
        except queue.Empty:
            pass
    stream.terminate()
    stream.wait(timeout=5)
    assert "EVENT_TYPE_MASTER_LOST" in seen, seen
    assert "MASTER_CHANGE_CAUSE_CLOUDSTACK_ELECTION" in seen, seen


def test_membership_commands_work_as_printed(served):
    env = dict(os.environ, PATH=os.path.dirname(GRPCURL) + os.pathsep + os.environ["PATH"])
    cmds = readme_block("membership")
    assert len(cmds) == 8
    expect = [
        (True, "HOST_CLASS_STANDALONE"),
        (True, "would run pool.join"),
        (True, "the master lists host-3"),
        (True, "HOST_CLASS_MANAGED"),
        (True, "CONTROLLER_XENHA"),
        (True, "CONTROLLER_CLOUDSTACK"),
        (False, "is the pool master"),
        (True, "dropped from the pool's members"),
    ]
    for cmd, (ok, want) in zip(cmds, expect):
        out = subprocess.run(cmd, shell=True, env=env, cwd=ROOT, capture_output=True, text=True, timeout=90)
        assert (out.returncode == 0) == ok, f"{cmd}\n{out.stdout}{out.stderr}"
        assert want in out.stdout + out.stderr, f"{cmd}: {want!r} not in\n{out.stdout}{out.stderr}"
