"""Per-sliver cost of the enforcing backend against the directory backend, in one run.

For N slivers (default 100) each backend runs, sliver by sliver: create (timed), then start +
stop (timed; the init script is `exec sleep 60`, so start makes a real process and stop kills
it), then destroy (timed). The enforcing backend runs with the host's cgroups and disk images
and, with --network, a namespace + veth + HTB per sliver. Prints per-sliver means and the
enforcing / directory ratio for each step, and the load average before and after. Needs root
for the enforcing mechanisms (without it they are only counted and the ratio says little).

    sudo .venv/bin/python benchmarks/sliver_backend.py [N] [--network]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sfa.nodemanager import netns
from sfa.nodemanager.backend import Backend, SliverSpec
from sfa.nodemanager.dirbackend import DirBackend
from sfa.nodemanager.enforcing import EnforcingBackend, EnforcingConfig
from sfa.nodemanager.resources import Resources

STEPS = ("create", "start+stop", "destroy")


def spec(index: int) -> SliverSpec:
    login = f"bench{index:04d}"
    return SliverSpec(
        login=login, slice_urn=f"urn:publicid:IDN+plc+slice+{login}",
        sliver_urn=f"urn:publicid:IDN+plc+sliver+{login}",
        node_urn="urn:publicid:IDN+plc+node+bench", expires=datetime.now(UTC) + timedelta(1),
        resources=Resources(disk_mb=64, bandwidth_kbps=1000), slice_gid_pem="slice gid",
        node_gid_pem="node gid", initscript="exec sleep 60",
    )


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def life(backend: Backend, sliver: SliverSpec) -> tuple[float, float, float]:
    """Seconds to create, to start and stop, and to destroy one sliver."""
    create = timed(lambda: backend.create(sliver))
    cycle = timed(lambda: (backend.start(sliver), backend.stop(sliver.login)))
    destroy = timed(lambda: backend.destroy(sliver.login))
    return create, cycle, destroy


def run(backend: Backend, count: int) -> dict[str, list[float]]:
    """Seconds per sliver for each step."""
    seconds: dict[str, list[float]] = {step: [] for step in STEPS}
    for index in range(count):
        for step, value in zip(STEPS, life(backend, spec(index)), strict=True):
            seconds[step].append(value)
    return seconds


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    count = int(args[0]) if args else 100
    network = "--network" in sys.argv
    base = Path(tempfile.mkdtemp(prefix="sfa-bench-"))
    base.chmod(0o711)
    config = EnforcingConfig(prefix=f"bench-{os.getpid()}", network=network)
    enforcing = EnforcingBackend(base / "enf" / "slivers", base / "enf" / "images",
                                 "urn:publicid:IDN+plc+node+bench", config, stop_grace=0.5)
    directory = DirBackend(base / "dir" / "slivers", stop_grace=0.5)
    print(enforcing.enforcement.summary())
    print(f"load average before: {os.getloadavg()[0]:.2f}; {count} slivers per backend")
    try:
        results = {"directory": run(directory, count), "enforcing": run(enforcing, count)}
    finally:
        enforcing.reconcile([])
        if enforcing.cgroups is not None:
            enforcing.cgroups.remove_base()
        netns.remove_owned(enforcing.tag, set())
        shutil.rmtree(base, ignore_errors=True)
    print(f"{'step':<12}{'directory ms':>14}{'enforcing ms':>14}{'ratio':>8}"
          f"{'enf. median ms':>16}")
    for step in STEPS:
        plain = statistics.mean(results["directory"][step]) * 1000
        enforced = statistics.mean(results["enforcing"][step]) * 1000
        median = statistics.median(results["enforcing"][step]) * 1000
        print(f"{step:<12}{plain:>14.2f}{enforced:>14.2f}{enforced / plain:>7.1f}x{median:>16.2f}")
    total = {name: sum(sum(v) for v in steps.values()) for name, steps in results.items()}
    print(f"whole life of {count} slivers: directory {total['directory']:.2f} s, enforcing "
          f"{total['enforcing']:.2f} s ({total['enforcing'] / total['directory']:.1f}x)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
