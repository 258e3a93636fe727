"""spec/security.md item 29 over TLS: sliver logins are unique per full slice name. Two slices
whose authority leaves match (`plc.other.lab.aslice`, `plc.lab.aslice`) both get slivers on the
same node, under different logins, each in its own directory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sfa.cli.admin import open_admin
from sfa.logins import sliver_login
from sfa.nodemanager.store import NodeStore
from sfa.xrn import hrn_to_urn
from tests.server.conftest import proxy
from tests.server.nm_site import GENI3, NmSite, build_deployment, ok, request, start_site, stop_site

SLICES = ("plc.other.lab.aslice", "plc.lab.aslice")


@pytest.fixture(scope="module")
def site(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[NmSite]:
    deployment, ids, _ = build_deployment(tmp_path_factory.mktemp("logins"), 1, keys, [])
    admin = open_admin(deployment)
    try:
        for authority in ("plc.lab", "plc.other", "plc.other.lab"):
            admin.admin_add_authority(authority, pis=["plc.pi"])
        for hrn in SLICES:
            admin.admin_add_slice(hrn, ["plc.alice"])
    finally:
        admin.close()
    running = start_site(reactor, deployment, ids, [])
    registry = proxy(running.registry.url, running.root_file, ids["alice"])
    for hrn in SLICES:
        running.creds[hrn] = str(registry.GetCredential([running.creds["alice"]], hrn, "slice"))
    yield running
    stop_site(reactor, running)


def test_29_same_leaf_names_under_other_authorities_share_a_node(site: NmSite) -> None:
    (node,) = site.nodes.values()
    am = site.am()
    for hrn in SLICES:
        urn, creds = hrn_to_urn(hrn, "slice"), site.cred(hrn)
        ok(am.Allocate(urn, creds, request(1), {}))
        provisioned = ok(am.Provision([urn], creds, {"geni_rspec_version": GENI3}))
        (sliver,) = provisioned["geni_slivers"]
        assert sliver["geni_allocation_status"] == "geni_provisioned", sliver
        assert not sliver["geni_error"]
        assert f'username="{sliver_login(urn)}"' in provisioned["geni_rspec"]
    store = NodeStore(node.nm.store.database.path)
    try:
        logins = {r.slice_urn: r.login for r in store.slivers()}
    finally:
        store.close()
    expected = {hrn_to_urn(hrn, "slice"): hrn.replace(".", "_") for hrn in SLICES}
    assert logins == expected
    slivers_dir = node.nm.backend.slivers_dir  # type: ignore[attr-defined]
    for login in expected.values():
        keys = slivers_dir / login / "home" / login / ".ssh" / "authorized_keys"
        assert keys.is_file()
    for hrn in SLICES:
        ok(am.Delete([hrn_to_urn(hrn, "slice")], site.cred(hrn), {}))
    assert not [p for p in slivers_dir.iterdir() if p.name in expected.values()]
