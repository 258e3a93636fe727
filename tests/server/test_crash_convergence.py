"""spec/security.md item 22: the aggregate killed with SIGKILL while it provisions a slice on
200 node managers, then restarted, converges: no sliver lost, duplicated or left at a node
without a record. The aggregate (with the registry) and the node managers run in two separate
processes (tests/server/serve_parts.py); only the aggregate's is killed.

Each rule of sfa.aggregate.reconcile is also checked on a small site in this process (real
node managers over TLS): orphans, adoption, lost slivers, state sync, unreachable nodes."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.threads import blockingCallFromThread

from sfa.aggregate.reconcile import Reconciler, ReconcileReport
from sfa.aggregate.slivers import AllocationState, OperationalState
from sfa.aggregate.store import AggregateStore
from sfa.deploy.config import render_config
from sfa.deploy.layout import Deployment
from sfa.nodemanager.nodedir import load_node_config
from sfa.nodemanager.store import NodeStore
from sfa.server.am_api import AGGREGATE_DB
from tests.server.conftest import Identity, proxy
from tests.server.nm_site import (
    GENI3,
    NmSite,
    build_deployment,
    node_proxy,
    ok,
    request,
    run_driver,
    start_site,
    stop_site,
)
from tests.server.test_nm_driver_e2e import (
    _restart_node,
    node_dir,
    provisioned_slice,
    slice_urn,
    slivers_on,
)

REPO = Path(__file__).resolve().parents[2]
NODES = 200
SLICE = "crash"
SLICE_URN = f"urn:publicid:IDN+plc:princeton+slice+{SLICE}"
LOGIN = f"plc_princeton_{SLICE}"
STARTUP_SECONDS = 90.0
RECONCILED = re.compile(r"reconciled with the testbed \(driver nodemanager\): (\d+) adopted, "
                        r"(\d+) redeemed again, (\d+) failed, (\d+) orphans deleted")


@dataclass
class Part:
    """One `python -m tests.server.serve_parts PART DIR` process and its output lines."""

    process: subprocess.Popen[str]
    lines: queue.Queue[tuple[str, str]] = field(default_factory=queue.Queue)
    urls: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, part: str, directory: Path) -> Part:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.server.serve_parts", part, str(directory)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        running = cls(process)
        for name, stream in (("out", process.stdout), ("err", process.stderr)):
            threading.Thread(target=running._pump, args=(name, stream), daemon=True).start()
        running.wait_for("out", lambda line: line == "ready all")
        return running

    def _pump(self, name: str, stream: Any) -> None:
        for line in stream:
            self.lines.put((name, line.rstrip("\n")))
        self.lines.put((name, ""))  # end of stream

    def wait_for(self, stream: str, wanted: Callable[[str], Any],
                 timeout: float = STARTUP_SECONDS) -> str:
        """The first line of `stream` for which `wanted` is true (ready lines are noted)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no awaited line on std{stream} within {timeout} s")
            try:
                name, line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if name == "out" and line.startswith("ready "):
                parts = line.split()
                self.urls[" ".join(parts[1:-1])] = parts[-1]
            if name == stream and wanted(line):
                return line
            if line == "" and self.process.poll() is not None:
                raise AssertionError(f"the process ended ({self.process.returncode}) "
                                     "before the awaited line")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def set_parallelism(deployment: Deployment, parallelism: int) -> None:
    """Write [aggregate] parallelism into DIR/sfa.toml (read when the aggregate starts)."""
    config = deployment.config
    config = replace(config, aggregate=replace(config.aggregate, parallelism=parallelism))
    (deployment.directory / "sfa.toml").write_text(render_config(config))


@pytest.fixture(scope="module")
def crash_site(keys: list, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[Deployment, dict[str, Identity], Part]]:
    """A deployment of 200 nodes whose node managers run in their own process."""
    deployment, ids, _ = build_deployment(tmp_path_factory.mktemp("crash"), NODES, keys, [SLICE])
    set_parallelism(deployment, 32)  # also writes the fast timers of build_deployment
    nodes = Part.start("nodes", deployment.directory)
    try:
        yield Deployment.load(deployment.directory), ids, nodes
    finally:
        nodes.stop()


def slivers_at_nodes(deployment: Deployment) -> int:
    """How many nodes hold the slice's sliver directory now."""
    return sum(1 for _ in deployment.nodes_dir.glob(f"*/slivers/{LOGIN}"))


def node_holdings(deployment: Deployment) -> dict[str, list[str]]:
    """node URN -> the sliver URNs its node manager's database holds."""
    held: dict[str, list[str]] = {}
    for nodedir in sorted(deployment.nodes_dir.iterdir()):
        node_urn = load_node_config(nodedir).urn
        store = NodeStore(nodedir / "db" / "node.sqlite")
        try:
            for record in store.slivers():
                held.setdefault(node_urn, []).append(record.sliver_urn)
        finally:
            store.database.close()
    return held


