"""A node manager's refusal reaches the user with its message: in the AM envelope's per-sliver
geni_error, in Status afterwards (the record keeps the reason until an operation succeeds),
and in sfi's output, never as an empty error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sfa.nodemanager.admission import Thresholds
from tests.client.conftest import sfi
from tests.client.test_redeem_e2e import configure
from tests.server.nm_site import GENI3, NmSite, build_deployment, ok, request, start_site, stop_site

BUSY = "REFUSED: the node is too busy"
HRN = "plc.princeton.busy"
URN = "urn:publicid:IDN+plc:princeton+slice+busy"


@pytest.fixture(scope="module")
def site(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[NmSite]:
    deployment, ids, _ = build_deployment(tmp_path_factory.mktemp("refusals"), 1, keys,
                                          ["busy"])
    running = start_site(reactor, deployment, ids, ["busy"])
    yield running
    stop_site(reactor, running)


def _overload(site: NmSite, busy: bool) -> None:
    (service,) = site.nodes.values()
    service.nm.admission.thresholds = Thresholds(max_load=-1.0) if busy else Thresholds()


def test_a_refused_provision_says_why_then_and_in_status(site: NmSite) -> None:
    am, creds = site.am(), site.cred("busy")
    ok(am.Allocate(URN, creds, request(1), {}))
    _overload(site, True)
    try:
        provisioned = ok(am.Provision([URN], creds, {"geni_rspec_version": GENI3,
                                                     "geni_best_effort": True}))
    finally:
        _overload(site, False)
    (sliver,) = provisioned["geni_slivers"]
    assert sliver["geni_error"].startswith(BUSY), sliver
    (status,) = ok(am.Status([URN], creds, {}))["geni_slivers"]
    assert status["geni_allocation_status"] == "geni_allocated"
    assert status["geni_error"] == sliver["geni_error"]
    again = ok(am.Provision([URN], creds, {"geni_rspec_version": GENI3}))
    assert [s["geni_error"] for s in again["geni_slivers"]] == [""]  # success clears it
    (status,) = ok(am.Status([URN], creds, {}))["geni_slivers"]
    assert status["geni_error"] == "" and status["geni_allocation_status"] == "geni_provisioned"
    ok(am.Delete([URN], creds, {}))


def test_sfi_shows_the_node_message(site: NmSite, tmp_path: Path) -> None:
    directory = configure(tmp_path / "sfi", site)
    rspec = tmp_path / "one.xml"
    rspec.write_text(request(1))
    _overload(site, True)
    try:
        created = sfi(directory, "createslice", HRN, str(rspec))
    finally:
        _overload(site, False)
    assert created.exit_code == 1, created.output
    assert f"Error on node1: {BUSY}" in created.output, created.output
    status = sfi(directory, "status", HRN)
    assert "the node is too busy" in status.output, status.output
    assert sfi(directory, "deleteslice", HRN).exit_code == 0
