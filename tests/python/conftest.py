"""Start a simulated pool with `xenha-bridge sim --json` for the SDK tests."""

import json
import os
import subprocess
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("XENHA_BRIDGE", os.path.join(ROOT, "bin", "xenha-bridge"))


@pytest.fixture
def pool():
    """A fresh three-host pool; yields the JSON `sim --json` printed."""
    proc = subprocess.Popen(
        [BINARY, "sim", "--hosts", "3", "--json", "--seed", "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("sim printed nothing: " + proc.stderr.read())
    info = json.loads(line)
    try:
        yield info
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def control(info, path):
    """POST to the simulator's control endpoint."""
    req = urllib.request.Request(info["control_url"] + path, data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)
