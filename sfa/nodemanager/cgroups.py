"""Control groups for slivers: detect v1/v2 per controller, create, attach, limit, read, remove.

A host may mix both versions (a v2 mount with no controllers beside v1 hierarchies), so each
controller is looked up on its own: v2 when the unified hierarchy offers it, else the v1
hierarchy it is mounted in. Sliver cgroups live under a base cgroup `<name>` made below the
node manager's own cgroup in each hierarchy, so the host's limits on the node manager bound its
slivers too, and everything below the base is the node manager's (strays are recognisable).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from sfa.nodemanager.resources import Resources

MIB = 1024 * 1024
# The controllers a sliver needs: cpu (weight), memory (limit), pids (tasks); cpuacct only
# for the v1 CPU-time accounting when it is its own hierarchy.
CONTROLLERS = ("cpu", "memory", "pids", "cpuacct")
DEFAULT_SHARE = 32  # the PlanetLab grant that maps to the kernel's default weight


@dataclass(frozen=True)
class Hierarchy:
    """Where one controller lives: cgroup version, mount point and the node manager's own
    cgroup in it (relative to the mount)."""

    controller: str
    version: int
    mount: Path
    own: str = "/"

    def path(self, *names: str) -> Path:
        return self.mount.joinpath(self.own.lstrip("/"), *names)


@dataclass(frozen=True)
class Layout:
    """The host's controllers as found at start: controller name -> hierarchy."""

    hierarchies: dict[str, Hierarchy] = field(default_factory=dict)

    def get(self, controller: str) -> Hierarchy | None:
        return self.hierarchies.get(controller)

    def distinct(self) -> list[Hierarchy]:
        """One entry per mounted hierarchy (v1 may co-mount cpu and cpuacct)."""
        seen: dict[Path, Hierarchy] = {}
        for hierarchy in self.hierarchies.values():
            seen.setdefault(hierarchy.path(), hierarchy)
        return list(seen.values())


@dataclass(frozen=True)
class Usage:
    """What a sliver's cgroup has used (None where the controller is missing)."""

    cpu_ns: int | None = None
    memory_bytes: int | None = None
    memory_peak_bytes: int | None = None
    tasks: int | None = None
    oom_kills: int | None = None


def detect(proc: Path = Path("/proc")) -> Layout:
    """The controllers this host offers, v2 preferred per controller, from /proc/self/mounts,
    /proc/cgroups and each v2 cgroup's cgroup.controllers."""
    mounts = _mounts(proc / "self" / "mounts")
    own = _own_cgroups(proc / "self" / "cgroup")
    enabled_v1 = _enabled_v1(proc / "cgroups")
    found: dict[str, Hierarchy] = {}
    for mount, fstype, _options in mounts:
        if fstype == "cgroup2":
            base = Hierarchy("", 2, mount, own.get("", "/"))
            offered = _read_words(base.path("cgroup.controllers"))
            for name in CONTROLLERS:
                if name in offered and name not in found:
                    found[name] = Hierarchy(name, 2, mount, base.own)
    for mount, fstype, options in mounts:
        if fstype != "cgroup":
            continue
        for name in CONTROLLERS:
            if name in options and name in enabled_v1 and name not in found:
                key = ",".join(sorted(o for o in options if o in enabled_v1))
                found[name] = Hierarchy(name, 1, mount, own.get(key, own.get(name, "/")))
    return Layout(found)


