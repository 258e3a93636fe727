"""The enforcing backend on this host, as root: real cgroups, loop-mounted images, namespaces.

Every name carries `w15-<pid>` (the backend's prefix); the fixture removes whatever a test
left, even on failure. A knob the host cannot enforce skips its test with the backend's reason.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sfa.nodemanager import netns
from sfa.nodemanager.backend import Backend, SliverSpec
from sfa.nodemanager.enforcing import LOGIN_SHELL, EnforcingBackend, EnforcingConfig
from sfa.nodemanager.resources import Resources
from tests.nodemanager.conftest import make_fifo, wait_for_fifo
from tests.nodemanager.hosttraces import host_traces

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="cgroups, loop mounts and namespaces need root"
)
PREFIX = f"w15-{os.getpid()}"
NODE_URN = f"urn:publicid:IDN+plc+node+{PREFIX}"
PY = sys.executable


def make_spec(login: str, script: str, **resources: int) -> SliverSpec:
    return SliverSpec(
        login=login,
        slice_urn=f"urn:publicid:IDN+plc+slice+{login}",
        sliver_urn=f"urn:publicid:IDN+plc+sliver+{login}",
        node_urn=NODE_URN,
        expires=datetime.now(UTC) + timedelta(hours=1),
        resources=Resources(**{"disk_mb": 16, **resources}),
        slice_gid_pem="slice gid",
        node_gid_pem="node gid",
        initscript=script,
    )


@pytest.fixture
def make_backend(open_dir: Path) -> Iterator[Callable[..., EnforcingBackend]]:
    made: list[EnforcingBackend] = []

    def make(**config: object) -> EnforcingBackend:
        settings = EnforcingConfig(prefix=PREFIX, **config)  # type: ignore[arg-type]
        backend = EnforcingBackend(open_dir / "slivers", open_dir / "images", NODE_URN,
                                   settings, stop_grace=0.5)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        try:
            backend.reconcile([])
        finally:
            try:
                if backend.cgroups is not None:
                    backend.cgroups.remove_base()
            finally:
                netns.remove_owned(backend.tag, set())


@pytest.fixture
def backend(make_backend: Callable[..., EnforcingBackend]) -> EnforcingBackend:
    return make_backend()


def require(backend: EnforcingBackend, knob: str) -> None:
    if knob not in backend.enforcement.enforced:
        pytest.skip(f"{knob} is not enforced here: {backend.enforcement.counted[knob]}")


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_is_a_backend_and_reports_what_it_enforces(backend: EnforcingBackend) -> None:
    assert isinstance(backend, Backend)
    report = backend.enforcement
    assert set(report.enforced) | set(report.counted) == {
        "cpu_share", "memory_mb", "tasks", "disk_mb", "bandwidth_kbps"}
    assert "network = false" in report.counted["bandwidth_kbps"]
    assert report.summary().startswith("sliver backend enforcing: enforced: ")


def test_cpu_shares_divide_one_cpu_by_weight(backend: EnforcingBackend) -> None:
    """Weights 1:4 pinned to one CPU: the cgroups' own CPU accounting shows the ratio."""
    require(backend, "cpu_share")
    spin = "exec taskset -c 0 sh -c 'while :; do :; done'"
    light, heavy = make_spec("w15light", spin, cpu_share=8), make_spec("w15heavy", spin,
                                                                      cpu_share=32)
    for spec in (light, heavy):
        backend.create(spec)
        backend.start(spec)
    wait_until(lambda: all(backend.usage(s.login).get("cpu_ns", 0) > 0 for s in (light, heavy)))
    time.sleep(0.3)  # both spinning on CPU 0 before the window opens
    before = [backend.usage(s.login)["cpu_ns"] for s in (light, heavy)]
    time.sleep(3.0)  # the measurement window itself
    after = [backend.usage(s.login)["cpu_ns"] for s in (light, heavy)]
    used_light, used_heavy = (b - a for a, b in zip(before, after, strict=True))
    ratio = used_heavy / max(used_light, 1)
    print(f"CPU ratio heavy/light {ratio:.2f} over 3 s")  # shown with pytest -s
    assert 2 <= ratio <= 8, f"CPU ratio {ratio:.2f} (light {used_light}, heavy {used_heavy} ns)"


