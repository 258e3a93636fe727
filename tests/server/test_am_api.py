"""The aggregate served for real over TLS, with credentials issued by the real registry.

Refusals check the GENI code in the envelope (never a fault), that nothing changed in the
aggregate's database, and that the server still answers.
"""

from __future__ import annotations

import threading
import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.threads import blockingCallFromThread

from sfa.aggregate.inventory import generate_nodes
from sfa.aggregate.lifetimes import LifetimePolicy
from sfa.aggregate.memory_driver import MemoryDriver
from sfa.aggregate.store import AggregateStore
from sfa.cli.admin import open_admin
from sfa.deploy.layout import Deployment, init_deployment
from sfa.errors import GeniCode
from sfa.rspecs.compress import decompress
from sfa.rspecs.reader import read_rspec
from sfa.server.am_api import (
    AGGREGATE_DB,
    AggregateService,
    open_aggregate,
    start_aggregate_service,
)
from sfa.server.app import start_registry_in_threads
from sfa.server.listener import RunningService
from sfa.timeutil import format_rfc3339, utcnow
from sfa.trust.gid import GID
from sfa.trust.keys import public_key_to_openssh
from tests.server.conftest import Identity, proxy, write_identity

SLICES = [f"urn:publicid:IDN+plc:princeton+slice+exp{i}" for i in range(1, 5)]
NODE1 = "urn:publicid:IDN+plc+node+node1"
GENI3 = {"type": "GENI", "version": "3"}


def request(*nodes: str) -> str:
    return ('<rspec xmlns="http://www.geni.net/resources/rspec/3" type="request">'
            + "".join(nodes) + "</rspec>")


@dataclass
class AmSite:
    deployment: Deployment
    registry: RunningService
    aggregate: AggregateService
    driver: MemoryDriver
    ids: dict[str, Identity]
    creds: dict[str, str]

    @property
    def root_file(self) -> Path:
        return self.deployment.trusted_roots_dir / "plc.gid"

    def am(self, who: str | None = "alice", version: int = 3, path: str | None = None) -> Any:
        suffix = path if path is not None else f"am/{version}"
        return proxy(self.aggregate.url + suffix, self.root_file,
                     self.ids[who] if who else None)

    def cred(self, name: str) -> list[dict[str, Any]]:
        """A v3 credential list the way geni-lib sends it: Binary value, int version."""
        value = xmlrpc.client.Binary(self.creds[name].encode())
        return [{"geni_type": "geni_sfa", "geni_version": 3, "geni_value": value}]

    def dump(self) -> Any:
        store = AggregateStore(self.deployment.db_dir / AGGREGATE_DB)
        try:
            return store.database.dump()
        finally:
            store.close()


def _start_aggregate(reactor: Any, deployment: Deployment, driver: MemoryDriver,
                     lifetimes: LifetimePolicy | None = None) -> AggregateService:
    def start() -> AggregateService:
        v3 = open_aggregate(deployment, reactor, driver=driver, lifetimes=lifetimes)
        identity = deployment.service_identity("aggregate")
        return start_aggregate_service(
            reactor, v3, gid=identity.gid, key=identity.key, host="127.0.0.1", port=0,
            limits=deployment.config.limits, reap_ceiling=timedelta(seconds=0.2))

    return blockingCallFromThread(reactor, start)


def _start_registry(reactor: Any, deployment: Deployment) -> RunningService:
    return blockingCallFromThread(reactor, lambda: start_registry_in_threads(
        reactor, deployment, host="127.0.0.1", port=0))


