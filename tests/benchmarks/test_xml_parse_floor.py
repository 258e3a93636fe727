"""benchmarks/xml_parse_floor.py runs on a small document and reports every parser's time and
the document's true element count."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from lxml import etree

from benchmarks.rspec_real_ads import instageni_style

REPO = Path(__file__).resolve().parents[2]


def test_a_small_run_times_each_parser_and_counts_the_elements() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "xml_parse_floor.py"), "--nodes", "20"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    counted = re.search(r", (\d+) elements;", result.stdout)
    assert counted is not None, result.stdout
    root = etree.fromstring(instageni_style(20))
    assert int(counted[1]) == sum(1 for _ in root.iter(etree.Element))
    times = re.findall(r"^  (expat|lxml), .* ([\d.]+) s$", result.stdout, re.MULTILINE)
    assert [parser for parser, _ in times] == ["expat", "expat", "lxml", "lxml"]
