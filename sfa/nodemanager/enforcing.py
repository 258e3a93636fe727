"""The enforcing sliver backend: the directory backend, confined by what the host offers.

Each sliver is the directory backend's sliver directory, plus (where the host allows):
- cgroups `<own cgroup>/<tag>/<login>`: CPU weight, memory limit without swap, task limit; the
  init script joins them before it execs, so everything it starts is in them;
- a disk quota: the sliver directory is its own ext4 image, loop-mounted (`diskquota`);
- a network namespace with a veth pair shaped by HTB (`netns`), when turned on.
`<tag>` is `<prefix>-<hash of the node URN>`: everything the backend makes carries it, so
`reconcile` can tell its strays from anything else on the host.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sfa.nodemanager import cgroups, diskquota, netns, process, safefs
from sfa.nodemanager.backend import BackendStatus, SliverSpec
from sfa.nodemanager.capabilities import KNOBS, Enforcement
from sfa.nodemanager.dirbackend import DirBackend

LOGIN_SHELL = Path(__file__).with_name("sliver-shell.sh")  # joins the cgroups, then a shell


@dataclass(frozen=True)
class EnforcingConfig:
    """node.toml `[enforcing]`: which mechanisms to use and how names and rates are made."""

    prefix: str = "sfa"
    cgroups: bool = True
    disk_quota: bool = True
    network: bool = False
    address_pool: str = netns.DEFAULT_POOL
    bandwidth_unit_kbps: int = 1  # HTB rate = bandwidth_kbps x this


class EnforcingBackend:
    """Slivers confined by cgroups, a disk image and (optionally) a network namespace."""

    def __init__(
        self,
        slivers_dir: Path,
        images_dir: Path,
        node_urn: str,
        config: EnforcingConfig | None = None,
        *,
        stop_grace: float = 2.0,
    ) -> None:
        self.config = config or EnforcingConfig()
        self.tag = owner_tag(self.config.prefix, node_urn)
        self.directory = DirBackend(slivers_dir, stop_grace=stop_grace, confine=self._confine)
        self.enforcement, self.cgroups, self.quotas, self.network = self._probe(images_dir)

    # --- the five operations ------------------------------------------------------------------

    def create(self, spec: SliverSpec) -> None:
        """Mount the sliver's image, make its directory, cgroups and network."""
        if self.quotas is not None:
            self.quotas.mount(spec.login, spec.resources.disk_mb)
        self.directory.create(spec)
        if self.cgroups is not None:
            self.cgroups.create(spec.login, spec.resources, spec.uid)
            self._write_procs_files(spec)
        if self.network:
            rate = max(1, spec.resources.bandwidth_kbps * self.config.bandwidth_unit_kbps)
            netns.create(self._net(spec.login), rate, self.config.address_pool)

    def start(self, spec: SliverSpec) -> None:
        self.directory.start(spec)

    def stop(self, login: str) -> None:
        """Stop the init script's group, then whatever else is left in the sliver's cgroups."""
        self.directory.stop(login)
        if self.cgroups is not None:
            self.cgroups.kill(login)

    def destroy(self, login: str) -> None:
        """Stop the sliver and remove its directory, image, cgroups and network."""
        root = self.directory.sliver_dir(login)
        if root.exists():
            self.stop(login)
        if self.quotas is not None:
            self.quotas.unmount(login)
        self.directory.destroy(login)
        if self.quotas is not None:
            self.quotas.remove(login)
        if self.cgroups is not None:
            self.cgroups.remove(login)
        self._remove_network(login)

    def status(self, login: str) -> BackendStatus:
        status = self.directory.status(login)
        if not status.exists:
            return status
        usage = self.usage(login)
        disk = usage.get("disk_used_bytes", status.disk_used_bytes)
        processes = max(status.processes, usage.get("tasks", 0))
        return BackendStatus(
            exists=True, running=status.running or processes > 0, processes=processes,
            disk_used_bytes=disk, pid=status.pid, exit_code=status.exit_code, usage=usage,
        )

    # --- beyond the five ----------------------------------------------------------------------

    def usage(self, login: str) -> dict[str, int]:
        """What the sliver used, from the cgroups, its filesystem and its veth."""
        found: dict[str, int | None] = {}
        if self.cgroups is not None:
            used = self.cgroups.usage(login)
            found |= {"cpu_ns": used.cpu_ns, "memory_bytes": used.memory_bytes,
                      "memory_peak_bytes": used.memory_peak_bytes, "tasks": used.tasks,
                      "oom_kills": used.oom_kills}
        if self.quotas is not None and (disk := self.quotas.use(login)) is not None:
            found |= {"disk_used_bytes": disk.used_bytes, "disk_quota_bytes": disk.size_bytes}
        if self.network and (traffic := netns.traffic(self._net(login))) is not None:
            found |= {"sent_bytes": traffic.sent_bytes, "received_bytes": traffic.received_bytes}
        return {name: value for name, value in found.items() if value is not None}

    def reconcile(self, specs: Iterable[SliverSpec]) -> list[str]:
        """At start: remake what the known slivers need (mounts and cgroups do not survive a
        reboot) and remove every cgroup, mount, image and namespace of this owner that belongs
        to no known sliver. Returns what was removed."""
        known = {spec.login: spec for spec in specs}
        removed: list[str] = []
        stray = self._present_logins() - set(known)
        for login in sorted(stray):
            self.destroy(login)
            removed.append(login)
        if self.network:
            namespaces = {self._net(login).namespace for login in known}
            removed += netns.remove_owned(self.tag, namespaces)
        for spec in known.values():
            if self.directory.sliver_dir(spec.login).exists():
                self.create(spec)
        return removed

    def network_of(self, login: str) -> netns.SliverNetwork | None:
        """The sliver's namespace and veth names (None when namespaces are off)."""
        return self._net(login) if self.network else None

    def sliver_dir(self, login: str) -> Path:
        return self.directory.sliver_dir(login)

    # --- internals ----------------------------------------------------------------------------

    def _confine(self, spec: SliverSpec) -> process.Confinement:
        """The init script joins the cgroups before it execs and runs in the namespace; rlimits
        stay only for what nothing else enforces."""
        resources = spec.resources
        sliver_cgroups = self.cgroups

        def join(pid: int) -> None:
            if sliver_cgroups is not None:
                sliver_cgroups.attach(spec.login, pid)

        enforced = self.enforcement.enforced
        limits = process.Limits(
            address_space=_own_limit(resource.RLIMIT_AS) if "memory_mb" in enforced
            else resources.memory_mb * process.MIB,
            processes=_own_limit(resource.RLIMIT_NPROC) if "tasks" in enforced
            else resources.tasks,
            file_size=_own_limit(resource.RLIMIT_FSIZE) if "disk_mb" in enforced
            else resources.disk_mb * process.MIB,
            cpu_seconds=resources.cpu_seconds or None,
        )
        prefix = self._net(spec.login).enter_prefix() if self.network else ()
        return process.Confinement(prefix=prefix, on_spawn=join, limits=limits)

    def _write_procs_files(self, spec: SliverSpec) -> None:
        """etc/cgroup.procs: where the login shell writes its pid to join the sliver."""
        assert self.cgroups is not None
        listing = "".join(f"{path}\n" for path in self.cgroups.procs_files(spec.login))
        with safefs.open_dirs(self.directory.slivers_dir, [spec.login, "etc"]) as etc:
            safefs.write_file(etc, "cgroup.procs", listing.encode(), mode=0o644)

    def _net(self, login: str) -> netns.SliverNetwork:
        return netns.SliverNetwork.named(self.tag, login)

    def _remove_network(self, login: str) -> None:
        if self.network:
            netns.remove(self._net(login))

    def _present_logins(self) -> set[str]:
        found = {p.name for p in self.directory.slivers_dir.iterdir() if p.is_dir()}
        if self.cgroups is not None:
            found |= self.cgroups.logins()
        if self.quotas is not None:
            found |= self.quotas.logins()
        return found

    def _probe(
        self, images_dir: Path
    ) -> tuple[Enforcement, cgroups.SliverCgroups | None, diskquota.ImageQuotas | None, bool]:
        """Find the mechanisms that work here; a knob without one is only counted."""
        enforced: dict[str, str] = {}
        counted: dict[str, str] = {}
        root = os.geteuid() == 0
        sliver_cgroups = self._probe_cgroups(root, enforced, counted)
        quotas = None
        if not self.config.disk_quota:
            counted["disk_mb"] = "disk_quota = false in node.toml"
        elif not root:
            counted["disk_mb"] = "not root (loop mounts need it)"
        elif missing := _missing(diskquota.MKFS, diskquota.LOSETUP, diskquota.MOUNT,
                                 "/dev/loop-control"):
            counted["disk_mb"] = f"{missing} missing"
        else:
            quotas = diskquota.ImageQuotas(images_dir, self.directory.slivers_dir)
            enforced["disk_mb"] = "ext4 image loop-mounted as the sliver directory"
        network = False
        if not self.config.network:
            counted["bandwidth_kbps"] = "network namespaces off (network = false in node.toml)"
        elif not root:
            counted["bandwidth_kbps"] = "not root (namespaces and tc need it)"
        elif missing := _missing(netns.IP, netns.TC, netns.NSENTER):
            counted["bandwidth_kbps"] = f"{missing} missing"
        else:
            network = True
            enforced["bandwidth_kbps"] = "HTB class on the sliver's veth pair"
        report = Enforcement("enforcing", _ordered(enforced), _ordered(counted))
        return report, sliver_cgroups, quotas, network

    def _probe_cgroups(
        self, root: bool, enforced: dict[str, str], counted: dict[str, str]
    ) -> cgroups.SliverCgroups | None:
        knobs = {"cpu_share": "cpu", "memory_mb": "memory", "tasks": "pids"}
        if not self.config.cgroups or not root:
            why = "cgroups = false in node.toml" if not self.config.cgroups else "not root"
            counted.update(dict.fromkeys(knobs, why))
            return None
        layout = cgroups.detect()
        usable: dict[str, cgroups.Hierarchy] = {}
        for name, hierarchy in layout.hierarchies.items():
            try:
                hierarchy.path(self.tag).mkdir(exist_ok=True)
            except OSError:
                continue
            usable[name] = hierarchy
        files = {"cpu": ("cpu.shares", "cpu.weight"),
                 "memory": ("memory.limit_in_bytes (+memsw)", "memory.max (+swap.max 0)"),
                 "pids": ("pids.max", "pids.max")}
        for knob, controller in knobs.items():
            found = usable.get(controller)
            if found is None:
                counted[knob] = f"no writable {controller} cgroup controller"
                continue
            enforced[knob] = f"cgroup v{found.version} {files[controller][found.version - 1]}"
        if not usable:
            return None
        return cgroups.SliverCgroups(cgroups.Layout(usable), self.tag)


def owner_tag(prefix: str, node_urn: str) -> str:
    """`<prefix>-<8 hex of the node URN>`: the name stem of everything one node manager owns."""
    return f"{prefix}-{hashlib.sha256(node_urn.encode()).hexdigest()[:8]}"


def _own_limit(kind: int) -> int:
    """The node manager's own hard limit: what a knob enforced elsewhere leaves in place
    (raising a hard limit would need CAP_SYS_RESOURCE)."""
    return resource.getrlimit(kind)[1]


def _missing(*paths: str) -> str:
    return ", ".join(p for p in paths if not Path(p).exists() and not shutil.which(p))


def _ordered(knobs: dict[str, str]) -> dict[str, str]:
    return {k: knobs[k] for k in KNOBS if k in knobs}