@pytest.fixture(scope="module")
def site(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AmSite]:
    """plc with plc.princeton, users alice and bob, slices exp1..exp4 (alice's), 8 nodes."""
    base = tmp_path_factory.mktemp("aggregate")
    deployment = init_deployment(base / "plc", authority="plc", registry_port=0, am_port=0)
    pi_key, alice_key, bob_key, _ = keys
    admin = open_admin(deployment)
    try:
        def add(hrn: str, key: Any) -> GID:
            new = admin.admin_add_user(hrn, pubkey=public_key_to_openssh(key))
            return GID.from_pem(new.record.gid or "")

        pi = add("plc.pi", pi_key)
        admin.admin_add_authority("plc.princeton", pis=["plc.pi"])
        alice, bob = add("plc.alice", alice_key), add("plc.bob", bob_key)
        for urn in SLICES:
            admin.admin_add_slice("plc.princeton." + urn.rsplit("+", 1)[1], ["plc.alice"])
    finally:
        admin.close()
    store = AggregateStore(deployment.db_dir / AGGREGATE_DB)
    store.upsert_nodes(generate_nodes("plc", 8, sites=4, capacity=2))
    store.close()
    ids = {name: write_identity(base / "ids", name, gid, key)
           for name, gid, key in (("pi", pi, pi_key), ("alice", alice, alice_key),
                                  ("bob", bob, bob_key))}
    registry = _start_registry(reactor, deployment)
    driver = MemoryDriver()
    running = AmSite(deployment, registry, _start_aggregate(reactor, deployment, driver),
                     driver, ids, {})
    reg = {who: proxy(registry.url, running.root_file, ids[who]) for who in ids}
    for who, identity in ids.items():
        running.creds[who] = reg[who].GetSelfCredential(identity.gid.to_pem(), f"plc.{who}",
                                                        "user")
    for urn in SLICES:
        name = urn.rsplit("+", 1)[1]
        running.creds[name] = reg["alice"].GetCredential(
            [running.creds["alice"]], f"plc.princeton.{name}", "slice")
    yield running
    blockingCallFromThread(reactor, running.aggregate.stop)
    blockingCallFromThread(reactor, registry.stop)


def ok(reply: dict[str, Any]) -> Any:
    assert reply["code"]["geni_code"] == 0, reply["output"]
    assert reply["code"]["am_type"] == "sfa"
    return reply["value"]


def refused(site: AmSite, reply_of: Any, code: GeniCode) -> str:
    """The call answers `code` in the envelope, nothing changed, the server still answers."""
    before = site.dump()
    reply = reply_of()
    assert reply["code"]["geni_code"] == code, reply["output"]
    assert reply["value"] == "" and reply["output"] and "Traceback" not in reply["output"]
    assert site.dump() == before
    assert ok(site.am(None).GetVersion())["geni_api"] == 3
    return str(reply["output"])


def test_get_version_anonymous_and_both_endpoints(site: AmSite) -> None:
    reply = site.am(None).GetVersion()
    version = ok(reply)
    assert reply["geni_api"] == 3 and version["geni_api"] == 3
    assert type(version["geni_single_allocation"]) is int
    base = site.aggregate.url.rstrip("/")
    assert version["geni_api_versions"] == {"2": f"{base}/am/2", "3": f"{base}/am/3"}
    assert ok(site.am(None, path="").GetVersion())["geni_api"] == 3
    v2 = site.am(None, version=2).GetVersion()
    assert v2["geni_api"] == 2
    with pytest.raises(xmlrpc.client.ProtocolError):
        site.am(None, path="elsewhere").GetVersion()


