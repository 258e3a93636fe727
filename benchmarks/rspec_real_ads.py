"""Read other aggregates' advertisements: sfa's reader against geni-lib's, in one run.

Part 1 reads every advertisement in the given directories (default: the real documents in
../shared/samples/rspecs/ad) with `sfa.rspecs.read_rspec` and with geni-lib 0.9.9.4's
`pgad.Advertisement`, walking every node and link (which builds geni-lib's node and link
objects), alternating the two, best of REPEATS; it also times the hardened parse alone, the
floor under any reader. Goal: sfa at least 2.5x faster than geni-lib.

Part 2 builds a 10,000-node advertisement in the style of ProtoGENI/InstaGENI from the
InstaGENI sample (its nodes and links repeated in turn with new names: hardware types with
emulab node types, sliver types with disk images, several interfaces per node, feature
descriptors, links with properties) and reads it in a fresh process: best of 3 and the
process's peak memory. Goals: <= 0.5 s and <= 300 MB.

    .venv/bin/python benchmarks/rspec_real_ads.py [--ads DIR]... [--nodes N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from sfa.rspecs.model import GENI_NS
from sfa.rspecs.reader import read_rspec
from sfa.safexml import parse_xml

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SFA_SHARED_DIR", REPO.parent / "shared"))
SAMPLE_ADS = SHARED / "samples" / "rspecs" / "ad"
INSTAGENI = SAMPLE_ADS / (
    "GENI-NSF_geni-portal__portal__www__common__map__rspec-instageni-clemson-edu.xml")
REPEATS = 15


def load(directories: list[Path]) -> list[str]:
    """Every *.xml document of the directories, as text (what geni-lib takes)."""
    files = sorted(p for d in directories for p in d.glob("*.xml") if p.stat().st_size)
    return [p.read_text(encoding="utf-8") for p in files]


def read_ours(docs: list[str]) -> tuple[int, int]:
    nodes = links = 0
    for doc in docs:
        model = read_rspec(doc)
        nodes += len(model.nodes)
        links += len(model.links)
    return nodes, links


def read_genilib(docs: list[str]) -> tuple[int, int]:
    from geni.rspec import pgad  # noqa: PLC0415 - only this benchmark needs geni-lib

    nodes = links = 0
    for doc in docs:
        ad = pgad.Advertisement(xml=doc)
        nodes += sum(1 for _ in ad.nodes)
        links += sum(1 for _ in ad.links)
    return nodes, links


def parse_only(docs: list[str]) -> tuple[int, int]:
    for doc in docs:
        parse_xml(doc, what="RSpec", max_bytes=1 << 30, keep_blank_text=False)
    return 0, 0


def compare(docs: list[str], repeats: int) -> dict[str, float]:
    """Best time of each reader, the readers alternating so load affects both alike."""
    readers: dict[str, Callable[[list[str]], tuple[int, int]]] = {
        "sfa": read_ours, "geni-lib": read_genilib, "parse only": parse_only}
    best = dict.fromkeys(readers, float("inf"))
    counts = {}
    for _ in range(repeats):
        for name, reader in readers.items():
            start = time.perf_counter()
            counts[name] = reader(docs)
            best[name] = min(best[name], time.perf_counter() - start)
    if counts["sfa"] != counts["geni-lib"]:
        raise SystemExit(f"the readers disagree: sfa {counts['sfa']}, "
                         f"geni-lib {counts['geni-lib']} (nodes, links)")
    best["nodes"], best["links"] = counts["sfa"]
    return best


def instageni_style(count: int) -> bytes:
    """`count` nodes and `count` links from the InstaGENI sample's, repeated with new names."""
    root = etree.fromstring(INSTAGENI.read_bytes())
    nodes = root.findall(f"{{{GENI_NS}}}node")
    links = root.findall(f"{{{GENI_NS}}}link")
    for element in nodes + links:
        root.remove(element)
    head = etree.tostring(root, encoding="unicode")
    close = head.rindex("</rspec>")
    node_texts = [etree.tostring(n, encoding="unicode") for n in nodes]
    link_texts = [etree.tostring(link, encoding="unicode") for link in links]
    parts = [head[:close]]
    for i in range(count):
        parts.append(node_texts[i % len(node_texts)]
                     .replace("+node+", f"+node+s{i}-").replace("+interface+", f"+interface+s{i}-")
                     .replace('component_name="', f'component_name="s{i}-'))
    for i in range(count):
        parts.append(link_texts[i % len(link_texts)]
                     .replace("+interface+", f"+interface+s{i}-").replace("+link+", f"+link+s{i}-"))
    parts.append("</rspec>")
    return "\n".join(parts).encode()


def read_big(path: Path, count: int) -> dict[str, float]:
    """In this (fresh) process: read the document once for memory, then twice more for time.
    Memory: the process's peak, and how much the read added to the peak before it (the
    interpreter, lxml and the document's bytes)."""
    doc = path.read_bytes()
    before = _peak_mb()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model = read_rspec(doc, max_nodes=count, max_bytes=len(doc) + 1)
        times.append(time.perf_counter() - start)
        assert len(model.nodes) == count
        if len(times) == 1:
            peak = _peak_mb()
        del model
    return {"nodes": count, "bytes": len(doc), "read_s": min(times), "peak_mb": peak,
            "read_mb": peak - before}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ads", type=Path, action="append", help="a directory of ads")
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(read_big(args.one, args.nodes)))
        return
    docs = load(args.ads or [SAMPLE_ADS])
    best = compare(docs, args.repeats)
    print(f"{len(docs)} advertisements, {best['nodes']:.0f} nodes, {best['links']:.0f} links, "
          f"{sum(len(d.encode()) for d in docs) / 1e6:.1f} MB; load {os.getloadavg()[0]:.1f}")
    for name in ("sfa", "geni-lib", "parse only"):
        print(f"  {name:<10} {best[name] * 1000:8.1f} ms")
    print(f"  sfa is {best['geni-lib'] / best['sfa']:.2f}x geni-lib (goal >= 2.5x); the hardened "
          f"parse alone is {best['parse only'] / best['sfa']:.0%} of sfa's time")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "instageni-style.xml"
        path.write_bytes(instageni_style(args.nodes))
        out = subprocess.run([sys.executable, __file__, "--one", str(path), "--nodes",
                              str(args.nodes)], check=True, capture_output=True, text=True).stdout
    big = json.loads(out)
    print(f"InstaGENI-style ad: {big['nodes']} nodes + as many links, {big['bytes'] / 1e6:.1f} MB: "
          f"read {big['read_s']:.3f} s (goal <= 0.5); the read adds {big['read_mb']:.0f} MB "
          f"(goal <= 300), process peak {big['peak_mb']:.0f} MB; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
