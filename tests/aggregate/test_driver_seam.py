"""The driver seam without a network: choosing a driver by name or `module:factory`, the
refusals when none or a broken one is configured, update_users reaching the driver, and a
driver's inventory (offered at start, changed later) reaching the advertisement."""

from __future__ import annotations

import asyncio
import logging
import sys
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sfa.aggregate import (
    Action,
    DriverContext,
    DriverError,
    MemoryDriver,
    Node,
    SliverResult,
    UserKeys,
    build_driver,
    node_urn,
    registered_drivers,
    resolve_factory,
)
from sfa.aggregate.driver_host import start_driver
from sfa.aggregate.driver_loader import BUILTIN_DRIVERS, DRIVER_GROUP
from sfa.aggregate.slivers import Sliver
from sfa.aggregate.store import AggregateStore
from sfa.errors import BadArgs
from sfa.rspecs.reader import read_rspec
from tests.aggregate.conftest import (
    AM_URN,
    SLICE1,
    Aggregate,
    Pki,
    make_aggregate,
    node,
    small_inventory,
)
from tests.aggregate.conftest import node_urn as plc_node
from tests.aggregate.test_api_v3 import OPTS, allocate
from tests.rspecs.test_extensions import docstring_example

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def context(tmp_path: Path, pki: Pki) -> Iterator[DriverContext]:
    store = AggregateStore(tmp_path / "aggregate.sqlite")
    yield DriverContext(name="test", authority_hrn="plc", am_urn=AM_URN, store=store,
                        state_dir=tmp_path, gid=pki.alice.gid, key=pki.alice.key,
                        log=logging.getLogger("test"))
    store.close()


# --- choosing ---------------------------------------------------------------------------------

def test_a_registered_name_and_a_module_path_build_the_driver(context: DriverContext) -> None:
    assert isinstance(build_driver("memory", context), MemoryDriver)
    assert isinstance(build_driver("sfa.aggregate.memory_driver:memory_driver", context),
                      MemoryDriver)
    assert {"nodemanager", "memory"} <= set(registered_drivers())


def test_the_package_metadata_registers_the_builtin_drivers() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    registered = dict(project["entry-points"][DRIVER_GROUP])
    assert registered == dict(BUILTIN_DRIVERS)
    for target in registered.values():  # each names a real callable
        module, _, name = target.partition(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name))


def test_another_package_registers_a_driver_by_entry_point(tmp_path: Path,
                                                           context: DriverContext) -> None:
    dist = tmp_path / "othertestbed-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: othertestbed\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{DRIVER_GROUP}]\nother = sfa.aggregate.memory_driver:memory_driver\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert registered_drivers()["other"] == "sfa.aggregate.memory_driver:memory_driver"
        assert isinstance(build_driver("other", context), MemoryDriver)
    finally:
        sys.path.remove(str(tmp_path))
    assert "other" not in registered_drivers()


@pytest.mark.parametrize(("spec", "message"), [
    ("", "[aggregate] driver is not set"),
    ("   ", "[aggregate] driver is not set"),
    ("nosuchdriver", "not a registered driver"),
    ("no_such_module_w14a:factory", "cannot import no_such_module_w14a"),
    ("sfa.aggregate.memory_driver:no_such_factory", "no callable no_such_factory"),
    ("sfa.aggregate.memory_driver:", "missing after the colon"),
])
def test_no_driver_or_a_wrong_one_is_refused_clearly(spec: str, message: str) -> None:
    with pytest.raises(DriverError) as refused:
        resolve_factory(spec)
    assert message in refused.value.message
    assert "writing-a-driver.md" in refused.value.message or "cannot import" in message


def _refusing(context: DriverContext) -> Any:
    raise BadArgs("nodes must be positive")


def _half_driver(context: DriverContext) -> Any:
    return object()


def test_a_factory_that_refuses_or_returns_no_driver_is_refused(context: DriverContext
                                                                ) -> None:
    with pytest.raises(DriverError, match="refused its settings: nodes must be positive"):
        build_driver(f"{__name__}:_refusing", context)
    with pytest.raises(DriverError, match="lacks start, stop, nodes"):
        build_driver(f"{__name__}:_half_driver", context)


# --- the protocol at work -----------------------------------------------------------------------