def test_v3_lifecycle(site: AmSite) -> None:
    am, creds, slice_urn = site.am(), site.cred("exp1"), SLICES[0]
    ad = ok(am.ListResources(creds, {"geni_rspec_version": GENI3, "geni_compressed": True}))
    assert len(read_rspec(decompress(ad)).nodes) == 8
    allocated = ok(am.Allocate(slice_urn, creds, request(
        f'<node client_id="a" component_id="{NODE1}"/>', '<node client_id="b"/>'), {}))
    assert {s["geni_allocation_status"] for s in allocated["geni_slivers"]} == {
        "geni_allocated"}
    users = [{"urn": site.ids["alice"].gid.urn, "keys": ["ssh-rsa AAAA alice"]}]
    provisioned = ok(am.Provision([slice_urn], creds, {"geni_rspec_version": GENI3,
                                                       "geni_users": users}))
    login = read_rspec(provisioned["geni_rspec"]).nodes[0].services.logins[0]
    assert isinstance(login.port, int)
    ok(am.PerformOperationalAction([slice_urn], creds, "geni_start", {}))
    status = ok(am.Status([slice_urn], creds, {}))
    assert {s["geni_operational_status"] for s in status["geni_slivers"]} == {"geni_ready"}
    described = ok(am.Describe([slice_urn], creds, {"geni_rspec_version": GENI3}))
    clients = {n.client_id: n for n in read_rspec(described["geni_rspec"]).nodes}
    assert clients["a"].component_id == NODE1 and clients["b"].sliver_id
    when = format_rfc3339(utcnow() + timedelta(days=3))
    renewed = ok(am.Renew([slice_urn], creds, when, {}))
    assert {s["geni_expires"] for s in renewed} == {when}
    ok(am.PerformOperationalAction([slice_urn], creds, "geni_stop", {}))
    deleted = ok(am.Delete([slice_urn], creds, {}))
    assert {d["geni_allocation_status"] for d in deleted} == {"geni_unallocated"}
    empty = ok(am.Describe([slice_urn], creds, {"geni_rspec_version": GENI3}))
    assert empty["geni_slivers"] == []


def test_v2_lifecycle(site: AmSite) -> None:
    am, creds, slice_urn = site.am(version=2), [site.creds["exp2"]], SLICES[1]
    users = [{"urn": site.ids["alice"].gid.urn, "keys": ["ssh-rsa AAAA alice"]}]
    manifest = ok(am.CreateSliver(slice_urn, creds, request('<node client_id="v2"/>'), users,
                                  {}))
    assert read_rspec(manifest).nodes[0].client_id == "v2"
    status = ok(am.SliverStatus(slice_urn, creds, {}))
    assert status["geni_status"] == "ready" and len(status["geni_resources"]) == 1
    listed = ok(am.ListResources(creds, {"geni_rspec_version": GENI3,
                                         "geni_slice_urn": slice_urn}))
    assert read_rspec(listed).type == "manifest"
    when = format_rfc3339(utcnow() + timedelta(days=2))
    assert ok(am.RenewSliver(slice_urn, creds, when, {})) is True
    assert ok(am.DeleteSliver(slice_urn, creds, {})) is True
    refused(site, lambda: am.SliverStatus(slice_urn, creds, {}), GeniCode.SEARCHFAILED)


def test_refusals_in_the_envelope(site: AmSite) -> None:
    am, creds, slice_urn = site.am(), site.cred("exp3"), SLICES[2]
    ok(am.Allocate(slice_urn, creds, request('<node client_id="r"/>'), {}))
    refused(site, lambda: am.ListResources(creds, {}), GeniCode.BADARGS)
    refused(site, lambda: am.ListResources(
        creds, {"geni_rspec_version": {"type": "GENI", "version": "7"}}), GeniCode.BADVERSION)
    refused(site, lambda: am.ListResources(["garbage"], {"geni_rspec_version": GENI3}),
            GeniCode.CREDENTIAL_INVALID)
    refused(site, lambda: am.Allocate(slice_urn, creds, "", {}), GeniCode.BADARGS)
    refused(site, lambda: am.Allocate(slice_urn, creds, "<rspec", {}), GeniCode.BADARGS)
    refused(site, lambda: am.Allocate(slice_urn, creds, request('<node client_id="m"/>')
                                      .replace('"request"', '"manifest"'), {}), GeniCode.BADARGS)
    refused(site, lambda: am.PerformOperationalAction([slice_urn], creds, "geni_dance", {}),
            GeniCode.UNSUPPORTED)
    refused(site, lambda: am.PerformOperationalAction([slice_urn], creds, "geni_start", {}),
            GeniCode.UNSUPPORTED)
    refused(site, lambda: am.Describe([NODE1], creds, {"geni_rspec_version": GENI3}),
            GeniCode.BADARGS)
    refused(site, lambda: am.Describe(["urn:publicid:IDN+plc+sliver+feedface"], creds,
                                      {"geni_rspec_version": GENI3}), GeniCode.SEARCHFAILED)
    refused(site, lambda: am.Delete([slice_urn], [site.creds["alice"]], {}),
            GeniCode.CREDENTIAL_MISMATCH)
    refused(site, lambda: am.Delete([slice_urn], site.cred("exp4"), {}),
            GeniCode.CREDENTIAL_MISMATCH)
    refused(site, lambda: site.am("bob").Delete([slice_urn], creds, {}),
            GeniCode.CREDENTIAL_MISMATCH)
    far = format_rfc3339(utcnow() + timedelta(days=400))
    refused(site, lambda: am.Renew([slice_urn], creds, far, {}), GeniCode.OUTOFRANGE)
    ok(am.Delete([slice_urn], creds, {}))


