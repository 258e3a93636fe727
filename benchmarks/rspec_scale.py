"""Write and read back a big advertisement: 1,000 / 10,000 / 50,000 nodes.

Each node has a hardware type, a sliver type, a location, availability, one interface and our
resource attributes. Every size runs in a fresh process so that its peak memory (max RSS, which
includes libxml2's allocations) is its own. Goals at 10,000 nodes: write <= 0.3 s,
read <= 0.3 s, peak memory <= 200 MB.

    .venv/bin/python benchmarks/rspec_scale.py [SIZES...]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

from sfa.rspecs.builder import advertisement
from sfa.rspecs.model import (
    HardwareType,
    Interface,
    Location,
    Node,
    NodeResources,
    ResourceAmounts,
    SliverType,
)
from sfa.rspecs.reader import read_rspec
from sfa.rspecs.writer import write_rspec

AM = "urn:publicid:IDN+bench+authority+am"
SIZES = (1_000, 10_000, 50_000)
REPEATS = 5


def make_nodes(count: int) -> list[Node]:
    """`count` advertised nodes, as an aggregate's inventory would produce them."""
    return [
        Node(
            component_id=f"urn:publicid:IDN+bench:site{i % 50}+node+n{i}",
            component_manager_id=AM,
            component_name=f"n{i}",
            exclusive=False,
            hardware_types=[HardwareType("pc")],
            sliver_types=[SliverType("sfa-vm")],
            location=Location("US", f"{40 + i % 10}.5", f"{-70 - i % 10}.25"),
            available=i % 7 != 0,
            interfaces=[Interface(component_id=f"urn:publicid:IDN+bench:site{i % 50}"
                                               f"+interface+n{i}:eth0")],
            resources=NodeResources(
                capacity=ResourceAmounts(100, 8192, 100_000, 1024, 1_000_000),
                free=ResourceAmounts(100 - i % 100, 4096, 50_000, 512, 500_000),
                load=(i % 100) / 100,
            ),
        )
        for i in range(count)
    ]


def measure(count: int) -> dict[str, float]:
    """Best-of-REPEATS write and read times and this process's peak memory."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ad = advertisement(make_nodes(count), aggregate_manager_id=AM, sliver_types=["sfa-vm"])
    write_times, read_times = [], []
    text = ""
    for _ in range(REPEATS):
        start = time.perf_counter()
        text = write_rspec(ad)
        write_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        back = read_rspec(text, expected_type="advertisement", max_nodes=count,
                          max_bytes=len(text.encode()) + 1)
        read_times.append(time.perf_counter() - start)
        assert len(back.nodes) == count
        del back
    if read_rspec(text, max_nodes=count, max_bytes=1 << 30) != ad:
        raise SystemExit("round trip changed the model")
    return {
        "nodes": count,
        "bytes": len(text.encode()),
        "write_s": min(write_times),
        "read_s": min(read_times),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "model_and_run_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before)
        / 1024,
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        print(json.dumps(measure(int(argv[1]))))
        return
    sizes = [int(arg) for arg in argv] or list(SIZES)
    rows = []
    for count in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(count)],
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out))
    base = rows[0]
    print(f"{'nodes':>7} {'MB doc':>7} {'write s':>8} {'read s':>7} {'peak MB':>8} "
          f"{'write x':>8} {'read x':>7}")
    for row in rows:
        print(f"{row['nodes']:>7} {row['bytes'] / 1e6:>7.1f} {row['write_s']:>8.3f} "
              f"{row['read_s']:>7.3f} {row['peak_mb']:>8.0f} "
              f"{row['write_s'] / base['write_s']:>8.1f} {row['read_s'] / base['read_s']:>7.1f}")
    print("(x = time relative to the first size; peak MB = max RSS of the process)")


if __name__ == "__main__":
    main(sys.argv[1:])
