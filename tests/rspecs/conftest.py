"""Fixtures for the RSpec tests: the real samples and a typical advertisement model."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfa.rspecs.builder import advertisement
from sfa.rspecs.model import (
    HardwareType,
    Interface,
    Location,
    Node,
    NodeResources,
    ResourceAmounts,
    RSpec,
    SliverType,
)

AM = "urn:publicid:IDN+plc+authority+am"


@pytest.fixture(scope="session")
def sample_files(samples_dir: Path) -> list[Path]:
    files = sorted(p for p in (samples_dir / "rspecs").glob("*/*") if p.is_file())
    assert len(files) >= 9
    return files


def make_node(i: int) -> Node:
    return Node(
        component_id=f"urn:publicid:IDN+plc:site+node+n{i}",
        component_manager_id=AM,
        component_name=f"n{i}",
        exclusive=False,
        hardware_types=[HardwareType("pc")],
        sliver_types=[SliverType("sfa-vm")],
        location=Location("US", "40.5", "-70.25"),
        available=True,
        interfaces=[Interface(component_id=f"urn:publicid:IDN+plc:site+interface+n{i}:eth0")],
        resources=NodeResources(
            capacity=ResourceAmounts(100, 4096, 10_000, 512, 100_000),
            free=ResourceAmounts(60, 2048, 5_000, 256, 50_000),
            load=0.4,
        ),
    )


@pytest.fixture
def ad_model() -> RSpec:
    return advertisement([make_node(i) for i in range(3)], aggregate_manager_id=AM,
                         sliver_types=["sfa-vm"])
