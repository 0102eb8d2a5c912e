"""The official XenAPI Python SDK against the simulator: a client nobody
here wrote must see a pool that behaves like xapi."""

import XenAPI
import pytest

from conftest import control


def login(url, info):
    session = XenAPI.Session(url)
    session.xenapi.login_with_password(info["username"], info["password"], "1.0", "xenha-bridge-tests")
    return session


def test_login_on_master_and_records(pool):
    master = pool["hosts"][0]
    session = login(master["url"], pool)
    try:
        x = session.xenapi
        pools = x.pool.get_all_records()
        assert len(pools) == 1
        (prec,) = pools.values()
        assert prec["uuid"] == pool["pool_uuid"]
        assert prec["ha_enabled"] is False
        hosts = x.host.get_all_records()
        assert sorted(h["uuid"] for h in hosts.values()) == sorted(h["uuid"] for h in pool["hosts"])
        assert hosts[prec["master"]]["address"] == master["address"]
        vms = x.VM.get_all_records()
        guests = [v for v in vms.values() if not v["is_control_domain"]]
        assert len(guests) == 6 and all(v["power_state"] == "Running" for v in guests)
        assert sum(v["is_control_domain"] for v in vms.values()) == 3
        # The SDK's own version probe uses per-field getters; xapi sends ints as strings.
        assert session.API_version == "2.21"
        assert x.pool.get_master(list(pools)[0]) == prec["master"]
    finally:
        session.xenapi.session.logout()


def test_slave_answers_host_is_slave_with_master_address(pool):
    slave = pool["hosts"][1]
    with pytest.raises(XenAPI.Failure) as exc:
        login(slave["url"], pool)
    assert exc.value.details == ["HOST_IS_SLAVE", pool["hosts"][0]["address"]]


def test_wrong_password(pool):
    session = XenAPI.Session(pool["hosts"][0]["url"])
    with pytest.raises(XenAPI.Failure) as exc:
        session.xenapi.login_with_password(pool["username"], "not-the-password", "1.0", "t")
    assert exc.value.details[0] == "SESSION_AUTHENTICATION_FAILED"
    assert "not-the-password" not in str(exc.value.details)


def test_event_from(pool):
    session = login(pool["hosts"][0]["url"], pool)
    x = session.xenapi
    first = getattr(x.event, "from")(["host", "vm"], "", 0.0)
    adds = [e for e in first["events"] if e["operation"] == "add"]
    assert len(adds) == len(first["events"]) == 3 + 9  # hosts, guests and control domains
    assert int(first["valid_ref_counts"]["host"]) == 3
    host1 = "OpaqueRef:" + pool["hosts"][1]["uuid"]
    x.host.disable(host1)
    nxt = getattr(x.event, "from")(["host"], first["token"], 5.0)
    mods = [e for e in nxt["events"] if e["ref"] == host1]
    assert mods and mods[-1]["operation"] == "mod" and mods[-1]["snapshot"]["enabled"] is False
    empty = getattr(x.event, "from")(["host"], nxt["token"], 0.1)
    assert empty["events"] == []


def test_session_invalid_makes_the_sdk_log_in_again(pool):
    session = login(pool["hosts"][0]["url"], pool)
    before = session.handle
    # Two master changes restart xapi's role on host 0: its old sessions die.
    control(pool, "/hosts/1/designate")
    control(pool, "/hosts/0/designate")
    assert len(session.xenapi.host.get_all()) == 3
    assert session.handle != before


def test_emergency_transition_through_the_sdk(pool):
    control(pool, "/hosts/0/power-off")
    slave = pool["hosts"][1]
    # A slave of a dead master still names it, as real xapi does...
    with pytest.raises(XenAPI.Failure) as exc:
        login(slave["url"], pool)
    assert exc.value.details[:2] == ["HOST_IS_SLAVE", pool["hosts"][0]["address"]]
    # ...until its toolstack restarts without the master: emergency mode.
    control(pool, "/hosts/1/restart-toolstack")
    with pytest.raises(XenAPI.Failure) as exc:
        login(slave["url"], pool)
    assert exc.value.details[0] == "HOST_STILL_BOOTING"
    local = XenAPI.Session(slave["url"])
    local.slave_local_login_with_password(pool["username"], pool["password"])
    local.xenapi.pool.emergency_transition_to_master()
    local.logout()
    session = login(slave["url"], pool)
    recovered = session.xenapi.pool.recover_slaves()
    assert recovered == ["OpaqueRef:" + pool["hosts"][2]["uuid"]]
