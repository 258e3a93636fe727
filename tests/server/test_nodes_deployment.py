"""`sfa init --nodes N`: node directories, GIDs issued by the authority, inventory entries with
node manager URLs; `sfa nodemanager` is a registered command; the [aggregate] keys parse."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sfa.aggregate.nm_book import NodeManagerBook
from sfa.aggregate.store import AggregateStore
from sfa.cli.main import main
from sfa.deploy.config import ConfigError, parse_config
from sfa.deploy.layout import init_deployment, node_dirs
from sfa.nodemanager.nodedir import load_node_config
from sfa.trust.chain import verify_gid_chain
from sfa.trust.gid import GID


def test_init_with_nodes(tmp_path: Path) -> None:
    deployment = init_deployment(tmp_path / "plc", authority="plc", nm_base_port=13000, nodes=3)
    dirs = node_dirs(deployment)
    assert [d.name for d in dirs] == ["node1", "node2", "node3"]
    store = AggregateStore(deployment.db_dir / "aggregate.sqlite")
    try:
        managers = NodeManagerBook(store.database).managers()
        assert {n.urn for n in store.nodes()} == set(managers)
    finally:
        store.close()
    for index, nodedir in enumerate(dirs, start=1):
        config = load_node_config(nodedir)
        gid = GID.from_pem((nodedir / "node.gid").read_bytes())
        assert gid.urn == config.urn == f"urn:publicid:IDN+plc+node+node{index}"
        verify_gid_chain(gid, deployment.trusted_roots())
        assert managers[gid.urn].url == f"https://127.0.0.1:{13000 + index - 1}/"
        assert (nodedir / "node.pkey").stat().st_mode & 0o077 == 0


def test_nodemanager_is_an_sfa_command() -> None:
    result = CliRunner().invoke(main, ["nodemanager", "--help"])
    assert result.exit_code == 0 and "NODEDIR" in result.output


def test_aggregate_keys(tmp_path: Path) -> None:
    text = ('[authority]\nhrn = "plc"\n[aggregate]\nallocated_minutes = 5\nparallelism = 4\n'
            "node_timeout_seconds = 2\n")
    config = parse_config(text, base_dir=tmp_path)
    assert (config.aggregate.allocated_minutes, config.aggregate.parallelism,
            config.aggregate.node_timeout_seconds) == (5, 4, 2)
    with pytest.raises(ConfigError, match="parallelism"):
        parse_config('[authority]\nhrn = "plc"\n[aggregate]\nparallelism = 0\n',
                     base_dir=tmp_path)
