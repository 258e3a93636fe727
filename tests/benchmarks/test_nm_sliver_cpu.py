"""benchmarks/nm_sliver_cpu.py runs end to end on a few slivers and reports what it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^  (redeem|start|delete|total) +([\d.]+) = backend +([\d.]+) \+ node manager"
                  r" +(-?[\d.]+); SQL statements ([\d.]+)$")


def test_a_short_run_reports_cpu_and_statements_per_operation() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "nm_sliver_cpu.py"), "--slivers", "3",
         "--rounds", "1"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    rows = {m[1]: m for m in map(LINE.match, result.stdout.splitlines()) if m}
    assert set(rows) == {"redeem", "start", "delete", "total"}, result.stdout
    assert all(float(row[2]) > 0 for row in rows.values())
    uids = os.geteuid() == 0  # as root the host's uid file adds its statements
    assert float(rows["redeem"][5]) == (15.0 if uids else 10.0)
    assert float(rows["start"][5]) == 2.0
    assert float(rows["delete"][5]) == (8.0 if uids else 7.0)
