"""spec/security.md item 28 over TLS: a ticket for a sliver the aggregate deleted is refused at
the node (revocation by serial), and a node that was down during the Delete is told once it is
back, by the periodic reconciliation, without restarting the aggregate."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.threads import blockingCallFromThread

from sfa.aggregate.nm_book import NodeManagerBook
from sfa.aggregate.reaper import reap_expired
from sfa.deploy.layout import Deployment
from sfa.errors import GeniCode
from sfa.nodemanager.admission import Thresholds
from sfa.nodemanager.manager import NodeManager
from sfa.nodemanager.store import NodeStore
from sfa.timeutil import parse_rfc3339
from tests.security.conftest import World, ok, refused_by_node, request, slice_urn
from tests.server.conftest import write_identity
from tests.server.nm_site import GENI3, NmSite, build_deployment, node_proxy, start_site, stop_site
from tests.server.test_nm_driver_e2e import _restart_node

EXP3 = slice_urn("exp3")
ONE_NODE = request('<node client_id="r" exclusive="false"/>')
DEADLINE = 60.0  # seconds, for a loaded machine; the reconciliation runs every second


@contextmanager
def overloaded(managers: list[NodeManager]) -> Iterator[None]:
    """Every node refuses new tickets (load above a negative ceiling), as a busy node does."""
    saved = [nm.admission.thresholds for nm in managers]
    for nm in managers:
        nm.admission.thresholds = Thresholds(max_load=-1.0)
    try:
        yield
    finally:
        for nm, thresholds in zip(managers, saved, strict=True):
            nm.admission.thresholds = thresholds


def only_ticket(am: Any, urn: str, creds: list[dict[str, Any]]) -> dict[str, str]:
    described = ok(am.Describe([urn], creds, {"geni_rspec_version": GENI3, "sfa_tickets": True}))
    (ticket,) = described["sfa_tickets"]
    return dict(ticket)


def test_28_ticket_refused_at_first_then_deleted_is_revoked(world: World) -> None:
    am, creds = world.am(), world.cred("exp3")
    ok(am.Allocate(EXP3, creds, ONE_NODE, {}))
    with overloaded([service.nm for service in world.site.nodes.values()]):
        provisioned = ok(am.Provision([EXP3], creds, {"geni_rspec_version": GENI3,
                                                      "geni_best_effort": True}))
    (sliver,) = provisioned["geni_slivers"]
    assert sliver["geni_allocation_status"] == "geni_allocated"
    assert "REFUSED: the node is too busy" in sliver["geni_error"]  # the node's own message
    ticket = only_ticket(am, EXP3, creds)
    ok(am.Delete([EXP3], creds, {}))
    node = world.node(ticket["node_urn"])
    output = refused_by_node(
        world, lambda: node.RedeemTicket(ticket["ticket"], {"slice_key": ticket["slice_key"]}),
        GeniCode.REFUSED)
    assert "revoked" in output
    assert not ok(node.ListSlivers([]))


def test_28_ticket_of_a_lapsed_allocation_is_revoked_by_the_reaper(world: World) -> None:
    am, creds, urn = world.am(), world.cred("exp2"), slice_urn("exp2")
    (allocated,) = ok(am.Allocate(urn, creds, ONE_NODE, {}))["geni_slivers"]
    with overloaded([service.nm for service in world.site.nodes.values()]):
        ok(am.Provision([urn], creds, {"geni_rspec_version": GENI3, "geni_best_effort": True}))
    ticket = only_ticket(am, urn, creds)
    reaper = world.site.aggregate.timer.reaper
    lapsed = parse_rfc3339(allocated["geni_expires"]) + timedelta(seconds=1)
    reaped = reap_expired(reaper.store, reaper.driver, reaper.run, lapsed)
    assert [s.urn for s in reaped] == [ticket["sliver_urn"]]
    node = world.node(ticket["node_urn"])
    output = refused_by_node(
        world, lambda: node.RedeemTicket(ticket["ticket"], {"slice_key": ticket["slice_key"]}),
        GeniCode.REFUSED)
    assert "revoked" in output


def test_28_only_an_aggregate_revokes(world: World, tmp_path: Path) -> None:
    node_urn = next(iter(world.site.nodes))
    identity = world.deployment.service_identity("aggregate")
    aggregate = node_proxy(world.site.nodes[node_urn].url, world.root_file,
                           write_identity(tmp_path, "aggregate", identity.gid, identity.key))
    node = world.node(node_urn)  # alice: a user, not an authority's service
    revocation = {"serial": "x", "sliver_urn": "urn:publicid:IDN+plc+sliver+x",
                  "expires": "2099-01-01T00:00:00Z"}
    refused_by_node(world, lambda: node.RevokeTickets([revocation]), GeniCode.FORBIDDEN)
    bad_arguments: list[object] = [
        [{"serial": ""}], "not a list", [{**revocation, "expires": "soon"}],
        [{**revocation, "sliver_urn": "urn:publicid:IDN+plc+user+alice"}]]
    for bad in bad_arguments:
        refused_by_node(world, functools.partial(aggregate.RevokeTickets, bad), GeniCode.BADARGS)


# --- a node down during Delete --------------------------------------------------------------


@pytest.fixture(scope="module")
def site(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NmSite]:
    deployment, ids, _ = build_deployment(tmp_path_factory.mktemp("revoke"), 1, keys, ["gone"])
    config = deployment.config
    every_second = replace(config.aggregate, reconcile_interval_seconds=1)
    deployment = Deployment(deployment.directory, replace(config, aggregate=every_second))
    running = start_site(reactor, deployment, ids, ["gone"])
    yield running
    stop_site(reactor, running)


def test_28_node_down_during_delete_is_told_when_back(reactor: Any, site: NmSite) -> None:
    urn, creds, am = slice_urn("gone"), site.cred("gone"), site.am()
    ok(am.Allocate(urn, creds, ONE_NODE, {}))
    ok(am.Provision([urn], creds, {"geni_rspec_version": GENI3}))
    ticket = only_ticket(am, urn, creds)
    node_urn = ticket["node_urn"]
    assert _node_slivers(site, node_urn) == [ticket["sliver_urn"]]
    blockingCallFromThread(reactor, site.nodes[node_urn].stop)
    assert site.driver is not None  # a stopped node's connections die with it
    blockingCallFromThread(reactor, site.driver.client.close)
    try:
        deleted = ok(am.Delete([urn], creds, {}))
        assert [s["geni_error"] for s in deleted] == [""]
        assert ok(am.Status([urn], creds, {}))["geni_slivers"] == []
        assert [r.sliver_urn for r in _pending(site)] == [ticket["sliver_urn"]]
    finally:
        _restart_node(reactor, site, node_urn)
    _wait_for(lambda: not _pending(site), "the revocation to be acknowledged")
    assert _node_slivers(site, node_urn) == []  # the node destroyed the deleted sliver
    slivers_dir = site.nodes[node_urn].nm.backend.slivers_dir  # type: ignore[attr-defined]
    assert list(slivers_dir.iterdir()) == []
    node = node_proxy(site.nodes[node_urn].url, site.root_file, site.ids["alice"])
    refused = node.RedeemTicket(ticket["ticket"], {"slice_key": ticket["slice_key"]})
    assert refused["code"]["geni_code"] == GeniCode.REFUSED, refused
    assert "revoked" in refused["output"]
    assert _node_slivers(site, node_urn) == []


def _pending(site: NmSite) -> list[Any]:
    store = site.store()
    try:
        return NodeManagerBook(store.database).pending_revocations("1970-01-01T00:00:00Z")
    finally:
        store.close()


def _node_slivers(site: NmSite, node_urn: str) -> list[str]:
    store = NodeStore(site.nodes[node_urn].nm.store.database.path)
    try:
        return [r.sliver_urn for r in store.slivers()]
    finally:
        store.close()


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {DEADLINE:g} s for {what}")
        time.sleep(0.1)
