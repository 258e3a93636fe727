"""Federation fixtures: two deployments (plc with 6 nodes, ple with 4) on 127.0.0.1, peered both
ways with `sfa admin` while they run, plc's slice manager, and users calling over real TLS.

The aggregates use the in-memory driver (the node-manager driver has not landed yet)."""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from twisted.internet.threads import blockingCallFromThread

from sfa.aggregate.memory_driver import MemoryDriver
from sfa.aggregate.store import AggregateStore
from sfa.cli.admin import open_admin
from sfa.cli.main import main as sfa_main
from sfa.deploy.config import render_config
from sfa.deploy.layout import Deployment, init_deployment
from sfa.rpc.transport import RpcEndpoint, TlsIdentity, client_context
from sfa.server.am_api import AGGREGATE_DB, AggregateService
from sfa.server.listener import RunningService
from sfa.server.sm_api import SliceManagerService, start_deployment_slicemgr
from sfa.trust.credential import Credential, delegate_credential, parse_credential
from sfa.trust.gid import GID
from sfa.trust.keys import generate_private_key, private_key_to_pem
from sfa.xrn import hrn_to_urn
from tests.server.populate import populate, seed_nodes
from tests.server.test_am_api import _start_aggregate, _start_registry

SM_TIMEOUT = 3.0


def sfa(*args: str | Path) -> Any:
    """Run `sfa ARGS...` through its click entry point; returns the click Result."""
    return CliRunner().invoke(sfa_main, [str(a) for a in args], catch_exceptions=False)


@dataclass
class Site:
    """One running deployment."""

    deployment: Deployment
    registry: RunningService
    aggregate: AggregateService
    driver: MemoryDriver

    @property
    def directory(self) -> Path:
        return self.deployment.directory

    @property
    def root_file(self) -> Path:
        return self.deployment.trusted_roots_dir / f"{self.deployment.authority_hrn}.gid"

    @property
    def am_urn(self) -> str:
        return hrn_to_urn(self.deployment.authority_hrn, "authority+am")

    def slivers(self, slice_urn: str) -> list[str]:
        store = AggregateStore(self.deployment.db_dir / AGGREGATE_DB)
        try:
            return sorted(s.urn for s in store.slivers_of(slice_urn))
        finally:
            store.close()


@dataclass
class User:
    """A user with a GID and key on disk, calling services over TLS."""

    hrn: str
    gid: GID
    key: RSAPrivateKey
    identity: TlsIdentity
    roots_pem: str

    @property
    def urn(self) -> str:
        return self.gid.urn

    def endpoint(self, url: str, timeout: float = 20.0) -> RpcEndpoint:
        return RpcEndpoint(url, client_context(self.roots_pem, self.identity), timeout)

    def call(self, url: str, method: str, *params: Any) -> Any:
        """The raw reply (the AM envelope, or the registry's value)."""
        return self.endpoint(url).call(method, *params)

    def delegate(self, credential: Credential, to: GID, **kwargs: Any) -> Credential:
        return delegate_credential(credential, to=to, signer_key=self.key, signer=self.gid,
                                   **kwargs)


def wrap(credential: Credential | str) -> dict[str, str]:
    xml = credential if isinstance(credential, str) else credential.xml
    return {"geni_type": "geni_sfa", "geni_version": "3", "geni_value": xml}


@dataclass
class Federation:
    plc: Site
    ple: Site
    sm: SliceManagerService
    alice: User
    bob: User
    base: Path

    def slice_credential(self, user: User, slice_hrn: str, site: Site) -> Credential:
        """The user's slice credential from the registry of `site`, over TLS."""
        url = site.registry.url
        cert = user.gid.to_pem(include_chain=True)
        own = user.call(url, "GetSelfCredential", cert, user.urn, "user")
        xml = user.call(url, "GetCredential", [own], hrn_to_urn(slice_hrn, "slice"), "slice")
        return parse_credential(xml)

    @property
    def sm_gid(self) -> GID:
        return self.plc.deployment.service_identity("slicemgr").gid


