"""A slice on a node manager with the enforcing backend, over TLS: the node advertises what it
enforces, Status reports what the sliver uses, Delete leaves nothing on the host."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sfa.deploy.layout import node_dirs
from sfa.nodemanager import netns
from sfa.nodemanager.backend import SliverSpec
from sfa.nodemanager.enforcing import EnforcingBackend, EnforcingConfig
from sfa.nodemanager.localapi import LocalApi
from sfa.nodemanager.nodedir import load_node_config, make_backend, open_node, write_node_config
from sfa.nodemanager.resources import Resources
from sfa.rspecs.reader import read_rspec
from tests.nodemanager.hosttraces import host_traces
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

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="cgroups, loop mounts and namespaces need root"
)
SLICE = "urn:publicid:IDN+plc:princeton+slice+exp1"
LOGIN = "plc_princeton_exp1"
ENFORCING = EnforcingConfig(prefix=f"w15-{os.getpid()}", network=True, bandwidth_unit_kbps=1000)


def backends(site: NmSite) -> list[EnforcingBackend]:
    found = []
    for nodedir in node_dirs(site.deployment):
        backend = make_backend(nodedir, load_node_config(nodedir))
        assert isinstance(backend, EnforcingBackend)
        found.append(backend)
    return found


@pytest.fixture(scope="module")
def site(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[NmSite]:
    deployment, ids, _ = build_deployment(tmp_path_factory.mktemp("enf"), 1, keys, ["exp1"])
    for nodedir in node_dirs(deployment):
        config = load_node_config(nodedir)
        write_node_config(nodedir, replace(config, backend="enforcing", enforcing=ENFORCING))
    running = start_site(reactor, deployment, ids, ["exp1"])
    try:
        yield running
    finally:
        try:
            stop_site(reactor, running)
        finally:
            for backend in backends(running):
                backend.reconcile([])
                if backend.cgroups is not None:
                    backend.cgroups.remove_base()
                netns.remove_owned(backend.tag, set())


def test_the_ad_says_what_each_node_enforces(reactor: Any, site: NmSite) -> None:
    """After a health check (GetVersion at every node manager), each node of the
    advertisement carries the knobs its node manager enforces."""
    assert site.driver is not None
    run_driver(reactor, site.driver.check_health())
    (backend,) = backends(site)
    ad = ok(site.am().ListResources(site.cred("alice"), {"geni_rspec_version": GENI3}))
    (node,) = read_rspec(ad).nodes
    assert node.resources is not None
    assert node.resources.enforced == tuple(sorted(backend.enforcement.enforced))
    assert "disk_mb" in node.resources.enforced


def test_enforced_sliver_reports_usage_and_delete_leaves_nothing(site: NmSite) -> None:
    am, creds = site.am(), site.cred("exp1")
    ok(am.Allocate(SLICE, creds, request(1, "exec sleep 60"), {}))
    ok(am.Provision([SLICE], creds, {"geni_rspec_version": GENI3}))
    started = ok(am.PerformOperationalAction([SLICE], creds, "geni_start", {}))
    assert {s["geni_operational_status"] for s in started} == {"geni_ready"}

    (service,) = site.nodes.values()
    version = ok(node_proxy(service.url, site.root_file, site.ids["alice"]).GetVersion())
    assert version["enforcement"]["backend"] == "enforcing"
    assert set(version["enforcement"]["enforced"]) >= {"disk_mb", "bandwidth_kbps"}

    (status,) = ok(am.Status([SLICE], creds, {}))["geni_slivers"]
    usage = status["sfa_usage"]
    assert usage["tasks"] >= 1 and usage["cpu_ns"] > 0 and usage["memory_bytes"] > 0
    assert 0 < usage["disk_used_bytes"] <= usage["disk_quota_bytes"]
    assert usage["sent_bytes"] >= 0 and usage["received_bytes"] >= 0
    described = ok(am.Describe([SLICE], creds, {"geni_rspec_version": GENI3,
                                                "sfa_usage": True}))
    assert described["geni_slivers"][0]["sfa_usage"]["tasks"] >= 1
    info = LocalApi(service.nm.store, usage=service.nm.usage).get_sliver_info(LOGIN)
    assert info["usage"]["tasks"] >= 1

    (backend,) = backends(site)
    assert host_traces(backend, LOGIN)  # the check below sees what is there
    ok(am.Delete([SLICE], creds, {}))
    assert host_traces(backend, LOGIN) == []
    assert not backend.sliver_dir(LOGIN).exists()


def test_restart_removes_what_belongs_to_no_sliver(site: NmSite) -> None:
    """A node manager starting again (recover) removes cgroups, mounts, images and namespaces
    of its tag that no sliver of its database owns."""
    (backend,) = backends(site)
    stray = SliverSpec(
        login="w15stray", slice_urn="urn:publicid:IDN+plc+slice+stray",
        sliver_urn="urn:publicid:IDN+plc+sliver+stray", node_urn="urn:publicid:IDN+plc+node+x",
        expires=datetime.now(UTC) + timedelta(hours=1), resources=Resources(disk_mb=8),
        slice_gid_pem="-", node_gid_pem="-", initscript="exec sleep 60",
    )
    backend.create(stray)
    backend.start(stray)
    assert host_traces(backend, "w15stray")
    (nodedir,) = node_dirs(site.deployment)
    restarted = open_node(nodedir)
    try:
        restarted.recover()
    finally:
        restarted.store.database.close()
    assert host_traces(backend, "w15stray") == []


def test_expiry_leaves_nothing_behind(site: NmSite) -> None:
    """The node manager reaps a sliver whose lease ended: cgroups, namespace, mount, loop
    device and image go with it, as with Delete."""
    am, creds = site.am(), site.cred("exp1")
    ok(am.Allocate(SLICE, creds, request(1, "exec sleep 60"), {}))
    ok(am.Provision([SLICE], creds, {"geni_rspec_version": GENI3}))
    ok(am.PerformOperationalAction([SLICE], creds, "geni_start", {}))
    (service,) = site.nodes.values()
    (backend,) = backends(site)
    assert host_traces(backend, LOGIN)
    reaped = service.nm.reap_expired(datetime.now(UTC) + timedelta(days=400))
    assert len(reaped) == 1
    assert host_traces(backend, LOGIN) == []
    ok(am.Delete([SLICE], creds, {}))  # the aggregate's record; the node has nothing left
