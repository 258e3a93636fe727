"""Client fixtures: two real deployments on 127.0.0.1 (plc: registry + aggregate with 8 nodes;
ple: registry + aggregate with 4 nodes, peered with plc), users with keys, and `sfi` driven
through its click entry point."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from twisted.internet.threads import blockingCallFromThread

from sfa.aggregate.driver import SliverResult
from sfa.aggregate.memory_driver import MemoryDriver
from sfa.aggregate.slivers import Sliver, UserKeys
from sfa.client.cli import main
from sfa.deploy.config import PeerConfig, render_config
from sfa.deploy.layout import Deployment, init_deployment
from sfa.server.am_api import AggregateService
from sfa.server.listener import RunningService
from sfa.trust.keys import private_key_to_pem, public_key_to_openssh
from tests.server.conftest import keys  # noqa: F401 - fixture reused
from tests.server.populate import populate, seed_nodes
from tests.server.test_am_api import _start_aggregate, _start_registry

REPO_DIR = Path(__file__).resolve().parents[2]


@dataclass
class StagedDriver(MemoryDriver):
    """The in-memory driver, plus nodes that fail only at Provision (as a node manager that
    is down does: allocation succeeds, redemption fails)."""

    provision_failing: dict[str, str] = field(default_factory=dict)

    async def provision(self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
                        ) -> list[SliverResult]:
        saved = self.failing
        self.failing = {**saved, **self.provision_failing}
        try:
            return await super().provision(slivers, users)
        finally:
            self.failing = saved


@dataclass
class Site:
    """One running deployment: its registry, aggregate and in-memory driver."""

    deployment: Deployment
    registry: RunningService
    aggregate: AggregateService
    driver: StagedDriver

    @property
    def root_file(self) -> Path:
        return self.deployment.trusted_roots_dir / f"{self.deployment.authority_hrn}.gid"


@dataclass
class World:
    plc: Site
    ple: Site
    key_files: dict[str, Path]
    keys: dict[str, RSAPrivateKey]


def _deploy(base: Path, hrn: str, nodes: int, *, users: dict[str, RSAPrivateKey],
            slices: dict[str, list[str]], pis: dict[str, list[str]]) -> Deployment:
    deployment = init_deployment(base / hrn, authority=hrn, registry_port=0, am_port=0)
    populate(deployment, users=users, authorities=pis, slices=slices)
    seed_nodes(deployment, nodes, sites=2, capacity=4)
    return deployment


def _peer(deployment: Deployment, other: Deployment, registry_url: str) -> Deployment:
    """Trust the other's root and refer its names to its registry (written to sfa.toml)."""
    root = other.trusted_roots_dir / f"{other.authority_hrn}.gid"
    (deployment.trusted_roots_dir / root.name).write_bytes(root.read_bytes())
    config = replace(deployment.config,
                     peers={other.authority_hrn: PeerConfig(registry=registry_url)})
    (deployment.directory / "sfa.toml").write_text(render_config(config))
    return Deployment.load(deployment.directory)


def _start(reactor: Any, deployment: Deployment) -> Site:
    driver = StagedDriver()
    return Site(deployment, _start_registry(reactor, deployment),
                _start_aggregate(reactor, deployment, driver), driver)


@pytest.fixture(scope="session")
def world(reactor: Any, keys: list[RSAPrivateKey],  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("sfi")
    pi_key, alice_key, bob_key, _ = keys
    users = {"plc.pi": pi_key, "plc.alice": alice_key}
    slices = {f"plc.princeton.exp{i}": ["plc.alice"] for i in range(1, 7)}
    plc = _deploy(base, "plc", 8, users=users, slices=slices, pis={"plc.princeton": ["plc.pi"]})
    ple = _deploy(base, "ple", 4, users={"ple.bob": bob_key},
                  slices={"ple.bobslice": ["ple.bob"]}, pis={})
    ple_site = _start(reactor, ple)
    plc = _peer(plc, ple, ple_site.registry.url)
    plc_site = _start(reactor, plc)
    ple = _peer(ple, plc, plc_site.registry.url)
    key_dir = base / "keys"
    key_dir.mkdir()
    files = {}
    for name, key in (("pi", pi_key), ("alice", alice_key), ("bob", bob_key)):
        files[name] = key_dir / f"{name}.pkey"
        files[name].write_bytes(private_key_to_pem(key))
        (key_dir / f"{name}.pub").write_text(public_key_to_openssh(key) + "\n")
    yield World(plc_site, ple_site, files, {"pi": pi_key, "alice": alice_key, "bob": bob_key})
    for site in (plc_site, ple_site):
        blockingCallFromThread(reactor, site.aggregate.stop)
        blockingCallFromThread(reactor, site.registry.stop)


def sfi(directory: Path, *args: str) -> Result:
    """Run `sfi --dir DIRECTORY ARGS...` through the click entry point."""
    result = CliRunner().invoke(main, ["--dir", str(directory), *args], catch_exceptions=True)
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def sfi_json(directory: Path, *args: str, ok: bool = True) -> dict[str, Any]:
    """`sfi --json ...` parsed; asserts the exit code matches `ok`."""
    result = sfi(directory, "--json", *args)
    assert (result.exit_code == 0) is ok, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["ok"] is ok
    return document


def configure(directory: Path, world: World, who: str = "alice", *,
              hrn: str = "plc.alice") -> Path:
    """A fresh config dir for a user: registry, key, plc's root, both aggregates."""
    result = sfi(directory, "config", "--registry", world.plc.registry.url, "--user", hrn,
                 "--key", str(world.key_files[who]),
                 "--trusted-root", str(world.plc.root_file),
                 "--trusted-root", str(world.ple.root_file),
                 "--aggregate", f"plc={world.plc.aggregate.url}",
                 "--aggregate", f"ple={world.ple.aggregate.url}")
    assert result.exit_code == 0, result.output
    return directory


@pytest.fixture
def alice_dir(world: World, tmp_path: Path) -> Path:
    return configure(tmp_path / "alice-sfi", world)
