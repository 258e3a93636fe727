"""Sliver processes: launch under resource limits in a new process group, find, and kill.

Linux only (`/proc`). Limits map from the sliver's resources: RLIMIT_AS <- memory,
RLIMIT_NPROC <- tasks, RLIMIT_FSIZE <- disk, RLIMIT_CPU <- cpu_seconds when set.
RLIMIT_NPROC counts every process of the real uid and is ignored for root; that is why a node
manager running as root runs each sliver under its own uid (see `dirbackend`).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sfa.nodemanager.resources import Resources

MIB = 1024 * 1024
SHELL = "/bin/sh"
# read the go line, then replace this shell by the script with stdin at end of file
_SHELL_GATE = 'read go && exec "$0" "$1" < /dev/null'
# the same, dropping to a uid (no supplementary groups) first
_DROP_GATE = """
import os, sys
if sys.stdin.readline() != "go\\n":
    sys.exit(111)
fd = os.open("/dev/null", os.O_RDONLY)
os.dup2(fd, 0)
uid = int(sys.argv[1])
os.setgroups([])
os.setresgid(uid, uid, uid)
os.setresuid(uid, uid, uid)
os.execv(sys.argv[2], sys.argv[2:])
"""
_PROC = Path("/proc")


@dataclass(frozen=True)
class Limits:
    """The rlimits applied to a sliver's processes (soft = hard)."""

    address_space: int
    processes: int
    file_size: int
    cpu_seconds: int | None = None

    @classmethod
    def from_resources(cls, resources: Resources) -> Limits:
        return cls(
            address_space=resources.memory_mb * MIB,
            processes=resources.tasks,
            file_size=resources.disk_mb * MIB,
            cpu_seconds=resources.cpu_seconds or None,
        )

    def apply_to(self, pid: int) -> None:
        """Set the limits on process `pid` (soft = hard)."""
        resource.prlimit(pid, resource.RLIMIT_AS, (self.address_space, self.address_space))
        resource.prlimit(pid, resource.RLIMIT_NPROC, (self.processes, self.processes))
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (self.file_size, self.file_size))
        if self.cpu_seconds:
            resource.prlimit(pid, resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds))


@dataclass(frozen=True)
class Confinement:
    """What a backend adds around a launch: an argv prefix that execs the gate (entering a
    namespace keeps the pid), a step run on the gated child before the script runs (joining
    cgroups), and rlimits replacing those derived from the resources."""

    prefix: tuple[str, ...] = ()
    on_spawn: Callable[[int], None] | None = None
    limits: Limits | None = None


@dataclass(frozen=True)
class Launched:
    """A started process group: its leader's pid (= pgid) and kernel start time."""

    pid: int
    start_time: int
    popen: subprocess.Popen[bytes] | None = None


def launch(
    script: Path,
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_fd: int,
    limits: Limits,
    uid: int | None = None,
    confinement: Confinement | None = None,
) -> Launched:
    """Run `sh script` in its own session and process group, limits applied, output to `log_fd`.

    The child is a gate that waits for one line on stdin before it execs the script; the limits
    are set on it (prlimit) in between, so the script never runs unlimited and no Python runs
    between fork and exec (safe with threads). If the go line never comes, nothing runs. To
    run as another uid the gate is a tiny Python program that drops to it after the limits are
    set (prlimit on another uid's process would need CAP_SYS_RESOURCE). A `confinement` wraps
    the gate and runs its `on_spawn(pid)` before the go line.
    """
    confinement = confinement or Confinement()
    popen = subprocess.Popen(
        [*confinement.prefix, *_gate_argv(script, uid)],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=log_fd,
        stderr=log_fd,
        close_fds=True,
        start_new_session=True,
    )
    assert popen.stdin is not None
    try:
        limits.apply_to(popen.pid)
        if confinement.on_spawn is not None:
            confinement.on_spawn(popen.pid)
        popen.stdin.write(b"go\n")
    except BaseException:
        popen.kill()
        popen.wait()
        raise
    finally:
        popen.stdin.close()
    return Launched(popen.pid, process_start_time(popen.pid) or 0, popen)


def _gate_argv(script: Path, uid: int | None) -> list[str]:
    if uid is None:
        return [SHELL, "-c", _SHELL_GATE, SHELL, str(script)]
    return [sys.executable, "-I", "-S", "-c", _DROP_GATE, str(uid), SHELL, str(script)]


def process_start_time(pid: int) -> int | None:
    """The kernel start time of a process (clock ticks since boot), None when it is gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def members(pgid: int | None = None, uid: int | None = None) -> list[int]:
    """Pids of the live processes in group `pgid` and/or owned by real uid `uid`."""
    found: list[int] = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            real_uid = (entry / "status").stat().st_uid if uid is not None else None
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        if pgid is not None and int(fields[2]) != pgid:
            continue
        if uid is not None and real_uid != uid:
            continue
        found.append(int(entry.name))
    return found


def running_uids() -> set[int]:
    """The uids owning the live processes (one pass over /proc, the owner of each /proc/PID)."""
    found: set[int] = set()
    with os.scandir(_PROC) as entries:
        for entry in entries:
            if entry.name.isdigit():
                try:
                    found.add(entry.stat(follow_symlinks=False).st_uid)
                except OSError:
                    continue
    return found


def kill_all(pgid: int | None, uid: int | None, *, grace: float = 2.0) -> None:
    """SIGTERM the group (and, with a dedicated uid, every process of that uid), then SIGKILL
    whatever is left after `grace` seconds."""
    if pgid is None and uid is None:
        return
    _signal_all(pgid, uid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pgid, uid):
        time.sleep(0.02)
    while _alive(pgid, uid):
        _signal_all(pgid, uid, signal.SIGKILL)
        time.sleep(0.01)


def _alive(pgid: int | None, uid: int | None) -> bool:
    return bool(live_pids(pgid, uid))


def live_pids(pgid: int | None, uid: int | None) -> list[int]:
    """Live pids in the group and, with a dedicated uid, of that uid."""
    pids = set(members(pgid=pgid)) if pgid is not None else set()
    if uid is not None:
        pids |= set(members(uid=uid))
    return sorted(pids)


def _signal_all(pgid: int | None, uid: int | None, sig: signal.Signals) -> None:
    for pid in live_pids(pgid, uid):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue
