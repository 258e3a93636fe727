"""Admission control: a ticket is redeemed only if it fits the node's declared capacity and the
node is within the operator's thresholds (load average, free disk)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sfa.errors import Refused
from sfa.nodemanager.resources import Resources


@dataclass(frozen=True)
class Thresholds:
    """Refuse new slivers when the 1-minute load average is above `max_load` or the node's data
    disk has less than `min_free_disk_percent` free. None turns a threshold off."""

    max_load: float | None = None
    min_free_disk_percent: float | None = None


@dataclass(frozen=True)
class Measurements:
    load: float
    free_disk_percent: float


def measure(path: Path) -> Measurements:
    """The node's 1-minute load average and the free share of the disk holding `path`."""
    stats = os.statvfs(path)
    free = 100.0 * stats.f_bavail / stats.f_blocks if stats.f_blocks else 0.0
    return Measurements(load=os.getloadavg()[0], free_disk_percent=free)


def default_capacity() -> Resources:
    """A node's capacity when node.toml declares none: 32 default slivers' worth."""
    return Resources(
        cpu_share=32 * 32,
        memory_mb=32 * 128,
        disk_mb=32 * 5 * 1024,
        tasks=32 * 256,
        bandwidth_kbps=32,
    )


class Admission:
    """Decides whether one more sliver fits; the caller holds the node's state lock."""

    def __init__(
        self,
        capacity: Resources,
        thresholds: Thresholds,
        data_dir: Path,
        *,
        probe: Callable[[Path], Measurements] = measure,
    ) -> None:
        self.capacity = capacity
        self.thresholds = thresholds
        self.data_dir = data_dir
        self.probe = probe

    def check(self, requested: Resources, allocated: Resources) -> None:
        """Refused (nothing created) when `requested` on top of `allocated` does not fit."""
        over = allocated.plus(requested).exceeding(self.capacity)
        if over:
            free = self.free(allocated)
            detail = ", ".join(
                f"{name} {getattr(requested, name)} > {getattr(free, name)} free" for name in over
            )
            raise Refused(f"the node cannot admit this sliver: {detail}")
        self._check_thresholds()

    def free(self, allocated: Resources) -> Resources:
        """What is left of the capacity (never negative)."""
        left = self.capacity.minus(allocated)
        return Resources(**{name: max(0, value) for name, value in left.to_dict().items()})

    def measurements(self) -> Measurements:
        return self.probe(self.data_dir)

    def _check_thresholds(self) -> None:
        limits = self.thresholds
        if limits.max_load is None and limits.min_free_disk_percent is None:
            return
        now = self.measurements()
        if limits.max_load is not None and now.load > limits.max_load:
            raise Refused(
                f"the node is too busy: load average {now.load:.2f} > {limits.max_load}; "
                "retry later or choose another node"
            )
        if (
            limits.min_free_disk_percent is not None
            and now.free_disk_percent < limits.min_free_disk_percent
        ):
            raise Refused(
                f"the node's disk is too full: {now.free_disk_percent:.1f}% free < "
                f"{limits.min_free_disk_percent}%; choose another node"
            )
