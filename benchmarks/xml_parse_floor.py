"""The floor under any RSpec reader written in Python: how long the C parsers this project can
use take to merely tokenize the 10,000-node InstaGENI-style advertisement of
`rspec_real_ads.py` (43 MB), before a reader does anything with it. Best of 3 for each:
expat with no handlers (tokenizing only), expat calling an empty Python function per start
tag, lxml feeding an empty parser target (libxml2's SAX, no tree), and lxml building its tree.

    .venv/bin/python benchmarks/xml_parse_floor.py [--nodes 10000]
"""

from __future__ import annotations

import argparse
import os
import pyexpat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lxml import etree  # noqa: E402

from benchmarks.rspec_real_ads import instageni_style  # noqa: E402


class _EmptyTarget:
    def start(self, tag: str, attrib: Any) -> None:
        pass

    def end(self, tag: str) -> None:
        pass

    def close(self) -> None:
        return None


def _expat(data: bytes, handler: bool) -> None:
    parser = pyexpat.ParserCreate(namespace_separator="}")
    if handler:
        parser.StartElementHandler = lambda name, attributes: None
    parser.Parse(data, True)


def _lxml(data: bytes, target: bool) -> None:
    options: dict[str, Any] = {"resolve_entities": False, "no_network": True, "huge_tree": True}
    if target:
        options["target"] = _EmptyTarget()
    else:
        options["remove_blank_text"] = True
    etree.fromstring(data, etree.XMLParser(**options))


def _elements(data: bytes) -> int:
    # One start tag per element: every '<' but end tags, the declaration, PIs and comments.
    return data.count(b"<") - data.count(b"</") - data.count(b"<?") - data.count(b"<!--")


def best(run: Callable[[], None], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=10_000)
    args = parser.parse_args()
    data = instageni_style(args.nodes)
    print(f"InstaGENI-style ad, {args.nodes} nodes: {len(data) / 1e6:.1f} MB, "
          f"{_elements(data)} elements; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    cases = {
        "expat, no handlers (tokenizing only)": lambda: _expat(data, False),
        "expat, an empty Python start handler": lambda: _expat(data, True),
        "lxml, an empty parser target (no tree)": lambda: _lxml(data, True),
        "lxml, the tree": lambda: _lxml(data, False),
    }
    for label, run in cases.items():
        print(f"  {label:42} {best(run):.3f} s", flush=True)


if __name__ == "__main__":
    main()