def test_memory_hog_is_killed_at_its_limit_and_its_neighbour_lives(
    backend: EnforcingBackend, open_dir: Path
) -> None:
    require(backend, "memory_mb")
    fifo = make_fifo(open_dir, "neighbour")
    hog = make_spec("w15hog", f"exec {PY} -c 'a = []\nwhile True: a.append(bytearray(1 << 20))'",
                    memory_mb=32)
    calm = make_spec("w15calm", f"echo up > {fifo}; exec sleep 60", memory_mb=32)
    for spec in (calm, hog):
        backend.create(spec)
        backend.start(spec)
    assert wait_for_fifo(fifo) == "up\n"
    wait_until(lambda: not backend.status("w15hog").running)
    usage = backend.usage("w15hog")
    assert usage["oom_kills"] >= 1
    assert usage["memory_peak_bytes"] <= 32 * 1024 * 1024
    assert backend.status("w15calm").running
    assert backend.usage("w15calm")["oom_kills"] == 0


def test_fork_bomb_stops_at_its_task_limit(backend: EnforcingBackend, open_dir: Path) -> None:
    require(backend, "tasks")
    fifo = make_fifo(open_dir)
    bomb = make_spec(
        "w15bomb",
        f"exec {PY} -c \"import os, time\nn = 0\ntry:\n  while True:\n"
        "    if os.fork() == 0:\n      time.sleep(60)\n      os._exit(0)\n    n += 1\n"
        f"except OSError as e:\n  open('{fifo}', 'w').write(f'{{n}} {{e.errno}}\\\\n')\n"
        "time.sleep(60)\"",
        tasks=20,
    )
    backend.create(bomb)
    backend.start(bomb)
    forked, errno_text = wait_for_fifo(fifo).split()
    assert (int(forked), int(errno_text)) == (19, errno.EAGAIN)
    assert backend.usage("w15bomb")["tasks"] == 20


def test_writer_stops_at_its_quota_without_harming_another_sliver(
    backend: EnforcingBackend, open_dir: Path
) -> None:
    require(backend, "disk_mb")
    filler_fifo, other_fifo = make_fifo(open_dir, "filler"), make_fifo(open_dir, "other")
    filler = make_spec(
        "w15fill",
        f"dd if=/dev/zero of=$HOME/big bs=1M count=64 2>&1; echo $? > {filler_fifo}",
        disk_mb=8,
    )
    other = make_spec(
        "w15other",
        f"dd if=/dev/zero of=$HOME/data bs=1M count=4 2>/dev/null; echo $? > {other_fifo}",
        disk_mb=8,
    )
    for spec in (filler, other):
        backend.create(spec)
    backend.start(filler)
    assert wait_for_fifo(filler_fifo).strip() != "0"
    big = backend.sliver_dir("w15fill") / "home" / "w15fill" / "big"
    assert 4 * 1024 * 1024 < big.stat().st_size <= 8 * 1024 * 1024
    assert "No space left on device" in (
        backend.sliver_dir("w15fill") / "log" / "init.log").read_text()
    backend.start(other)
    assert wait_for_fifo(other_fifo).strip() == "0"
    assert (backend.sliver_dir("w15other") / "home" / "w15other" / "data").stat().st_size == (
        4 * 1024 * 1024)
    assert backend.usage("w15fill")["disk_quota_bytes"] <= 8 * 1024 * 1024


def test_bandwidth_is_shaped_on_the_slivers_veth(
    make_backend: Callable[..., EnforcingBackend],
) -> None:
    """An 8 Mbit/s sliver sends as fast as it can for ~2.5 s to the node end of its veth;
    the receiver measures the rate past the first half second (HTB's burst)."""
    backend = make_backend(network=True, bandwidth_unit_kbps=1)
    require(backend, "bandwidth_kbps")
    spec = make_spec("w15net", "", bandwidth_kbps=8000)
    backend.create(spec)
    net = backend.network_of("w15net")
    assert net is not None
    addresses = netns.addresses(net)
    assert addresses is not None
    server = socket.create_server((addresses[0], 0))
    server.settimeout(15)
    port = server.getsockname()[1]
    received: list[tuple[float, int]] = []

    def receive() -> None:
        connection, _ = server.accept()
        with connection:
            while chunk := connection.recv(65536):
                received.append((time.monotonic(), len(chunk)))

    receiver = threading.Thread(target=receive)
    receiver.start()
    sender = (f"exec {PY} -c \"import socket, time\ns = socket.create_connection(('"
              f"{addresses[0]}', {port}))\nend = time.monotonic() + 2.5\nblock = b'x' * 65536\n"
              "while time.monotonic() < end: s.sendall(block)\ns.close()\"")
    backend.create(replace(spec, initscript=sender))  # a refresh: same namespace and veth
    backend.start(replace(spec, initscript=sender))
    receiver.join(timeout=20)
    server.close()
    log = (backend.sliver_dir("w15net") / "log" / "init.log").read_text()
    assert received, f"nothing came through the sliver's veth: {log}"
    start = received[0][0] + 0.5
    window = [(t, n) for t, n in received if t >= start]
    seconds = window[-1][0] - start
    mbit = sum(n for _, n in window) * 8 / seconds / 1e6
    print(f"measured {mbit:.2f} Mbit/s over {seconds:.2f} s for an 8 Mbit/s limit")
    assert 8 * 0.6 <= mbit <= 8 * 1.2, f"measured {mbit:.2f} Mbit/s for an 8 Mbit/s limit"
    usage = backend.usage("w15net")
    assert usage["sent_bytes"] >= sum(n for _, n in received)