class SliverCgroups:
    """The cgroups of one node manager's slivers: `<own cgroup>/<base>/<login>` per hierarchy."""

    def __init__(self, layout: Layout, base: str) -> None:
        self.layout = layout
        self.base = base
        self._v2_enabled = False

    # --- life cycle --------------------------------------------------------------------------

    def create(self, login: str, resources: Resources, uid: int | None = None) -> None:
        """Make (or refresh) the sliver's cgroups and set its limits. With `uid`, the sliver
        may move its own processes in (cgroup.procs owned by it: the login shell does that)."""
        self._prepare_base()
        for hierarchy in self.layout.distinct():
            folder = hierarchy.path(self.base, login)
            folder.mkdir(exist_ok=True)
            if uid is not None:
                for name in ("cgroup.procs", "tasks"):
                    if (folder / name).exists():
                        os.chown(folder / name, uid, uid)
        self.set_limits(login, resources)

    def set_limits(self, login: str, resources: Resources) -> None:
        """Write CPU weight, memory (+ no swap) and task limits for what the host offers."""
        cpu = self.layout.get("cpu")
        if cpu is not None:
            if cpu.version == 2:
                _write(cpu.path(self.base, login, "cpu.weight"), cpu_weight(resources.cpu_share))
            else:
                _write(cpu.path(self.base, login, "cpu.shares"), cpu_shares(resources.cpu_share))
        memory = self.layout.get("memory")
        if memory is not None:
            limit = resources.memory_mb * MIB
            folder = memory.path(self.base, login)
            if memory.version == 2:
                _write(folder / "memory.max", limit)
                _write_if_present(folder / "memory.swap.max", 0)
            else:
                # memsw must stay >= the memory limit: raise it last when growing, first when
                # shrinking; a host without swap accounting has no memsw file
                memsw = folder / "memory.memsw.limit_in_bytes"
                _write_if_present(memsw, -1)
                _write(folder / "memory.limit_in_bytes", limit)
                _write_if_present(memsw, limit)
        pids = self.layout.get("pids")
        if pids is not None:
            _write(pids.path(self.base, login, "pids.max"), max(1, resources.tasks))

    def attach(self, login: str, pid: int) -> None:
        """Move process `pid` into every hierarchy's cgroup of the sliver."""
        for hierarchy in self.layout.distinct():
            _write(hierarchy.path(self.base, login, "cgroup.procs"), pid)

    def procs_files(self, login: str) -> list[Path]:
        """The cgroup.procs files a process writes its pid into to join the sliver."""
        return [h.path(self.base, login, "cgroup.procs") for h in self.layout.distinct()]

    def members(self, login: str) -> list[int]:
        pids: set[int] = set()
        for hierarchy in self.layout.distinct():
            pids.update(_read_ints(hierarchy.path(self.base, login, "cgroup.procs")))
        return sorted(pids)

    def kill(self, login: str, *, timeout: float = 5.0) -> None:
        """SIGKILL every process in the sliver's cgroups until none is left."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.members(login)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            if time.monotonic() > deadline:
                raise OSError(errno.EBUSY, f"processes {pids} of {login} survive SIGKILL")
            time.sleep(0.01)

    def remove(self, login: str) -> None:
        """Kill what is left and remove the sliver's cgroups (absent ones are fine)."""
        self.kill(login)
        for hierarchy in self.layout.distinct():
            _rmdir(hierarchy.path(self.base, login))

    def logins(self) -> set[str]:
        """The slivers that have a cgroup in any hierarchy (for reconciliation)."""
        found: set[str] = set()
        for hierarchy in self.layout.distinct():
            folder = hierarchy.path(self.base)
            if folder.is_dir():
                found.update(p.name for p in folder.iterdir() if p.is_dir())
        return found

    def remove_base(self) -> None:
        """Remove every sliver cgroup and the base itself."""
        for login in self.logins():
            self.remove(login)
        for hierarchy in self.layout.distinct():
            _rmdir(hierarchy.path(self.base))

    # --- accounting --------------------------------------------------------------------------

    def usage(self, login: str) -> Usage:
        """CPU time, memory now and at peak, tasks and OOM kills, as far as the host tells."""
        return Usage(
            cpu_ns=self._cpu_ns(login),
            memory_bytes=self._memory(login, "memory.current", "memory.usage_in_bytes"),
            memory_peak_bytes=self._memory(login, "memory.peak", "memory.max_usage_in_bytes"),
            tasks=self._first_int("pids", login, "pids.current"),
            oom_kills=self._oom_kills(login),
        )

    def _cpu_ns(self, login: str) -> int | None:
        cpu = self.layout.get("cpu")
        if cpu is not None and cpu.version == 2:
            stat = _read_keyed(cpu.path(self.base, login, "cpu.stat"))
            return stat["usage_usec"] * 1000 if "usage_usec" in stat else None
        return self._first_int("cpuacct", login, "cpuacct.usage")

    def _memory(self, login: str, v2_name: str, v1_name: str) -> int | None:
        memory = self.layout.get("memory")
        if memory is None:
            return None
        name = v2_name if memory.version == 2 else v1_name
        return self._first_int("memory", login, name)

    def _oom_kills(self, login: str) -> int | None:
        memory = self.layout.get("memory")
        if memory is None:
            return None
        name = "memory.events" if memory.version == 2 else "memory.oom_control"
        return _read_keyed(memory.path(self.base, login, name)).get("oom_kill")

    def _first_int(self, controller: str, login: str, name: str) -> int | None:
        hierarchy = self.layout.get(controller)
        if hierarchy is None:
            return None
        values = _read_ints(hierarchy.path(self.base, login, name))
        return values[0] if values else None

    # --- the base cgroup ---------------------------------------------------------------------

    def _prepare_base(self) -> None:
        for hierarchy in self.layout.distinct():
            hierarchy.path(self.base).mkdir(exist_ok=True)
        if self._v2_enabled:
            return
        wanted = [h.controller for h in self.layout.hierarchies.values() if h.version == 2]
        if wanted:
            v2 = self.layout.hierarchies[wanted[0]]
            for folder in (v2.path(), v2.path(self.base)):
                _write(folder / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
        self._v2_enabled = True


def cpu_shares(cpu_share: int) -> int:
    """v1 cpu.shares: the PlanetLab default grant (32) is the kernel default (1024)."""
    return min(262_144, max(2, cpu_share * 1024 // DEFAULT_SHARE))


def cpu_weight(cpu_share: int) -> int:
    """v2 cpu.weight: the PlanetLab default grant (32) is the kernel default (100)."""
    return min(10_000, max(1, cpu_share * 100 // DEFAULT_SHARE))


def _mounts(path: Path) -> list[tuple[Path, str, set[str]]]:
    found = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            found.append((Path(parts[1]), parts[2], set(parts[3].split(","))))
    return found


def _own_cgroups(path: Path) -> dict[str, str]:
    """/proc/self/cgroup: controller list (sorted, comma-joined; "" for v2) -> own path; each
    single controller of a co-mounted list too."""
    own: dict[str, str] = {}
    for line in path.read_text().splitlines():
        _, names, where = line.split(":", 2)
        listed = [n for n in names.split(",") if n]
        own[",".join(sorted(listed))] = where
        for name in listed:
            own.setdefault(name, where)
    return own


def _enabled_v1(path: Path) -> set[str]:
    enabled = set()
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and not line.startswith("#") and parts[3] == "1":
            enabled.add(parts[0])
    return enabled


def _read_words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _read_ints(path: Path) -> list[int]:
    try:
        return [int(word) for word in path.read_text().split()]
    except (OSError, ValueError):
        return []


def _read_keyed(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def _write(path: Path, value: object) -> None:
    with open(path, "w") as handle:
        handle.write(f"{value}\n")


def _write_if_present(path: Path, value: object) -> None:
    if path.exists():
        _write(path, value)


def _rmdir(folder: Path, *, timeout: float = 5.0) -> None:
    """rmdir a cgroup; the kernel may answer EBUSY for a moment after its last task died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)

