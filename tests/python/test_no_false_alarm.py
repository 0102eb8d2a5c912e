"""After an election the bridge switches to the new master: nothing may
report that new master lost (issue 13). README's Try-it flow on
`serve --simulate` showed a MASTER_LOST for the new master in about half
the runs before the fix (3 of 6 with the binary of commit 0a9fa0d, 0 of 6
after)."""

import json
import os
import queue
import re
import subprocess
import threading
import time

from conftest import BINARY
from test_readme import GRPCURL, port_open, start_server

RUNS = 5


def events_of(text):
    return [json.loads(o)["event"] for o in re.findall(r"^\{.*?^\}", text, re.S | re.M)]


def one_failover():
    proc, out = start_server()
    for _ in range(10):
        if proc:
            break
        time.sleep(1)
        proc, out = start_server()
    assert proc, "serve --simulate could not bind its ports: " + out
    try:
        stream = subprocess.Popen([GRPCURL, "-plaintext", "-d", '{"pool":"sim"}', "127.0.0.1:50051",
                                   "cloudstack.xenha.v1.XenHAService/PoolEvents"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in stream.stdout], daemon=True).start()
        time.sleep(1.5)  # subscribed before the fault
        subprocess.run(["curl", "-s", "-X", "POST", "127.0.0.1:50052/hosts/0/power-off"], check=True, capture_output=True)
        el = subprocess.run([GRPCURL, "-plaintext", "-d", '{"pool":"sim","request_id":"alarm"}', "127.0.0.1:50051",
                             "cloudstack.xenha.v1.XenHAService/ElectMaster"], capture_output=True, text=True, timeout=90)
        assert el.returncode == 0, el.stdout + el.stderr
        new = json.loads(el.stdout)["master"]["uuid"]
        time.sleep(8)  # several probe rounds and master checks of the new master
        stream.terminate()
        stream.wait(timeout=5)
        text = ""
        while not lines.empty():
            text += lines.get()
        return new, events_of(text)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        deadline = time.time() + 10
        while (port_open(50051) or port_open(50052)) and time.time() < deadline:
            time.sleep(0.1)


def test_no_master_lost_for_the_new_master_after_an_election():
    for run in range(RUNS):
        new, events = one_failover()
        assert any(e["type"] == "EVENT_TYPE_MASTER_CHANGED" and e.get("hostUuid") == new for e in events), events
        false = [e for e in events if e["type"] == "EVENT_TYPE_MASTER_LOST" and e.get("hostUuid") == new]
        assert not false, f"run {run}: the new master {new} reported lost: {false}"
