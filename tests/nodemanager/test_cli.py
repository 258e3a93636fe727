"""`sfa nodemanager NODEDIR` as a real process: it serves over TLS and stops on SIGTERM."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any

from sfa.nodemanager.nodedir import create_node_dir, load_node_config
from tests.nodemanager.nodes import make_node_dir

REPO = Path(__file__).resolve().parents[2]
RUN = "from sfa.cli.nodemanager import nodemanager; nodemanager()"


def test_nodemanager_command_serves_and_stops_on_sigterm(open_dir, node1, plc):
    nodedir = make_node_dir(open_dir / "node1", node1, plc)
    child = subprocess.Popen(
        [sys.executable, "-c", RUN, str(nodedir), "--listen", "127.0.0.1", "--port", "0",
         "--local-port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first.startswith(f"node manager {node1.gid.urn} at https://127.0.0.1:"), first
        url = first.split(" at ", 1)[1].strip()
        local_url = child.stdout.readline().split(" at ", 1)[1].strip()
        context = ssl.create_default_context(cafile=str(nodedir / "trusted_roots" / "plc.gid"))
        context.check_hostname = False
        reply: Any = xmlrpc.client.ServerProxy(url, context=context).GetVersion()
        assert reply["value"]["urn"] == node1.gid.urn
        local = xmlrpc.client.ServerProxy(local_url)
        try:
            local.GetKeys("nobody")
        except xmlrpc.client.Fault as fault:
            assert fault.faultCode == 12
        else:
            raise AssertionError("GetKeys of an unknown slice must fail")
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(15)
    assert child.returncode == 0


def test_create_node_dir_issues_a_node_gid_and_writes_node_toml(open_dir, plc):
    config = create_node_dir(open_dir / "n9", authority=plc, hrn="plc.n9", port=12400)
    loaded = load_node_config(open_dir / "n9")
    assert loaded == config and loaded.urn == "urn:publicid:IDN+plc+node+n9"
    assert (open_dir / "n9" / "node.pkey").stat().st_mode & 0o077 == 0
    assert list((open_dir / "n9" / "trusted_roots").iterdir())


def test_sigterm_right_after_the_announcement_stops_cleanly(open_dir, node1, plc):
    nodedir = make_node_dir(open_dir / "node1-quick", node1, plc)
    child = subprocess.Popen(
        [sys.executable, "-c", RUN, str(nodedir), "--listen", "127.0.0.1", "--port", "0",
         "--local-port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    lines = [child.stdout.readline() for _ in range(4)]
    assert lines[2].startswith("recovered: "), lines
    assert lines[3].startswith("sliver backend directory: enforced: none; only counted: "
                               "cpu_share (no CPU scheduler weight)"), lines
    child.send_signal(signal.SIGTERM)  # at once: the handlers must already be installed
    child.wait(15)
    assert child.returncode == 0, child.stderr.read() if child.stderr else ""
