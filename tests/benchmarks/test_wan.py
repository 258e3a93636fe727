"""The emulated WAN of the benchmarks (benchmarks/wan.py): the configured round trip is really
on the wire between the hub and a site, loss drops packets, and nothing is left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.slice_scale import start_nodes, stop_nodes
from benchmarks.wan import EmulatedWan, LinkShape, missing_mechanism
from sfa.aggregate.nm_book import NodeManagerBook
from sfa.aggregate.store import AggregateStore
from sfa.deploy.layout import Deployment, init_deployment
from sfa.server.am_api import AGGREGATE_DB

pytestmark = pytest.mark.skipif(bool(missing_mechanism()), reason=missing_mechanism())

RTT_MS = 200.0
# Run in the hub: times one TCP connect to HOST:PORT, or prints "refused"/"timeout".
CONNECT = """
import socket, sys, time
started = time.perf_counter()
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
except TimeoutError:
    print("timeout")
except OSError as error:
    print("error", error)
else:
    print(time.perf_counter() - started)
"""
# Run in the hub: the seconds of GetVersion calls at a node manager's URL over TLS, one
# connection (the first call opens it; the later ones reuse it).
GET_VERSION = """
import ssl, sys, time, xmlrpc.client
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
proxy = xmlrpc.client.ServerProxy(sys.argv[1], context=context)
for _ in range(3):
    started = time.perf_counter()
    reply = proxy.GetVersion()
    assert reply["code"]["geni_code"] == 0, reply
    print(time.perf_counter() - started, flush=True)
"""


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def deployment_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="w16b-wan-") as tmp:
        yield Path(tmp)


def run_in_hub(wan: EmulatedWan, code: str, *args: str) -> list[str]:
    done = wan.popen(wan.hub, [sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
    out, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    return out.split()


def test_a_node_manager_call_takes_at_least_the_round_trip(deployment_dir: Path) -> None:
    deployment = init_deployment(deployment_dir / "plc", authority="plc", registry_port=0,
                                 am_port=0, nm_base_port=0, nodes=1)
    with EmulatedWan(1, LinkShape(rtt_ms=RTT_MS)) as wan:
        def launch(index: int, argv: list[str], **options: object) -> subprocess.Popen[str]:
            return wan.popen(wan.site_namespace(index), argv, **options)

        children = start_nodes(deployment, 1, "", launch, [wan.site_address(0)])
        try:
            url = _node_url(deployment)
            assert url.startswith(f"https://{wan.site_address(0)}:")
            first, *kept_alive = (float(s) for s in run_in_hub(wan, GET_VERSION, url))
        finally:
            stop_nodes(children)
    # TCP connect, the TLS handshake and the call: three round trips; a kept-alive call: one
    assert first >= 3 * RTT_MS / 1000
    assert all(seconds >= RTT_MS / 1000 for seconds in kept_alive)


def test_without_the_delay_line_the_same_call_is_fast() -> None:
    """The control: a 0 ms link; the time above is the link's, not the machine's."""
    with EmulatedWan(1, LinkShape(rtt_ms=0)) as wan:
        server = _echo_server(wan)
        seconds = run_in_hub(wan, CONNECT, wan.site_address(0), "9000", "5")
        server.kill()
    assert float(seconds[0]) < RTT_MS / 1000


def test_a_lossy_link_drops_packets() -> None:
    with EmulatedWan(1, LinkShape(rtt_ms=10, loss=1.0)) as wan:
        _echo_server(wan)
        assert run_in_hub(wan, CONNECT, wan.site_address(0), "9000", "1") == ["timeout"]


def test_close_removes_namespaces_devices_and_processes() -> None:
    wan = EmulatedWan(2, LinkShape(rtt_ms=20))
    with pytest.raises(RuntimeError, match="inside"), wan:
        server = _echo_server(wan)
        delay_line = wan.delay_line_pid
        assert wan.hub in namespaces()
        assert f"{wan.site_namespace(0)}" in namespaces()
        raise RuntimeError("inside")
    assert server.poll() is not None
    assert delay_line is not None and not _running(delay_line)  # its TUN devices went with it
    listed = namespaces()
    assert wan.hub not in listed
    assert all(wan.site_namespace(site) not in listed for site in range(2))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _echo_server(wan: EmulatedWan) -> subprocess.Popen[str]:
    code = ("import socket, sys\n"
            "s = socket.create_server((sys.argv[1], 9000))\n"
            "print('up', flush=True)\n"
            "while True: s.accept()[0].close()\n")
    server = wan.popen(wan.site_namespace(0), [sys.executable, "-c", code,
                                               wan.site_address(0)],
                       stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "up"
    return server


def _node_url(deployment: Deployment) -> str:
    store = AggregateStore(deployment.db_dir / AGGREGATE_DB)
    try:
        (entry,) = NodeManagerBook(store.database).managers().values()
        return entry.url
    finally:
        store.close()