@dataclass
class UsersOnlyDriver(MemoryDriver):
    """Refuses geni_update_users through perform_action: only update_users may do it."""

    async def perform_action(self, slivers: Sequence[Sliver], action: Action,
                             users: Sequence[UserKeys]) -> list[SliverResult]:
        if action is Action.UPDATE_USERS:
            return [SliverResult(s.urn, None, "went to perform_action") for s in slivers]
        return await super().perform_action(slivers, action, users)


def test_geni_update_users_calls_the_drivers_update_users(tmp_path: Path, pki: Pki,
                                                          cred1: str) -> None:
    am = make_aggregate(tmp_path / "am.sqlite", pki, driver=UsersOnlyDriver(),
                        nodes=small_inventory())
    try:
        result = allocate(am, pki, cred1, node("a", plc_node(1)))
        urn = result["geni_slivers"][0]["geni_sliver_urn"]
        am.v3.provision(pki.alice.gid, [SLICE1], [cred1], OPTS)
        keys = [{"urn": pki.bob.gid.urn, "keys": ["ssh-rsa BBBB bob"]}]
        done = am.v3.perform_operational_action(pki.alice.gid, [SLICE1], [cred1],
                                                "geni_update_users", {"geni_users": keys})
        assert done[0]["geni_error"] == ""
        assert ("update_users", 1) in am.driver.calls
        assert am.driver.slivers[urn].users[0].keys == ("ssh-rsa BBBB bob",)
    finally:
        am.store.close()


@dataclass
class GrowingDriver(MemoryDriver):
    """Offers one node at start and adds or removes others through its inventory later."""

    async def nodes(self) -> list[Node]:
        await asyncio.sleep(0)  # an asyncio awaitable, as the await rule allows
        return [Node(urn=node_urn("plc", "extra1"), hostname="extra1", site="x")]


def _ad_nodes(am: Aggregate) -> set[str]:
    return {n.component_id or "" for n in read_rspec(am.v3.ctx.ads.get()).nodes}


def test_driver_inventory_reaches_the_advertisement(tmp_path: Path, pki: Pki,
                                                    cred1: str) -> None:
    driver = GrowingDriver()
    am = make_aggregate(tmp_path / "am.sqlite", pki, driver=driver, nodes=small_inventory())
    try:
        assert asyncio.run(start_driver(driver, am.store)) == 1
        extra1, extra2 = node_urn("plc", "extra1"), node_urn("plc", "extra2")
        assert extra1 in _ad_nodes(am) and len(_ad_nodes(am)) == 9
        assert driver.inventory is not None
        driver.inventory.update([Node(urn=extra2, hostname="extra2", site="x")])
        assert extra2 in _ad_nodes(am)
        busy = allocate(am, pki, cred1, node("a", plc_node(1)))["geni_slivers"][0]
        driver.inventory.remove([extra2, plc_node(1)])
        ad = {n.component_id: n for n in read_rspec(am.v3.ctx.ads.get()).nodes}
        assert extra2 not in ad  # gone
        assert ad[plc_node(1)].available is False  # holds a sliver: kept, marked down
        assert am.store.sliver(busy["geni_sliver_urn"]) is not None
    finally:
        am.store.close()


def test_the_builder_docstring_example_is_accepted_by_the_mapper(am: Aggregate, pki: Pki,
                                                                cred1: str) -> None:
    result = am.v3.allocate(pki.alice.gid, SLICE1, [cred1], docstring_example(), {})
    slivers = result["geni_slivers"]
    assert len(slivers) == 2 and {s["geni_allocation_status"] for s in slivers} == {
        "geni_allocated"}
    placed = {s.client_id: s for s in am.store.slivers_of(SLICE1)}
    assert placed["n1"].node_urn == plc_node(1)
    assert {s.sliver_type for s in placed.values()} == {"sfa-container"}


def test_a_request_naming_no_sliver_type_gets_the_type_the_drivers_node_offers(
        tmp_path: Path, pki: Pki, cred1: str) -> None:
    offered = [Node(urn=node_urn("plc", "ns1"), hostname="ns1", site="x",
                    sliver_types=("netns",), exclusive_allowed=False)]
    driver = MemoryDriver(offered=offered)
    am = make_aggregate(tmp_path / "am.sqlite", pki, driver=driver)
    try:
        asyncio.run(start_driver(driver, am.store))
        allocate(am, pki, cred1, node("a"))
        assert [s.sliver_type for s in am.store.slivers_of(SLICE1)] == ["netns"]
    finally:
        am.store.close()
