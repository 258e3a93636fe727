"""`make demo` is the main job: the whole two-authority story must run and say so."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_make_demo_runs_the_whole_story_and_leaves_no_process() -> None:
    done = subprocess.run([sys.executable, "-m", "sfa.demo"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "all 5 slivers geni_ready" in out
    assert "all 6 slivers geni_ready" in out
    assert "etc/slice.gid: urn:publicid:IDN+plc+slice+demo (issued by plc)" in out
    assert "etc/node.gid:  urn:publicid:IDN+ple+node+" in out
    assert "init script wrote: hello from urn:publicid:IDN+plc+sliver+" in out
    assert "Max address space         134217728" in out
    assert "authorized_keys in plc_demo: " in out
    if shutil.which("prosody"):  # act 3: an OMF experiment through Prosody
        assert "stdout: lab.node1 received: hello from lab.node2" in out
        assert "Success on lab.node2 send" in out
    else:
        assert "SKIPPED: prosody is not installed" in out
    assert "Demo finished: every step succeeded" in out
    assert _processes_mentioning("sfa-demo-") == []


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (the demo's workspace)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(w.decode(errors="replace") for w in words)
        if text in line:
            found.append(line)
    return found
