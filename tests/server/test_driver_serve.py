"""The driver seam under a real `sfa serve` over TLS: a driver that awaits asyncio works (the
one await rule), its inventory and later changes reach ListResources, geni_update_users
reaches `update_users`, and a deployment with no driver, or a broken one, refuses to start."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from sfa.aggregate.store import AggregateStore
from sfa.rspecs.reader import read_rspec
from tests.server.nm_site import GENI3, ok, request
from tests.server.served import SLICE_URN, Served, deploy, read_ready, serve_process, served

SLEEPY = "tests.server.sleepy_driver:sleepy_driver"


def _ad_names(site: Served) -> set[str]:
    ad = ok(site.am().ListResources(site.creds(), {"geni_rspec_version": GENI3}))
    return {n.component_name or "" for n in read_rspec(ad).nodes}


def _journal(site: Served) -> list[str]:
    path = site.deployment.data_dir / "driver" / "calls"
    return path.read_text().splitlines() if path.is_file() else []


def _eventually(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.1)


def test_an_asyncio_driver_serves_the_whole_sliver_life(tmp_path: Path,
                                                        keys: list[RSAPrivateKey]) -> None:
    with served(tmp_path, driver=SLEEPY, alice_key=keys[0], options={"pause": 0.02},
                health_seconds=1) as site:
        assert _ad_names(site) == {"sleepy1", "sleepy2"}  # the driver's nodes, nothing else
        am, creds = site.am(), site.creds()
        allocated = ok(am.Allocate(SLICE_URN, creds, request(2), {}))
        assert len(allocated["geni_slivers"]) == 2
        ok(am.Provision([SLICE_URN], creds, {"geni_rspec_version": GENI3}))
        started = ok(am.PerformOperationalAction([SLICE_URN], creds, "geni_start", {}))
        assert {s["geni_operational_status"] for s in started} == {"geni_ready"}
        users = [{"urn": site.alice.gid.urn, "keys": ["ssh-ed25519 AAAA new-key"]}]
        ok(am.PerformOperationalAction([SLICE_URN], creds, "geni_update_users",
                                       {"geni_users": users}))
        status = ok(am.Status([SLICE_URN], creds, {}))
        assert {s["geni_operational_status"] for s in status["geni_slivers"]} == {"geni_ready"}
        ok(am.Delete([SLICE_URN], creds, {}))
        assert ok(am.Status([SLICE_URN], creds, {}))["geni_slivers"] == []

        # the driver changes its inventory later (here at a health check): the ad follows
        (site.deployment.data_dir / "driver" / "add-node").write_text("sleepy3")
        _eventually(lambda: "sleepy3" in _ad_names(site))
        journal = _journal(site)
        assert journal[:2] == ["start", "nodes"]
        for call in ("reconcile", "check_health", "allocate", "provision",
                     "perform_action geni_start", "update_users ssh-ed25519 AAAA new-key",
                     "status", "delete"):
            assert call in journal, (call, journal)
        assert not any(line.startswith("perform_action geni_update_users") for line in journal)
    assert site.process.returncode == 0
    assert _journal(site)[-1] == "stop"  # stopped with the aggregate


@pytest.mark.parametrize(("driver", "message"), [
    ("", "[aggregate] driver is not set"),
    ("no_such_module_w14a:factory", "cannot import no_such_module_w14a"),
    ("tests.server.sleepy_driver:failing_start",
     "failed to start: ConnectionRefusedError: the testbed controller at 127.0.0.1:9 refused"),
], ids=["unset", "not-importable", "start-fails"])
def test_serve_refuses_to_start_without_a_working_driver(tmp_path: Path,
                                                         keys: list[RSAPrivateKey],
                                                         driver: str, message: str) -> None:
    deployment, _ = deploy(tmp_path, driver=driver, alice_key=keys[0])
    process = serve_process(deployment)
    try:
        urls = read_ready(process, {"registry", "aggregate"})
        assert process.wait(60) == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        assert process.stdout is not None
        process.stdout.close()
    assert "aggregate" not in urls
    log = (deployment.directory / "serve.log").read_text()
    assert f"UNAVAILABLE: could not start the services of {deployment.directory}: " in log
    assert message in log, log[-2000:]
    store = AggregateStore(deployment.db_dir / "aggregate.sqlite")
    try:
        assert store.nodes() == [] and store.all_slivers() == []  # nothing half-started
    finally:
        store.close()
