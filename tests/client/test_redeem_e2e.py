"""`sfi createslice` then `sfi redeem` end to end: a real deployment (registry, aggregate on the
node-manager driver, three node managers over TLS) and the real `sfi` click entry point.

One node manager is down during createslice (best effort: the others succeed, its node gets an
`Error on` line, exit 1); the tickets come from Describe's sfa_tickets; once the node manager
is back, `sfi redeem` redeems the saved ticket there itself and the sliver directory appears.
The aggregate then learns of the sliver by reconciling with its node managers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.threads import blockingCallFromThread

from sfa.aggregate.reconcile import Reconciler, ReconcileReport
from sfa.aggregate.slivers import AllocationState
from sfa.client.state import SliceStates
from tests.client.conftest import sfi
from tests.server.nm_site import (
    NmSite,
    build_deployment,
    request,
    run_driver,
    start_site,
    stop_site,
)
from tests.server.test_nm_driver_e2e import _restart_node, node_dir, slivers_on

SLICE = "redeem"
HRN = f"plc.princeton.{SLICE}"
LOGIN = f"plc_princeton_{SLICE}"


@pytest.fixture(scope="module")
def site(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[NmSite]:
    deployment, ids, _ = build_deployment(tmp_path_factory.mktemp("redeem"), 3, keys, [SLICE])
    running = start_site(reactor, deployment, ids, [SLICE])
    yield running
    stop_site(reactor, running)


def configure(directory: Path, site: NmSite) -> Path:
    alice = site.ids["alice"]
    result = sfi(directory, "config", "--registry", site.registry.url, "--user", "plc.alice",
                 "--key", str(alice.key_file), "--trusted-root", str(site.root_file),
                 "--aggregate", f"plc={site.aggregate.url}")
    assert result.exit_code == 0, result.output
    return directory


def lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


def stop_node(reactor: Any, site: NmSite, node_urn: str) -> None:
    blockingCallFromThread(reactor, site.nodes[node_urn].stop)
    assert site.driver is not None  # a stopped node's kept-alive connections die
    blockingCallFromThread(reactor, site.driver.client.close)


def test_createslice_with_a_node_down_then_redeem(reactor: Any, site: NmSite,
                                                  tmp_path: Path) -> None:
    directory = configure(tmp_path / "sfi", site)
    rspec = tmp_path / "three.xml"
    rspec.write_text(request(3))
    victim = sorted(site.nodes)[-1]
    victim_name = victim.rsplit("+", 1)[1]
    stop_node(reactor, site, victim)
    try:
        created = sfi(directory, "createslice", HRN, str(rspec))
        assert created.exit_code == 1, created.output
        errors = lines(created.output, "Error on ")
        assert len(errors) == 1 and victim_name in errors[0], created.output
        assert "did not answer" in errors[0]
        assert len(lines(created.output, "Success on ")) == 2, created.output
        assert LOGIN not in [p.name for p in (node_dir(site, victim) / "slivers").glob("*")]
    finally:
        _restart_node(reactor, site, victim)

    state = SliceStates(directory / "slices").load(HRN)
    assert set(state.tickets) == set(site.nodes)  # every node's ticket, from sfa_tickets
    ticket = state.tickets[victim]
    assert ticket.url == site.nodes[victim].url and "<signed-ticket>" in ticket.ticket

    redeemed = sfi(directory, "redeem", HRN)
    assert redeemed.exit_code == 0, redeemed.output
    successes = lines(redeemed.output, "Success on ")
    assert len(successes) == 1 and victim_name in successes[0], redeemed.output
    assert not lines(redeemed.output, "Error on ")
    home = node_dir(site, victim) / "slivers" / LOGIN
    assert (home / "etc" / "slice.gid").is_file() and (home / "etc" / "node.gid").is_file()
    assert slivers_on(site, victim) == [ticket.sliver_urn]

    # the aggregate's record still says allocated: reconciling adopts what the user redeemed
    assert site.driver is not None
    report: ReconcileReport = run_driver(reactor, Reconciler.of(site.driver).run())
    assert report.adopted == (ticket.sliver_urn,) and not report.orphans_deleted
    store = site.store()
    try:
        assert {s.allocation for s in store.slivers_of(f"urn:publicid:IDN+plc:princeton+slice+"
                                                        f"{SLICE}")} == {
            AllocationState.PROVISIONED}
    finally:
        store.close()
    again = sfi(directory, "redeem", HRN)  # the victim is not started yet: redeemed again,
    assert again.exit_code == 0, again.output  # which the node answers with the same lease
    assert len(lines(again.output, "Success on ")) == 1, again.output
    assert slivers_on(site, victim) == [ticket.sliver_urn]  # and no second sliver
