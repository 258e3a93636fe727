"""`sfa init`: the on-disk layout, the service certificates, and refusals that leave no trace."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from sfa.cli.main import main
from sfa.deploy.config import load_config
from sfa.deploy.layout import Deployment, init_deployment, service_names
from sfa.errors import AlreadyExists, BadArgs
from sfa.nodemanager.enforcing import EnforcingConfig
from sfa.nodemanager.nodedir import load_node_config, write_node_config
from sfa.storage.registry_schema import open_registry_database
from sfa.trust.chain import verify_gid_chain


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return init_deployment(
        tmp_path_factory.mktemp("dep") / "site", authority="plc", registry_port=0, nodes=3
    )


def _san(gid, kind):
    names = gid.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return [str(v) for v in names.value.get_values_for_type(kind)]


def test_layout_and_config(deployment: Deployment):
    d = deployment.directory
    for sub in ("authorities", "trusted_roots", "services", "db", "nodes"):
        assert (d / sub).is_dir()
    assert (d / "trusted_roots" / "plc.gid").is_file()
    config = load_config(d)
    assert config.authority.hrn == "plc" and config.registry.port == 0
    assert config.aggregate.port == 12346 and config.nodes.count == 3
    assert not config.slicemgr.enabled
    assert config.aggregate.driver == "nodemanager"  # existing deployments keep node managers
    assert 'driver = "nodemanager"' in (d / "sfa.toml").read_text()
    assert deployment.root_authority().hrn == "plc"


def test_service_gids_chain_to_the_root_with_host_names(deployment: Deployment):
    roots = deployment.trusted_roots()
    for service, kind in (("registry", "sa"), ("aggregate", "am"), ("slicemgr", "sm")):
        identity = deployment.service_identity(service)
        gid = identity.gid
        assert gid.subject_cn == f"plc.{kind}"
        assert gid.urn == f"urn:publicid:IDN+plc+authority+{kind}"
        assert not gid.is_ca
        assert _san(gid, x509.DNSName) == ["localhost"]
        assert [str(ip) for ip in _san(gid, x509.IPAddress)] == ["127.0.0.1"]
        assert verify_gid_chain(gid, roots).hrn == "plc"
        key_file = deployment.services_dir / f"{service}.pkey"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_registry_database_is_created_and_migrated(deployment: Deployment):
    database = open_registry_database(deployment.registry_db)
    try:
        assert database.schema_version() >= 1
    finally:
        database.close()


def test_existing_non_empty_directory_is_refused_untouched(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(AlreadyExists):
        init_deployment(tmp_path, authority="plc")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"authority": "plc.princeton"},
        {"authority": "bad name!"},
        {"authority": "plc", "registry_port": 70000},
        {"authority": "plc", "host": "a b"},
        {"authority": "plc", "nodes": -1},
    ],
)
def test_bad_options_are_refused_before_writing(tmp_path: Path, kwargs: dict):
    with pytest.raises(BadArgs):
        init_deployment(tmp_path / "new", **kwargs)
    assert not (tmp_path / "new").exists()


def test_service_names_for_hosts():
    assert service_names("127.0.0.1") == (("localhost",), ("127.0.0.1",))
    assert service_names("10.0.0.5") == ((), ("10.0.0.5",))
    assert service_names("Reg.Example.org") == (("reg.example.org",), ())


def test_cli_init_then_refuses_again(tmp_path: Path):
    runner = CliRunner()
    target = tmp_path / "cli"
    first = runner.invoke(main, ["init", str(target), "--authority", "ple", "--am-port", "0"])
    assert first.exit_code == 0, first.output
    assert "sfa serve" in first.output
    assert load_config(target).aggregate.port == 0
    again = runner.invoke(main, ["init", str(target), "--authority", "ple"])
    assert again.exit_code == 1
    assert "ALREADYEXISTS" in again.output


def test_cli_init_chooses_the_nodes_sliver_backend(tmp_path: Path):
    target = tmp_path / "enf"
    made = CliRunner().invoke(main, ["init", str(target), "--authority", "ple", "--nodes", "1",
                                     "--nm-base-port", "0", "--nm-backend", "enforcing"])
    assert made.exit_code == 0, made.output
    assert load_config(target).nodes.backend == "enforcing"
    node = load_node_config(target / "nodes" / "node1")
    assert node.backend == "enforcing" and node.enforcing == EnforcingConfig()
    refused = CliRunner().invoke(main, ["init", str(tmp_path / "x"), "--authority", "ple",
                                        "--nm-backend", "vserver"])
    assert refused.exit_code == 2 and "vserver" in refused.output
    assert not (tmp_path / "x").exists()


def test_node_toml_enforcing_settings_round_trip_and_bad_ones_are_refused(tmp_path: Path):
    target = tmp_path / "n"
    init_deployment(target, authority="ple", nodes=1, nm_base_port=0)
    nodedir = target / "nodes" / "node1"
    config = load_node_config(nodedir)
    assert config.backend == "directory"
    chosen = EnforcingConfig(prefix="w15-t", network=True, bandwidth_unit_kbps=1000)
    write_node_config(nodedir, replace(config, backend="enforcing", enforcing=chosen))
    assert load_node_config(nodedir).enforcing == chosen
    text = (nodedir / "node.toml").read_text()
    for bad, named in (("network = true", "network = 1"), ("prefix = ", "prefixx = ")):
        (nodedir / "node.toml").write_text(text.replace(bad, named, 1))
        with pytest.raises(BadArgs) as caught:
            load_node_config(nodedir)
        assert "[enforcing]" in caught.value.message
