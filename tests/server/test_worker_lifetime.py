"""spec/security.md item 30: the worker processes of `sfa serve` die with it, even when it is
SIGKILLed, and a restart on the same ports is neither blocked nor slowed by leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from multiprocessing import get_context
from pathlib import Path

import pytest

from sfa.server.workers import die_with_parent
from tests.server.conftest import proxy

SFA = [sys.executable, "-m", "sfa.cli.main"]
DEADLINE = 30.0  # seconds; generous for a loaded machine, the condition usually holds at once


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {DEADLINE} s"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running and not a zombie (a zombie is dead: only its exit status is left)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _serve(directory: Path) -> tuple[subprocess.Popen[str], str]:
    """`sfa serve DIR` and the registry's URL once it listens."""
    with (directory.parent / "serve.log").open("a") as log:
        server = subprocess.Popen([*SFA, "serve", str(directory)], stdout=subprocess.PIPE,
                                  stderr=log, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()  # blocks until the registry listens (EOF if it died)
    assert line.startswith("ready registry https://127.0.0.1:"), (
        line, (directory.parent / "serve.log").read_text()[-2000:])
    return server, line.split()[2]


def _pin_registry_port(directory: Path, url: str) -> None:
    """Make the next start use the port the first one got (port 0 = any free port)."""
    port = url.rstrip("/").rsplit(":", 1)[1]
    config = directory / "sfa.toml"
    head, _, rest = config.read_text().partition("[registry]")
    config.write_text(head + "[registry]" + rest.replace("port = 0", f"port = {port}", 1))


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Path]:
    """A registry-only deployment with two worker processes."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to list a process's children")
    directory = tmp_path / "plc"
    made = subprocess.run([*SFA, "init", str(directory), "--authority", "plc",
                           "--registry-port", "0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    config = directory / "sfa.toml"
    config.write_text(config.read_text().replace("[aggregate]\nenabled = true",
                                                 "[aggregate]\nenabled = false"))
    yield directory


def test_30_workers_die_with_a_sigkilled_server_and_a_restart_works(deployment: Path) -> None:
    server, url = _serve(deployment)
    _pin_registry_port(deployment, url)
    leftovers: set[int] = set()
    try:
        workers = _children(server.pid)
        assert len(workers) >= 2, workers  # two registry workers (and multiprocessing's helper)
        leftovers = set(workers)
        server.kill()
        server.wait(10)
        _wait_for(lambda: not any(_alive(pid) for pid in workers),
                  "every worker of the killed server exits")
        started = time.monotonic()
        again, again_url = _serve(deployment)  # the same port: no leftover holds it
        try:
            leftovers |= _children(again.pid)
            assert time.monotonic() - started < DEADLINE and again_url == url
            root = deployment / "trusted_roots" / "plc.gid"
            assert proxy(url, root).GetVersion()["hrn"] == "plc"
        finally:
            again.send_signal(signal.SIGTERM)
            again.wait(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        for pid in leftovers:  # only on failure: never leave a worker behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _lifeline_child(lifeline: object) -> None:
    # parent_pid: our real parent, so only the lifeline (not the pid check) ends us
    die_with_parent(lifeline, os.getppid())  # type: ignore[arg-type]
    while True:
        time.sleep(3600)


def test_30_a_worker_exits_when_its_lifeline_closes() -> None:
    """The pipe alone ends a worker (where PDEATHSIG is missing or fired for another thread):
    the parent lives on, closes its end, and the child exits."""
    context = get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=_lifeline_child, args=(reader,), daemon=True)
    child.start()
    try:
        assert child.is_alive()
        writer.close()
        child.join(DEADLINE)
        assert child.exitcode == 1
    finally:
        if child.is_alive():
            child.kill()
            child.join(10)
        reader.close()
