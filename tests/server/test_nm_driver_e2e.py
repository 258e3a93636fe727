"""A slice made real on node managers over TLS: sliver directories, keys, init scripts under
limits, user updates, deletion, replayed tickets, a node manager stopped during Provision."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from geni.minigcf import amapi2  # geni-lib, a test dependency (setup.cfg [dev])
from twisted.internet.threads import blockingCallFromThread

from sfa.aggregate import nm_driver
from sfa.errors import GeniCode
from sfa.nodemanager.localapi import LocalApi
from sfa.nodemanager.store import NodeStore
from sfa.timeutil import format_rfc3339, parse_rfc3339, utcnow
from sfa.trust import ticket as ticket_module
from sfa.trust import xmldsig
from sfa.trust.gid import GID
from sfa.trust.keys import load_private_key, public_key_to_openssh
from sfa.trust.ticket import parse_ticket
from tests.server.nm_site import (
    GENI3,
    NmSite,
    build_deployment,
    node_proxy,
    ok,
    request,
    run_driver,
    start_site,
    stop_site,
)

SLICES = ["exp1", "exp2", "exp3", "exp4", "exp5", "exp6", "exp7"]
LIMITS = "cat /proc/$$/limits > limits.tmp; mv limits.tmp limits.txt"


@pytest.fixture(scope="module")
def site(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[NmSite]:
    deployment, ids, _ = build_deployment(tmp_path_factory.mktemp("nm"), 4, keys, SLICES)
    running = start_site(reactor, deployment, ids, SLICES)
    yield running
    stop_site(reactor, running)


def slice_urn(name: str) -> str:
    return f"urn:publicid:IDN+plc:princeton+slice+{name}"


def node_dir(site: NmSite, node_urn: str) -> Path:
    return site.deployment.nodes_dir / node_urn.rsplit("+", 1)[1]


def slivers_on(site: NmSite, node_urn: str) -> list[str]:
    store = NodeStore(node_dir(site, node_urn) / "db" / "node.sqlite")
    try:
        return [r.sliver_urn for r in store.slivers()]
    finally:
        store.database.close()


def test_slice_on_several_nodes_is_real(site: NmSite) -> None:
    am, creds, urn = site.am(), site.cred("exp1"), slice_urn("exp1")
    allocated = ok(am.Allocate(urn, creds, request(3, LIMITS), {}))
    slivers = {s["geni_sliver_urn"] for s in allocated["geni_slivers"]}
    users = [{"urn": site.ids["alice"].gid.urn, "keys": ["ssh-rsa AAAAB3Nza alice@lab"]}]
    provisioned = ok(am.Provision([urn], creds, {"geni_rspec_version": GENI3,
                                                 "geni_users": users}))
    assert {s["geni_allocation_status"] for s in provisioned["geni_slivers"]} == {
        "geni_provisioned"}
    started = ok(am.PerformOperationalAction([urn], creds, "geni_start", {}))
    assert {s["geni_operational_status"] for s in started} == {"geni_ready"}
    store = site.store()
    placed = {s.urn: s.node_urn for s in store.slivers_of(urn)}
    store.close()
    assert set(placed) == slivers and len(set(placed.values())) == 3
    public_halves = set()
    for sliver, node in placed.items():
        home = node_dir(site, node) / "slivers" / "plc_princeton_exp1"
        assert GID.from_pem((home / "etc" / "slice.gid").read_bytes()).urn == urn
        assert GID.from_pem((home / "etc" / "node.gid").read_bytes()).urn == node
        assert json.loads((home / "etc" / "sliver.json").read_text())["sliver_urn"] == sliver
        ssh = home / "home" / "plc_princeton_exp1" / ".ssh"
        assert "alice@lab" in (ssh / "authorized_keys").read_text()
        private = load_private_key((ssh / "id_rsa").read_bytes())
        public_halves.add(public_key_to_openssh(private.public_key()))
        assert public_key_to_openssh(private.public_key()) in (ssh / "authorized_keys").read_text()
        limits = _limits(_wait_for(home / "home" / "plc_princeton_exp1" / "limits.txt"))
        assert limits["Max address space"] == str(128 * 1024 * 1024)
        assert limits["Max processes"] == "256"
    assert len(public_halves) == 1  # one slice key pair, the same on every node


def _wait_for(path: Path) -> str:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= 2:
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared: the init script did not run")


def _limits(text: str) -> dict[str, str]:
    """/proc/PID/limits as {name: soft limit}."""
    rows = {}
    for line in text.splitlines()[1:]:
        name, soft = line[:26].strip(), line[26:].split()[0]
        rows[name] = soft
    return rows


def provisioned_slice(site: NmSite, name: str, count: int, **options: Any) -> dict[str, str]:
    """Allocate + Provision `count` nodes for slice `name`; sliver URN -> node URN."""
    am, creds, urn = site.am(), site.cred(name), slice_urn(name)
    ok(am.Allocate(urn, creds, request(count), {}))
    users = [{"urn": site.ids["alice"].gid.urn, "keys": ["ssh-rsa AAAAB3Nza first@lab"]}]
    ok(am.Provision([urn], creds, {"geni_rspec_version": GENI3, "geni_users": users,
                                   **options}))
    store = site.store()
    try:
        return {s.urn: s.node_urn for s in store.slivers_of(urn)}
    finally:
        store.close()


def test_keys_update_and_delete(site: NmSite) -> None:
    placed = provisioned_slice(site, "exp2", 2)
    am, creds, urn = site.am(), site.cred("exp2"), slice_urn("exp2")
    node = next(iter(placed.values()))
    local = LocalApi(NodeStore(node_dir(site, node) / "db" / "node.sqlite"))
    assert any("first@lab" in key for key in _all_keys(local.get_keys("plc_princeton_exp2")))
    ok(am.PerformOperationalAction([urn], creds, "geni_start", {}))
    users = [{"urn": site.ids["alice"].gid.urn, "keys": ["ssh-rsa AAAAB3Nza second@lab"]}]
    ok(am.PerformOperationalAction([urn], creds, "geni_update_users", {"geni_users": users}))
    keys = _all_keys(local.get_keys("plc_princeton_exp2"))
    assert any("second@lab" in k for k in keys) and not any("first@lab" in k for k in keys)
    ok(am.Delete([urn], creds, {}))
    for sliver, node in placed.items():
        assert sliver not in slivers_on(site, node)
        assert not (node_dir(site, node) / "slivers" / "plc_princeton_exp2").exists()


def _all_keys(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [k for v in value.values() for k in _all_keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in _all_keys(v)]
    return []


def test_describe_gives_tickets_and_replay_is_refused(site: NmSite) -> None:
    placed = provisioned_slice(site, "exp3", 2)
    am, creds, urn = site.am(), site.cred("exp3"), slice_urn("exp3")
    described = ok(am.Describe([urn], creds, {"geni_rspec_version": GENI3,
                                               "sfa_tickets": True}))
    tickets = {t["sliver_urn"]: t for t in described["sfa_tickets"]}
    assert set(tickets) == set(placed)
    first, second = sorted(tickets.values(), key=lambda t: t["node_urn"])
    # both signed as one batch; each document stands alone for the user to redeem
    assert {parse_ticket(t["ticket"]).batch_size for t in (first, second)} == {2}
    other = site.nodes[second["node_urn"]]
    node = node_proxy(other.url, site.root_file, site.ids["alice"])
    before = slivers_on(site, second["node_urn"])
    # replay at another node: refused, nothing created there
    reply = node.RedeemTicket(first["ticket"], {"slice_key": first["slice_key"]})
    assert reply["code"]["geni_code"] in (GeniCode.CREDENTIAL_MISMATCH, GeniCode.FORBIDDEN)
    assert slivers_on(site, second["node_urn"]) == before
    # the same ticket again at its own node: the same lease, no second sliver
    again = node.RedeemTicket(second["ticket"], {"slice_key": second["slice_key"]})
    assert again["code"]["geni_code"] == 0 and again["value"]["sliver_urn"] == second[
        "sliver_urn"]
    assert slivers_on(site, second["node_urn"]) == before
    ok(am.Delete([urn], creds, {}))
    # once deleted, the old ticket does not bring the sliver back
    replayed = node.RedeemTicket(second["ticket"], {"slice_key": second["slice_key"]})
    assert replayed["code"]["geni_code"] == GeniCode.REFUSED
    assert second["sliver_urn"] not in slivers_on(site, second["node_urn"])


def test_node_manager_stopped_during_provision(reactor: Any, site: NmSite) -> None:
    am, creds, urn = site.am(), site.cred("exp4"), slice_urn("exp4")
    allocated = ok(am.Allocate(urn, creds, request(4), {}))
    assert len(allocated["geni_slivers"]) == 4
    store = site.store()
    placed = {s.urn: s.node_urn for s in store.slivers_of(urn)}
    store.close()
    victim = sorted(placed.values())[0]
    blockingCallFromThread(reactor, site.nodes[victim].stop)
    assert site.driver is not None  # a dead node's connections die with it
    blockingCallFromThread(reactor, site.driver.client.close)
    try:
        refused = am.Provision([urn], creds, {"geni_rspec_version": GENI3})
        assert refused["code"]["geni_code"] == GeniCode.ERROR
        for sliver, node in placed.items():  # without best effort: nothing half-done
            assert sliver not in slivers_on(site, node)
        best = ok(am.Provision([urn], creds, {"geni_rspec_version": GENI3,
                                              "geni_best_effort": True}))
        states = {s["geni_sliver_urn"]: s for s in best["geni_slivers"]}
        for sliver, node in placed.items():
            if node == victim:
                assert states[sliver]["geni_allocation_status"] == "geni_allocated"
                assert "did not answer" in states[sliver]["geni_error"]
            else:
                state = states[sliver]
                assert state["geni_allocation_status"] == "geni_provisioned", state
                assert sliver in slivers_on(site, node)
        store = site.store()
        assert not next(n for n in store.nodes() if n.urn == victim).up  # marked down
        store.close()
    finally:
        _restart_node(reactor, site, victim)
    assert site.driver is not None
    report = run_driver(reactor, site.driver.check_health())
    assert victim in report.up
    store = site.store()
    assert next(n for n in store.nodes() if n.urn == victim).up  # back in service
    store.close()
    retried = ok(am.Provision([urn], creds, {"geni_rspec_version": GENI3}))
    assert {s["geni_allocation_status"] for s in retried["geni_slivers"]} == {
        "geni_provisioned"}
    ok(am.Delete([urn], creds, {}))


def _restart_node(reactor: Any, site: NmSite, node_urn: str) -> None:
    from sfa.nodemanager.nodedir import open_node  # noqa: PLC0415
    from sfa.server.nm_api import start_node_manager  # noqa: PLC0415

    old = site.nodes[node_urn]
    port = int(old.url.rstrip("/").rsplit(":", 1)[1])
    old.nm.store.database.close()

    def start() -> Any:
        nm = open_node(node_dir(site, node_urn))
        nm.recover()
        return start_node_manager(reactor, nm, host="127.0.0.1", port=port,
                                  limits=site.deployment.config.limits)

    site.nodes[node_urn] = blockingCallFromThread(reactor, start)


def _node_expiry(site: NmSite, node_urn: str, sliver_urn: str) -> datetime:
    store = NodeStore(node_dir(site, node_urn) / "db" / "node.sqlite")
    try:
        (record,) = [r for r in store.slivers() if r.sliver_urn == sliver_urn]
        return record.expires
    finally:
        store.database.close()


def test_renew_may_shorten_down_to_the_node_leases(site: NmSite) -> None:
    """Issue 12 item 2. AM API v3 Renew(urns, creds, time, options) to an earlier time than the
    current expiry, as omni `renew` and the acceptance suite do; then geni-lib 0.9.9.4's v2
    `amapi2.renewsliver` (RenewSliver(slice_urn, [cred strings], "%Y-%m-%dT%H:%M:%S+00:00",
    {})), shorter again. Each sets the expiry, at the aggregate and on the node's lease; a
    time already past is still refused and changes nothing."""
    (sliver, node), = provisioned_slice(site, "exp5", 1).items()
    am, creds, urn = site.am(), site.cred("exp5"), slice_urn("exp5")
    now = utcnow().replace(microsecond=0)
    ok(am.Renew([urn], creds, format_rfc3339(now + timedelta(days=5)), {}))
    shorter = now + timedelta(hours=3)
    (renewed,) = ok(am.Renew([urn], creds, format_rfc3339(shorter), {}))
    assert parse_rfc3339(renewed["geni_expires"]) == shorter
    assert _node_expiry(site, node, sliver) == shorter

    alice = site.ids["alice"]
    v2_url = site.aggregate.url + "am/2"
    shortest = now + timedelta(hours=1)
    reply = amapi2.renewsliver(v2_url, str(site.root_file), str(alice.cert_file),
                               str(alice.key_file), [site.creds["exp5"]], urn, shortest)
    assert reply["code"]["geni_code"] == 0, reply["output"]
    assert _node_expiry(site, node, sliver) == shortest
    store = site.store()
    try:
        assert [s.expires for s in store.slivers_of(urn)] == [shortest]
    finally:
        store.close()

    past = am.Renew([urn], creds, format_rfc3339(now - timedelta(minutes=1)), {})
    assert past["code"]["geni_code"] == GeniCode.OUTOFRANGE
    assert _node_expiry(site, node, sliver) == shortest


@pytest.fixture
def signatures(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every XML signature made in this process (the aggregate's and the node managers'),
    counted by the tag of the element signed."""
    counted: Counter[str] = Counter()
    real = xmldsig.sign_element

    def counting(element: Any, *args: Any, **kwargs: Any) -> Any:
        counted[element.tag] += 1
        return real(element, *args, **kwargs)

    monkeypatch.setattr(xmldsig, "sign_element", counting)
    monkeypatch.setattr(ticket_module, "sign_element", counting)
    return counted


