"""A slice made real on node managers over TLS: sliver directories, keys, init scripts under
limits, user updates, deletion, replayed tickets, a node manager stopped during Provision."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.threads import blockingCallFromThread

from sfa.errors import GeniCode
from sfa.nodemanager.localapi import LocalApi
from sfa.nodemanager.store import NodeStore
from sfa.trust.gid import GID
from sfa.trust.keys import load_private_key, public_key_to_openssh
from tests.server.nm_site import (
    GENI3,
    NmSite,
    build_deployment,
    ok,
    request,
    start_site,
    stop_site,
)
from tests.server.conftest import proxy

SLICES = ["exp1", "exp2", "exp3", "exp4"]
LIMITS = "cat /proc/$$/limits > limits.tmp; mv limits.tmp limits.txt"


@pytest.fixture(scope="module")
def site(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[NmSite]:
    deployment, ids, _ = build_deployment(tmp_path_factory.mktemp("nm"), 4, keys, SLICES)
    running = start_site(reactor, deployment, ids, SLICES)
    yield running
    stop_site(reactor, running)


def slice_urn(name: str) -> str:
    return f"urn:publicid:IDN+plc:princeton+slice+{name}"


def node_dir(site: NmSite, node_urn: str) -> Path:
    return site.deployment.nodes_dir / node_urn.rsplit("+", 1)[1]


def slivers_on(site: NmSite, node_urn: str) -> list[str]:
    store = NodeStore(node_dir(site, node_urn) / "db" / "node.sqlite")
    try:
        return [r.sliver_urn for r in store.slivers()]
    finally:
        store.database.close()


def test_slice_on_several_nodes_is_real(site: NmSite) -> None:
    am, creds, urn = site.am(), site.cred("exp1"), slice_urn("exp1")
    allocated = ok(am.Allocate(urn, creds, request(3, LIMITS), {}))
    slivers = {s["geni_sliver_urn"] for s in allocated["geni_slivers"]}
    users = [{"urn": site.ids["alice"].gid.urn, "keys": ["ssh-rsa AAAAB3Nza alice@lab"]}]
    provisioned = ok(am.Provision([urn], creds, {"geni_rspec_version": GENI3,
                                                 "geni_users": users}))
    assert {s["geni_allocation_status"] for s in provisioned["geni_slivers"]} == {
        "geni_provisioned"}
    started = ok(am.PerformOperationalAction([urn], creds, "geni_start", {}))
    assert {s["geni_operational_status"] for s in started} == {"geni_ready"}
    store = site.store()
    placed = {s.urn: s.node_urn for s in store.slivers_of(urn)}
    store.close()
    assert set(placed) == slivers and len(set(placed.values())) == 3
    public_halves = set()
    for sliver, node in placed.items():
        home = node_dir(site, node) / "slivers" / "princeton_exp1"
        assert GID.from_pem((home / "etc" / "slice.gid").read_bytes()).urn == urn
        assert GID.from_pem((home / "etc" / "node.gid").read_bytes()).urn == node
        assert json.loads((home / "etc" / "sliver.json").read_text())["sliver_urn"] == sliver
        ssh = home / "home" / "princeton_exp1" / ".ssh"
        assert "alice@lab" in (ssh / "authorized_keys").read_text()
        private = load_private_key((ssh / "id_rsa").read_bytes())
        public_halves.add(public_key_to_openssh(private.public_key()))
        assert public_key_to_openssh(private.public_key()) in (ssh / "authorized_keys").read_text()
        limits = _limits(_wait_for(home / "home" / "princeton_exp1" / "limits.txt"))
        assert limits["Max address space"] == str(128 * 1024 * 1024)
        assert limits["Max processes"] == "256"
    assert len(public_halves) == 1  # one slice key pair, the same on every node


def _wait_for(path: Path) -> str:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= 2:
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared: the init script did not run")


def _limits(text: str) -> dict[str, str]:
    """/proc/PID/limits as {name: soft limit}."""
    rows = {}
    for line in text.splitlines()[1:]:
        name, soft = line[:26].strip(), line[26:].split()[0]
        rows[name] = soft
    return rows