def test_delete_leaves_nothing_behind(make_backend: Callable[..., EnforcingBackend]) -> None:
    backend = make_backend(network=True, bandwidth_unit_kbps=1000)
    spec = make_spec("w15gone", "sleep 60 & exec sleep 60")
    backend.create(spec)
    backend.start(spec)
    assert backend.status("w15gone").running
    assert host_traces(backend, "w15gone")  # the check below can see them
    backend.destroy("w15gone")
    assert host_traces(backend, "w15gone") == []
    assert not backend.status("w15gone").exists


def test_reconcile_removes_strays_and_keeps_known_slivers(
    make_backend: Callable[..., EnforcingBackend],
) -> None:
    first = make_backend(network=True, bandwidth_unit_kbps=1000)
    kept, stray = make_spec("w15kept", "exec sleep 60"), make_spec("w15stray", "exec sleep 60")
    for spec in (kept, stray):
        first.create(spec)
        first.start(spec)
    restarted = make_backend(network=True, bandwidth_unit_kbps=1000)
    removed = restarted.reconcile([kept])
    assert "w15stray" in removed
    assert host_traces(restarted, "w15stray") == []
    assert restarted.status("w15kept").exists
    assert netns.SliverNetwork.named(restarted.tag, "w15kept").exists()


def test_login_shell_joins_the_slivers_cgroups(backend: EnforcingBackend) -> None:
    """A login runs as the sliver's uid through the sliver shell: its processes land in the
    sliver's cgroups; a login that cannot join is refused."""
    require(backend, "tasks")
    uid = 233_000 + os.getpid() % 1000  # apart from other suites' fixed sliver uids
    spec = replace(make_spec("w15login", ""), uid=uid)
    backend.create(spec)
    home = backend.sliver_dir("w15login") / "home" / "w15login"

    def login(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/sh", str(LOGIN_SHELL), "-c", command], user=uid, group=uid, extra_groups=[],
            env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
            timeout=20, check=False,
        )

    joined = login("cat /proc/self/cgroup")
    assert joined.returncode == 0, joined.stderr
    lines = [line for line in joined.stdout.splitlines() if f"/{backend.tag}/w15login" in line]
    assert {line.split(":")[1] for line in lines} >= {"pids", "memory", "cpu"}, joined.stdout
    assert backend.cgroups is not None
    os.chown(backend.cgroups.procs_files("w15login")[0], 0, 0)  # no longer the sliver's
    refused = login("echo inside")
    assert refused.returncode == 1 and "inside" not in refused.stdout
    assert "login refused" in refused.stderr


def test_mechanisms_turned_off_are_only_counted_and_rlimits_stay(
    make_backend: Callable[..., EnforcingBackend], open_dir: Path
) -> None:
    """The fallback: a knob without its mechanism is reported as counted, with the reason,
    and the init script keeps the directory backend's rlimits for it."""
    backend = make_backend(cgroups=False, disk_quota=False)
    report = backend.enforcement
    assert report.enforced == {}
    assert report.counted["memory_mb"] == "cgroups = false in node.toml"
    assert report.counted["disk_mb"] == "disk_quota = false in node.toml"
    assert backend.cgroups is None and backend.quotas is None
    fifo = make_fifo(open_dir)
    record = open_dir / "limits.txt"
    spec = make_spec("w15plain", f"cat /proc/$$/limits > {record}; echo done > {fifo}",
                     memory_mb=64, tasks=77)
    backend.create(spec)
    backend.start(spec)
    assert wait_for_fifo(fifo) == "done\n"
    limits = record.read_text()
    assert f"{64 * 1024 * 1024}" in limits.split("Max address space")[1].splitlines()[0]
    assert "77" in limits.split("Max processes")[1].splitlines()[0]
    assert backend.usage("w15plain") == {}