def credentials(registry_url: str, root_file: Path, alice: Identity) -> list[dict[str, Any]]:
    registry = proxy(registry_url, root_file, alice)
    user = str(registry.GetSelfCredential(alice.gid.to_pem(), "plc.alice", "user"))
    slice_cred = str(registry.GetCredential([user], f"plc.princeton.{SLICE}", "slice"))
    return [{"geni_type": "geni_sfa", "geni_version": 3,
             "geni_value": xmlrpc.client.Binary(slice_cred.encode())}]


def provision_in_thread(am: Any, creds: list[dict[str, Any]], alice: Identity
                        ) -> tuple[threading.Thread, list[Any]]:
    """Provision from a client thread; its outcome (reply or exception) lands in the list."""
    outcome: list[Any] = []
    users = [{"urn": alice.gid.urn, "keys": ["ssh-rsa AAAAB3Nza crash@lab"]}]

    def call() -> None:
        try:
            outcome.append(am.Provision([SLICE_URN], creds, {
                "geni_rspec_version": GENI3, "geni_users": users, "geni_best_effort": True}))
        except Exception as exc:  # the aggregate dies under it
            outcome.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread, outcome


def kill_in_the_middle(deployment: Deployment, aggregate: Part) -> int:
    """SIGKILL the aggregate once some but not all slivers exist at the nodes; how many did."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = slivers_at_nodes(deployment)
        if seen >= 5:
            aggregate.kill()
            assert seen < NODES, "Provision finished before the kill: nothing was interrupted"
            return seen
        time.sleep(0.005)
    raise AssertionError("no sliver appeared at the nodes within 60 s of Provision")


def test_killed_during_provision_converges(crash_site: tuple[Deployment, dict[str, Identity],
                                                             Part]) -> None:
    deployment, ids, _ = crash_site
    root_file = deployment.trusted_roots_dir / "plc.gid"
    set_parallelism(deployment, 4)  # a few nodes at a time, so that the kill lands mid-way
    aggregate = Part.start("aggregate", deployment.directory)
    try:
        creds = credentials(aggregate.urls["registry"], root_file, ids["alice"])
        am: Any = proxy(aggregate.urls["aggregate"] + "am/3", root_file, ids["alice"])
        allocated = ok(am.Allocate(SLICE_URN, creds, request(NODES), {}))
        assert len(allocated["geni_slivers"]) == NODES
        thread, outcome = provision_in_thread(am, creds, ids["alice"])
        seen = kill_in_the_middle(deployment, aggregate)
        thread.join(30)
        assert outcome and isinstance(outcome[0], Exception)  # the caller saw the crash
    finally:
        aggregate.stop()

    set_parallelism(deployment, 32)
    restarted = Part.start("aggregate", deployment.directory)
    try:
        line = restarted.wait_for("err", RECONCILED.search)
        adopted, redeemed, failed, orphans = map(int, RECONCILED.search(line).groups())  # type: ignore[union-attr]
        # held at the nodes: adopted; sent but not redeemed yet: redeemed now (Provision ends)
        assert adopted >= seen and redeemed > 0 and adopted + redeemed == NODES
        assert failed == 0 and orphans == 0
        _assert_converged(deployment)
        am = proxy(restarted.urls["aggregate"] + "am/3", root_file, ids["alice"])
        creds = credentials(restarted.urls["registry"], root_file, ids["alice"])
        status = ok(am.Status([SLICE_URN], creds, {}))
        assert {s["geni_allocation_status"] for s in status["geni_slivers"]} == {
            "geni_provisioned"}
        assert len(status["geni_slivers"]) == NODES
        assert not any(s.get("geni_error") for s in status["geni_slivers"])
    finally:
        restarted.stop()


def _assert_converged(deployment: Deployment) -> None:
    """Every node holds exactly the slivers the aggregate records as provisioned there."""
    store = AggregateStore(deployment.db_dir / AGGREGATE_DB)
    try:
        slivers = store.slivers_of(SLICE_URN)
    finally:
        store.close()
    assert len(slivers) == NODES
    assert {s.allocation for s in slivers} == {AllocationState.PROVISIONED}
    expected: dict[str, list[str]] = {}
    for sliver in slivers:
        expected.setdefault(sliver.node_urn, []).append(sliver.urn)
    held = node_holdings(deployment)
    assert {node: sorted(urns) for node, urns in held.items()} == {
        node: sorted(urns) for node, urns in expected.items()}
    assert all(len(urns) == 1 for urns in held.values())  # one sliver of the slice per node
    assert slivers_at_nodes(deployment) == NODES


# --- each rule on a small site in this process -----------------------------------------------

SMALL = ["orphan", "adopt", "lost", "sync", "away"]


@pytest.fixture(scope="module")
def site(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[NmSite]:
    deployment, ids, _ = build_deployment(tmp_path_factory.mktemp("reconcile"), 3, keys, SMALL)
    running = start_site(reactor, deployment, ids, SMALL)
    yield running
    stop_site(reactor, running)


def reconcile(reactor: Any, site: NmSite) -> ReconcileReport:
    assert site.driver is not None
    return run_driver(reactor, Reconciler.of(site.driver).run())


def records(site: NmSite, name: str) -> dict[str, Any]:
    store = site.store()
    try:
        return {s.urn: s for s in store.slivers_of(slice_urn(name))}
    finally:
        store.close()


def rewrite(site: NmSite, *slivers: Any) -> None:
    store = site.store()
    try:
        store.update(list(slivers))
    finally:
        store.close()


def test_orphan_is_deleted_at_its_node_and_a_second_pass_changes_nothing(
        reactor: Any, site: NmSite) -> None:
    placed = provisioned_slice(site, "orphan", 2)
    lost, kept = sorted(placed)
    store = site.store()
    store.delete([lost])  # the record is gone, as after a crash before the node heard of it
    store.close()
    report = reconcile(reactor, site)
    assert report.orphans_deleted == (lost,)
    assert lost not in slivers_on(site, placed[lost])
    assert not (node_dir(site, placed[lost]) / "slivers" / "plc_princeton_orphan").exists()
    assert kept in slivers_on(site, placed[kept])  # the recorded one is untouched
    before = records(site, "orphan")
    assert not reconcile(reactor, site).changed
    assert records(site, "orphan") == before


def test_sent_ticket_whose_sliver_exists_is_adopted(reactor: Any, site: NmSite) -> None:
    placed = provisioned_slice(site, "adopt", 2)
    urn = sorted(placed)[0]
    provisioned = records(site, "adopt")[urn]
    rewrite(site, provisioned.with_changes(  # as recorded before Provision's reply was written
        allocation=AllocationState.ALLOCATED, operational=OperationalState.PENDING_ALLOCATION,
        login_user="", users=()))
    report = reconcile(reactor, site)
    assert report.adopted == (urn,) and not report.redeemed and not report.orphans_deleted
    adopted = records(site, "adopt")[urn]
    assert adopted.allocation is AllocationState.PROVISIONED
    assert adopted.operational is OperationalState.NOTREADY
    assert adopted.login_user == "plc_princeton_adopt"
    assert [u.keys for u in adopted.users] == [("ssh-rsa AAAAB3Nza first@lab",)]
    assert adopted.expires == provisioned.expires
    assert urn in slivers_on(site, placed[urn])
    assert not reconcile(reactor, site).changed


def test_provisioned_sliver_the_node_lost_is_marked_failed(reactor: Any, site: NmSite) -> None:
    placed = provisioned_slice(site, "lost", 1)
    ((urn, node),) = placed.items()
    at_node = node_proxy(site.nodes[node].url, site.root_file, site.ids["alice"])
    ok(at_node.DeleteSliver(urn, site.cred("lost")))  # behind the aggregate's back
    report = reconcile(reactor, site)
    assert report.failed == (urn,) and not report.redeemed  # a deleted ticket is not replayed
    failed = records(site, "lost")[urn]
    assert failed.operational is OperationalState.FAILED
    assert "could not be redeemed again" in failed.error
    assert urn not in slivers_on(site, node)  # nothing came back, nothing duplicated
    described = ok(site.am().Describe([slice_urn("lost")], site.cred("lost"),
                                      {"geni_rspec_version": GENI3}))
    (status,) = described["geni_slivers"]
    assert status["geni_operational_status"] == "geni_failed" and status["geni_error"]
    assert not reconcile(reactor, site).changed


def test_operational_state_is_taken_from_the_node(reactor: Any, site: NmSite) -> None:
    placed = provisioned_slice(site, "sync", 1)
    ok(site.am().PerformOperationalAction([slice_urn("sync")], site.cred("sync"),
                                          "geni_start", {}))
    ((urn, _),) = placed.items()
    started = records(site, "sync")[urn]
    assert started.operational is OperationalState.READY
    rewrite(site, started.with_changes(operational=OperationalState.NOTREADY))
    report = reconcile(reactor, site)
    assert report.synced == (urn,)
    assert records(site, "sync")[urn].operational is OperationalState.READY


def test_unreachable_node_is_left_for_the_health_check(reactor: Any, site: NmSite) -> None:
    placed = provisioned_slice(site, "away", 2)
    urn = sorted(placed)[0]
    victim = placed[urn]
    store = site.store()
    store.delete([urn])  # an orphan on a node that does not answer
    store.close()
    blockingCallFromThread(reactor, site.nodes[victim].stop)
    assert site.driver is not None
    blockingCallFromThread(reactor, site.driver.client.close)
    try:
        report = reconcile(reactor, site)
        assert report.skipped_nodes == (victim,) and not report.changed
    finally:
        _restart_node(reactor, site, victim)
    assert urn in slivers_on(site, victim)  # untouched while away
    assert reconcile(reactor, site).orphans_deleted == (urn,)  # and deleted once back
    assert urn not in slivers_on(site, victim)
