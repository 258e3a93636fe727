"""ple's real node managers redeem tickets from ple's aggregate for a slice named under plc:
the sliver gets slice.gid from plc and node.gid from ple."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from twisted.internet.threads import blockingCallFromThread

from sfa.aggregate.store import AggregateStore
from sfa.cli.admin import open_admin
from sfa.deploy.layout import Deployment, init_deployment
from sfa.server.am_api import AGGREGATE_DB, AggregateService, start_deployment_aggregate
from sfa.server.app import Served, start_node_managers
from sfa.server.listener import RunningService
from sfa.trust.gid import GID
from sfa.trust.keys import public_key_to_openssh
from sfa.xrn import hrn_to_urn
from tests.federation.conftest import User, make_user, sfa, value_of, wrap
from tests.server.conftest import wait_deferred
from tests.server.test_am_api import _start_registry

GENI3 = {"type": "GENI", "version": "3"}
SLICE = "plc.nmslice"


@dataclass
class NodeWorld:
    plc: Deployment
    ple: Deployment
    registry: RunningService
    aggregate: AggregateService
    nodes: dict[str, Served]
    alice: User


def _open_up(base: Path) -> None:
    """Slivers may run under their own uids (when tests run as root): let them traverse."""
    for parent in (base, *base.parents):
        if parent == Path(tempfile.gettempdir()):
            break
        parent.chmod(parent.stat().st_mode | 0o011)


@pytest.fixture(scope="module")
def world(reactor: Any, user_keys: list[RSAPrivateKey],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeWorld]:
    base = tmp_path_factory.mktemp("fed-nm")
    _open_up(base)
    plc = init_deployment(base / "plc", authority="plc", registry_port=0, am_port=0)
    admin = open_admin(plc)
    try:
        admin.admin_add_user("plc.alice", pubkey=public_key_to_openssh(user_keys[0]))
        admin.admin_add_slice(SLICE, ["plc.alice"])
    finally:
        admin.close()
    ple = init_deployment(base / "ple", authority="ple", registry_port=0, am_port=0,
                          nm_base_port=0, nodes=2)
    fast = replace(ple.config.aggregate, node_timeout_seconds=10, health_interval_seconds=3600)
    ple = Deployment(ple.directory, replace(ple.config, aggregate=fast))
    registry = _start_registry(reactor, plc)
    nodes = blockingCallFromThread(reactor, start_node_managers, reactor, ple,
                                   lambda line: None)
    aggregate = wait_deferred(reactor, lambda: start_deployment_aggregate(reactor, ple))
    # peer while running: ple (aggregate and node managers share trusted_roots/) trusts plc
    assert sfa("admin", ple.directory, "trust", "add",
               plc.trusted_roots_dir / "plc.gid").exit_code == 0
    assert sfa("admin", plc.directory, "trust", "add",
               ple.trusted_roots_dir / "ple.gid").exit_code == 0
    roots = [plc.trusted_roots_dir / "plc.gid", ple.trusted_roots_dir / "ple.gid"]
    alice = make_user(base, plc, "plc.alice", user_keys[0], roots)
    yield NodeWorld(plc, ple, registry, aggregate, nodes, alice)
    blockingCallFromThread(reactor, aggregate.stop)
    for service in nodes.values():
        blockingCallFromThread(reactor, service.stop)
    blockingCallFromThread(reactor, registry.stop)


def test_ple_nodes_run_a_plc_slice_with_plc_slice_gid_and_ple_node_gid(
        world: NodeWorld) -> None:
    alice, url = world.alice, world.aggregate.url
    cert = alice.gid.to_pem(include_chain=True)
    own = alice.call(world.registry.url, "GetSelfCredential", cert, alice.urn, "user")
    slice_urn = hrn_to_urn(SLICE, "slice")
    creds = [wrap(alice.call(world.registry.url, "GetCredential", [own], slice_urn, "slice"))]
    rspec = ('<rspec xmlns="http://www.geni.net/resources/rspec/3" type="request">'
             '<node client_id="a" exclusive="false"/><node client_id="b" exclusive="false"/>'
             "</rspec>")
    value_of(alice.call(url, "Allocate", slice_urn, creds, rspec, {}))
    users = [{"urn": alice.urn, "keys": [public_key_to_openssh(alice.key.public_key())]}]
    provisioned = value_of(alice.call(url, "Provision", [slice_urn], creds,
                                      {"geni_rspec_version": GENI3, "geni_users": users}))
    assert {s["geni_allocation_status"] for s in provisioned["geni_slivers"]} == {
        "geni_provisioned"}, provisioned
    started = value_of(alice.call(url, "PerformOperationalAction", [slice_urn], creds,
                                  "geni_start", {}))
    assert {s["geni_operational_status"] for s in started} == {"geni_ready"}
    store = AggregateStore(world.ple.db_dir / AGGREGATE_DB)
    try:
        placed = {s.node_urn for s in store.slivers_of(slice_urn)}
    finally:
        store.close()
    assert len(placed) == 2
    for node_urn in placed:
        etc = world.ple.nodes_dir / node_urn.rsplit("+", 1)[1] / "slivers" / "plc_nmslice" / "etc"
        slice_gid = GID.from_pem((etc / "slice.gid").read_bytes())
        node_gid = GID.from_pem((etc / "node.gid").read_bytes())
        assert slice_gid.urn == slice_urn and slice_gid.chain[-1].subject == \
            world.plc.root_authority().gid.certificate.subject
        assert node_gid.urn == node_urn and node_urn.startswith("urn:publicid:IDN+ple")
        assert node_gid.chain[-1].subject == world.ple.root_authority().gid.certificate.subject
    value_of(alice.call(url, "Delete", [slice_urn], creds, {}))
    for node_urn in placed:
        node_dir = world.ple.nodes_dir / node_urn.rsplit("+", 1)[1]
        assert not (node_dir / "slivers" / "plc_nmslice").exists()
