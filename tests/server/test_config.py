"""sfa.toml parsing: defaults, every section, peers, and refusals that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfa.deploy.config import (
    AggregateConfig,
    ConfigError,
    PeerConfig,
    SfaConfig,
    load_config,
    parse_config,
    render_config,
)
from sfa.deploy.config import AuthorityConfig as Auth

REPO = Path(__file__).resolve().parents[2]


def test_minimal_config_takes_the_documented_defaults(tmp_path: Path):
    config = parse_config('[authority]\nhrn = "plc"\n', base_dir=tmp_path)
    assert config.authority.hrn == "plc"
    assert (config.registry.port, config.aggregate.port, config.slicemgr.port) == (
        12345, 12346, 12347,
    )
    assert config.registry.enabled and config.aggregate.enabled and not config.slicemgr.enabled
    assert config.nodes.base_port == 12400
    assert config.registry.slice_lifetime_days == 30
    assert config.registry.max_slice_lifetime_days == 180
    assert config.registry.worker_processes == 2
    assert config.trust.max_delegation_depth == 8 and not config.trust.strict_crypto
    assert config.limits.max_request_bytes == 10_000_000
    assert config.data_path == tmp_path.resolve()
    assert config.aggregate.driver == "" and config.driver == {}  # no default driver


def test_peers_quoted_and_nested_forms(tmp_path: Path):
    text = """
[authority]
hrn = "plc"
[peers."ple.inria"]
registry = "https://r.example:12345/"
[peers.emulab]
aggregate = "https://am.example:12346/"
"""
    peers = parse_config(text, base_dir=tmp_path).peers
    assert peers["ple.inria"] == PeerConfig(registry="https://r.example:12345/")
    assert peers["emulab"] == PeerConfig(aggregate="https://am.example:12346/")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[authority]\nhrn = "plc"\n[registry]\nprot = 1\n', "'prot'"),
        ('[authority]\nhrn = "plc"\n[registy]\nport = 1\n', "[registy]"),
        ('[authority]\nhrn = "plc"\n[registry]\nport = "12345"\n', "port must be a int"),
        ('[authority]\nhrn = "plc"\n[registry]\nport = 70000\n', "0..65535"),
        ('[authority]\nhrn = "plc"\n[registry]\nenabled = 1\n', "enabled must be a bool"),
        ('[authority]\nhrn = "plc"\n[limits]\nmax_request_bytes = 0\n', "positive"),
        ('[authority]\nhrn = "plc"\n[peers.x]\nregistry = "u"\nsecret = 1\n', "'secret'"),
        ('[authority]\nhrn = "plc"\n[nodes]\nbackend = "vserver"\n', "directory, enforcing"),
        ("[server]\nhost = '127.0.0.1'\n", "hrn is required"),
        ("[authority\n", "not valid TOML"),
        ('driver = 3\n[authority]\nhrn = "plc"\n', "[driver] must be a table"),
        ('[authority]\nhrn = "plc"\n[aggregate]\ndriver = 1\n', "driver must be a str"),
    ],
)
def test_bad_config_is_refused_naming_the_problem(tmp_path: Path, text: str, named: str):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, base_dir=tmp_path)
    assert named in caught.value.message


def test_rendered_config_reads_back_equal(tmp_path: Path):
    config = SfaConfig(
        base_dir=tmp_path, authority=Auth(hrn="plc"),
        peers={"ple": PeerConfig(registry="https://x:1/")},
        aggregate=AggregateConfig(driver="netns_driver:netns_driver"),
        driver={"nodes": 2, "prefix": "sfa", "command": ["sleep", "1"], "pause": 0.5,
                "quiet": True},
    )
    (tmp_path / "sfa.toml").write_text(render_config(config))
    assert load_config(tmp_path) == config


def test_example_config_in_conf_is_valid():
    config = load_config(REPO / "conf" / "sfa.toml")
    assert config.authority.hrn and config.aggregate.driver == "nodemanager"


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_worker_processes_must_not_be_negative(tmp_path: Path):
    with pytest.raises(ConfigError, match="0 or more"):
        parse_config('[authority]\nhrn = "plc"\n[registry]\nworker_processes = -1\n',
                     base_dir=tmp_path)
    text = '[authority]\nhrn = "plc"\n[registry]\nworker_processes = 2\n'
    assert parse_config(text, base_dir=tmp_path).registry.worker_processes == 2