def _deploy(base: Path, hrn: str, nodes: int, users: dict[str, RSAPrivateKey],
            slices: dict[str, list[str]]) -> Deployment:
    deployment = init_deployment(base / hrn, authority=hrn, registry_port=0, am_port=0,
                                 sm_port=0)
    config = replace(deployment.config,
                     registry=replace(deployment.config.registry, worker_processes=0))
    (deployment.directory / "sfa.toml").write_text(render_config(config))
    deployment = Deployment.load(deployment.directory)
    populate(deployment, users=users, slices=slices)
    seed_nodes(deployment, nodes, sites=2, capacity=4)
    return deployment


def _start(reactor: Any, deployment: Deployment) -> Site:
    driver = MemoryDriver()
    return Site(deployment, _start_registry(reactor, deployment),
                _start_aggregate(reactor, deployment, driver), driver)


def peer_with(site: Site, other: Site) -> None:
    """`sfa admin SITE trust add OTHER_ROOT` and `peer add OTHER --registry --aggregate`."""
    result = sfa("admin", site.directory, "trust", "add", other.root_file)
    assert result.exit_code == 0, result.output
    result = sfa("admin", site.directory, "peer", "add", other.deployment.authority_hrn,
                 "--registry", other.registry.url, "--aggregate", other.aggregate.url)
    assert result.exit_code == 0, result.output


def make_user(base: Path, deployment: Deployment, hrn: str, key: RSAPrivateKey,
              roots: list[Path]) -> User:
    """A registered user of `deployment` with their GID and key written under `base`."""
    admin = open_admin(deployment)
    try:
        gid = GID.from_pem(admin.admin_show(hrn, "user")[0].gid or "")
    finally:
        admin.close()
    cert_file, key_file = base / f"{hrn}.gid", base / f"{hrn}.pkey"
    cert_file.write_text(gid.to_pem(include_chain=True))
    key_file.write_bytes(private_key_to_pem(key))
    pem = "".join(path.read_text() for path in roots)
    return User(hrn, gid, key, TlsIdentity(cert_file, key_file), pem)


@pytest.fixture(scope="session")
def user_keys() -> list[RSAPrivateKey]:
    return [generate_private_key() for _ in range(3)]


@pytest.fixture(scope="module")
def federation(reactor: Any, user_keys: list[RSAPrivateKey],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    base = tmp_path_factory.mktemp("federation")
    alice_key, bob_key, _ = user_keys
    plc_dep = _deploy(base, "plc", 6, {"plc.alice": alice_key},
                      {f"plc.s{i}": ["plc.alice"] for i in range(1, 9)})
    ple_dep = _deploy(base, "ple", 4, {"ple.bob": bob_key}, {"ple.bobslice": ["ple.bob"]})
    plc, ple = _start(reactor, plc_dep), _start(reactor, ple_dep)
    sm = blockingCallFromThread(reactor, lambda: start_deployment_slicemgr(
        reactor, plc_dep, aggregate_url=plc.aggregate.url, call_timeout=SM_TIMEOUT))
    peer_with(plc, ple)  # while everything runs: no restart
    peer_with(ple, plc)
    roots = [plc.root_file, ple.root_file]
    world = Federation(plc, ple, sm, make_user(base, plc_dep, "plc.alice", alice_key, roots),
                       make_user(base, ple_dep, "ple.bob", bob_key, roots), base)
    yield world
    blockingCallFromThread(reactor, sm.stop)
    for site in (plc, ple):
        blockingCallFromThread(reactor, site.aggregate.stop)
        blockingCallFromThread(reactor, site.registry.stop)


def value_of(reply: dict[str, Any]) -> Any:
    """The value of a successful envelope (asserting success, with the output shown)."""
    assert reply["code"]["geni_code"] == 0, reply.get("output")
    return reply["value"]


def binary_text(value: Any) -> str:
    return value.data.decode() if isinstance(value, xmlrpc.client.Binary) else str(value)