@pytest.mark.parametrize(("name", "chunk"), [("exp6", 3), ("exp7", nm_driver.SIGNING_CHUNK)])
def test_provision_signs_one_batch_per_chunk(site: NmSite, signatures: Counter[str],
                                             monkeypatch: pytest.MonkeyPatch, name: str,
                                             chunk: int) -> None:
    """Issue 16: Provision of N slivers makes ceil(N / SIGNING_CHUNK) RSA signatures for its
    tickets, one per batch; each node redeems its batch ticket; Renew signs in batches too."""
    monkeypatch.setattr(nm_driver, "SIGNING_CHUNK", chunk)
    placed = provisioned_slice(site, name, 4)
    assert len(set(placed.values())) == 4
    batches = math.ceil(4 / chunk)
    assert signatures["ticket-batch"] == batches and signatures["ticket"] == 0
    assert signatures["lease"] == 4  # the nodes' receipts, one each
    assert site.driver is not None
    stored = site.driver.book.tickets(list(placed))
    sizes = sorted(parse_ticket(t.ticket).batch_size for t in stored.values())
    assert sizes == sorted([min(chunk, 4 - start) for start in range(0, 4, chunk)
                            for _ in range(min(chunk, 4 - start))])
    for sliver, node in placed.items():
        assert sliver in slivers_on(site, node)
    am, creds, urn = site.am(), site.cred(name), slice_urn(name)
    later = utcnow().replace(microsecond=0) + timedelta(days=2)
    ok(am.Renew([urn], creds, format_rfc3339(later), {}))
    assert signatures["ticket-batch"] == 2 * batches and signatures["ticket"] == 0
    for sliver, node in placed.items():
        assert _node_expiry(site, node, sliver) == later
    ok(am.Delete([urn], creds, {}))
