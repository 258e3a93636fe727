"""Aggregate fixtures: real authorities, GIDs and signed credentials (made once per session),
and a fresh aggregate (real SQLite file, in-memory driver) per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from sfa.aggregate.api_v2 import AggregateManagerV2
from sfa.aggregate.api_v3 import AggregateManagerV3
from sfa.aggregate.context import AggregateContext, AggregateSettings
from sfa.aggregate.inventory import Node, generate_nodes
from sfa.aggregate.memory_driver import MemoryDriver
from sfa.aggregate.store import AggregateStore
from sfa.timeutil import utcnow
from sfa.trust.credential import create_credential
from sfa.trust.gid import GID
from sfa.trust.hierarchy import Authority, AuthorityStore
from sfa.trust.roots import TrustedRoots
from sfa.trust.verify import TrustPolicy

AM_URN = "urn:publicid:IDN+plc+authority+am"
OTHER_AM = "urn:publicid:IDN+ple+authority+am"
SLICE1 = "urn:publicid:IDN+plc:princeton+slice+exp1"
SLICE2 = "urn:publicid:IDN+plc:princeton+slice+exp2"
GENI3 = {"type": "GENI", "version": "3"}


@dataclass(frozen=True)
class Principal:
    gid: GID
    key: RSAPrivateKey


@dataclass(frozen=True)
class Pki:
    """The people and credentials of the aggregate tests."""

    plc: Authority
    princeton: Authority
    alice: Principal
    bob: Principal
    slices: dict[str, GID]
    roots: TrustedRoots

    def slice_cred(self, slice_urn: str = SLICE1, owner: Principal | None = None,
                   lifetime: timedelta = timedelta(days=60), privileges: Any = "*") -> str:
        owner = owner or self.alice
        return create_credential(
            owner=owner.gid, target=self.slices[slice_urn], privileges=privileges,
            expires=utcnow() + lifetime, signer_key=self.princeton.key,
            signer=self.princeton.gid,
        ).xml

    def user_cred(self, owner: Principal | None = None) -> str:
        owner = owner or self.alice
        return create_credential(
            owner=owner.gid, target=owner.gid, privileges="*",
            expires=utcnow() + timedelta(days=30), signer_key=self.princeton.key,
            signer=self.princeton.gid,
        ).xml


def _principal(authority: Authority, hrn: str, type: str) -> Principal:
    gid, key = authority.issue_gid(hrn, type)
    assert key is not None
    return Principal(gid, key)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    store = AuthorityStore(tmp_path_factory.mktemp("am-authorities"))
    plc = store.create_root("plc")
    princeton = store.create_sub("plc.princeton")
    slices = {
        urn: princeton.issue_gid(f"plc.princeton.{urn.rsplit('+', 1)[1]}", "slice")[0]
        for urn in (SLICE1, SLICE2)
    }
    return Pki(plc, princeton, _principal(princeton, "plc.princeton.alice", "user"),
               _principal(princeton, "plc.princeton.bob", "user"), slices,
               TrustedRoots(gids=[plc.gid]))


@pytest.fixture(scope="session")
def cred1(pki: Pki) -> str:
    return pki.slice_cred(SLICE1)


@pytest.fixture(scope="session")
def cred2(pki: Pki) -> str:
    return pki.slice_cred(SLICE2)


def small_inventory() -> list[Node]:
    """8 nodes on 4 sites, 2 slivers each."""
    return list(generate_nodes("plc", 8, sites=4, capacity=2))


@dataclass
class Aggregate:
    """One aggregate under test and its parts."""

    v3: AggregateManagerV3
    v2: AggregateManagerV2
    ctx: AggregateContext
    store: AggregateStore
    driver: MemoryDriver
    path: Path

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        return self.store.database.dump()


def make_aggregate(path: Path, pki: Pki, driver: MemoryDriver | None = None,
                   nodes: list[Node] | None = None, **settings: Any) -> Aggregate:
    store = AggregateStore(path)
    if nodes:
        store.upsert_nodes(nodes)
    driver = driver or MemoryDriver()
    ctx = AggregateContext(
        store, driver,
        AggregateSettings(authority_hrn="plc", am_urn=AM_URN, hrn="plc.am",
                          api_urls={"2": "https://127.0.0.1:1/am/2",
                                    "3": "https://127.0.0.1:1/am/3"}, **settings),
        TrustPolicy(roots=pki.roots),
    )
    v3 = AggregateManagerV3(ctx)
    return Aggregate(v3, AggregateManagerV2(v3), ctx, store, driver, path)


@pytest.fixture
def am(tmp_path: Path, pki: Pki) -> Iterator[Aggregate]:
    aggregate = make_aggregate(tmp_path / "db" / "aggregate.sqlite", pki,
                               nodes=small_inventory())
    yield aggregate
    aggregate.store.close()


def request_rspec(*nodes: str) -> str:
    """A GENI v3 request of the given <node .../> snippets."""
    body = "\n".join(nodes)
    return (
        '<rspec xmlns="http://www.geni.net/resources/rspec/3" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.geni.net/resources/rspec/3 '
        'http://www.geni.net/resources/rspec/3/request.xsd" type="request">'
        f"{body}</rspec>"
    )


def node(client_id: str, component_id: str = "", manager: str = "", *, exclusive: str = "",
         sliver_type: str = "", hardware_type: str = "") -> str:
    attrs = f'client_id="{client_id}"'
    if component_id:
        attrs += f' component_id="{component_id}"'
    if manager:
        attrs += f' component_manager_id="{manager}"'
    if exclusive:
        attrs += f' exclusive="{exclusive}"'
    children = ""
    if hardware_type:
        children += f'<hardware_type name="{hardware_type}"/>'
    if sliver_type:
        children += f'<sliver_type name="{sliver_type}"/>'
    return f"<node {attrs}>{children}</node>"


def node_urn(index: int) -> str:
    return f"urn:publicid:IDN+plc+node+node{index}"