def test_concurrent_allocates_of_one_exclusive_node(site: AmSite) -> None:
    rspec = request(f'<node client_id="x" component_id="{NODE1}" exclusive="true"/>')
    barrier = threading.Barrier(len(SLICES))
    replies: dict[str, Any] = {}

    def race(urn: str) -> None:
        am = site.am()
        creds = site.cred(urn.rsplit("+", 1)[1])
        barrier.wait()
        replies[urn] = am.Allocate(urn, creds, rspec, {})

    threads = [threading.Thread(target=race, args=(urn,)) for urn in SLICES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    codes = sorted(r["code"]["geni_code"] for r in replies.values())
    assert codes == [0] + [GeniCode.INSUFFICIENT_NODES] * (len(SLICES) - 1)
    winner = next(u for u, r in replies.items() if r["code"]["geni_code"] == 0)
    claims = site.dump()["claims"]
    assert {c["node_urn"] for c in claims} == {NODE1} and len(claims) == 2
    ok(site.am().Delete([winner], site.cred(winner.rsplit("+", 1)[1]), {}))


def test_restart_keeps_slices_and_slivers(site: AmSite, reactor: Any) -> None:
    am, creds, slice_urn = site.am(), site.cred("exp4"), SLICES[3]
    ok(am.Allocate(slice_urn, creds, request('<node client_id="p"/>'), {}))
    ok(am.Provision([slice_urn], creds, {"geni_rspec_version": GENI3}))
    before = ok(am.Describe([slice_urn], creds, {"geni_rspec_version": GENI3}))
    blockingCallFromThread(reactor, site.aggregate.stop)
    site.aggregate = _start_aggregate(reactor, site.deployment, site.driver)
    after = ok(site.am().Describe([slice_urn], creds, {"geni_rspec_version": GENI3}))
    assert after["geni_slivers"] == before["geni_slivers"]
    ok(site.am().Delete([slice_urn], creds, {}))


def test_expiry_without_calls(site: AmSite, reactor: Any) -> None:
    blockingCallFromThread(reactor, site.aggregate.stop)
    site.aggregate = _start_aggregate(reactor, site.deployment, site.driver,
                                      LifetimePolicy(allocated=timedelta(seconds=1)))
    try:
        reaped = threading.Event()
        site.aggregate.timer.reaper.listeners.append(lambda _: reaped.set())
        creds, slice_urn = site.cred("exp1"), SLICES[0]
        allocated = ok(site.am().Allocate(slice_urn, creds, request('<node client_id="e"/>'),
                                          {}))
        urn = allocated["geni_slivers"][0]["geni_sliver_urn"]
        assert urn in site.driver.slivers
        assert reaped.wait(10), "the reaper did not run"
        assert site.dump()["slivers"] == [] and urn not in site.driver.slivers
    finally:
        blockingCallFromThread(reactor, site.aggregate.stop)
        site.aggregate = _start_aggregate(reactor, site.deployment, site.driver)
