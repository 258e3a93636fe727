"""DIR/peers.toml: `sfa admin DIR peer ...`, the live Peers view and the registry's peer map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfa.deploy.config import PeerConfig
from sfa.deploy.layout import Deployment, init_deployment
from sfa.deploy.peers import PEERS_FILE, Peers, RegistryPeerMap, deployment_peers
from sfa.errors import BadArgs
from tests.federation.conftest import sfa

REG = "https://127.0.0.1:12345/"
AM = "https://127.0.0.1:12346/"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return init_deployment(tmp_path_factory.mktemp("peers") / "plc", authority="plc")


def test_peer_add_list_remove_and_a_live_view(deployment: Deployment) -> None:
    peers = deployment_peers(deployment)
    registry_map = RegistryPeerMap(peers)
    assert dict(registry_map) == {}
    added = sfa("admin", deployment.directory, "peer", "add", "ple", "--registry", REG,
                "--aggregate", AM)
    assert added.exit_code == 0, added.output
    assert "not trusted yet" in added.output  # a hint: trust add the root too
    assert dict(registry_map) == {"ple": REG}  # the same objects see the new file
    assert peers.aggregates() == {"ple": AM}
    listed = sfa("admin", deployment.directory, "peer", "list", "--json")
    assert json.loads(listed.stdout) == [{"hrn": "ple", "registry": REG, "aggregate": AM,
                                          "source": "peers.toml"}]
    removed = sfa("admin", deployment.directory, "peer", "remove", "ple")
    assert removed.exit_code == 0, removed.output
    assert dict(registry_map) == {} and peers.all() == {}


@pytest.mark.parametrize(("args", "code"), [
    (("peer", "add", "ple", "--registry", "http://127.0.0.1:1/"), "BADARGS"),
    (("peer", "add", "ple"), "BADARGS"),
    (("peer", "add", "plc", "--registry", REG), "BADARGS"),
    (("peer", "add", "ple.sub", "--registry", REG), "BADARGS"),
    (("peer", "add", "bad name!", "--registry", REG), "BADARGS"),
    (("peer", "remove", "nobody"), "SEARCHFAILED"),
])
def test_bad_peer_commands_are_refused_and_change_nothing(
        deployment: Deployment, args: tuple[str, ...], code: str) -> None:
    path = deployment.directory / PEERS_FILE
    before = path.read_bytes() if path.exists() else None
    result = sfa("admin", deployment.directory, *args)
    assert result.exit_code == 1
    assert result.output.startswith(f"{code}:"), result.output
    assert (path.read_bytes() if path.exists() else None) == before


def test_peers_from_sfa_toml_are_a_base_the_file_overrides(tmp_path: Path) -> None:
    path = tmp_path / PEERS_FILE
    peers = Peers(path, {"ple": PeerConfig(registry=REG)})
    assert peers.registries() == {"ple": REG} and peers.is_configured("ple")
    path.write_text('[peer."ple"]\nregistry = "https://other:1/"\naggregate = ""\n')
    assert peers.registries() == {"ple": "https://other:1/"}
    path.unlink()
    assert peers.registries() == {"ple": REG}


def test_a_damaged_peers_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / PEERS_FILE
    path.write_text("[peer.ple]\nregistry = 'ftp://x/'\n")
    with pytest.raises(BadArgs, match="https://HOST:PORT"):
        Peers(path)
    path.write_text("not = [toml")
    with pytest.raises(BadArgs, match="not valid TOML"):
        Peers(path)
