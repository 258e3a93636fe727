"""A worked sfa driver: each sliver is a Linux network namespace with a process inside.

A small but real testbed on one Linux host (root needed): the aggregate advertises `nodes`
logical nodes; Provision makes a network namespace per sliver (loopback up) and writes the
users' keys beside it, geni_start runs `command` inside the namespace, geni_stop stops it,
Delete removes both. State lives in the kernel (namespaces, processes) and in `state_dir`
(pid and key files), so a restarted aggregate finds its slivers again.

Serve it with sfa.toml:

    [aggregate]
    driver = "netns_driver:netns_driver"      # this file on PYTHONPATH (or an entry point)

    [driver]
    nodes = 2                                  # logical nodes advertised
    prefix = "sfa"                             # namespace names: <prefix>-<node>-<sliver id>
    command = ["sleep", "infinity"]            # what geni_start runs in the namespace

docs/writing-a-driver.md walks through this file.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sfa.aggregate import (
    Action,
    DriverContext,
    HealthReport,
    Inventory,
    Node,
    OperationalState,
    ReconcileReport,
    Sliver,
    SliverResult,
    UserKeys,
    node_urn,
)
from sfa.errors import BadArgs, Unavailable

SLIVER_TYPE = "netns"
NETNS_DIR = Path("/run/netns")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


@dataclass(frozen=True)
class NetnsSettings:
    """The [driver] section, checked."""

    nodes: int = 2
    prefix: str = "sfa"
    command: tuple[str, ...] = ("sleep", "infinity")

    @classmethod
    def parse(cls, options: dict[str, object]) -> NetnsSettings:
        unknown = set(options) - {"nodes", "prefix", "command"}
        if unknown:
            raise BadArgs(f"[driver] unknown keys {sorted(unknown)} (known: nodes, prefix, "
                          "command)")
        nodes = options.get("nodes", cls.nodes)
        prefix = options.get("prefix", cls.prefix)
        command = options.get("command", list(cls.command))
        if not isinstance(nodes, int) or isinstance(nodes, bool) or not 1 <= nodes <= 64:
            raise BadArgs(f"[driver] nodes must be 1..64, got {nodes!r}")
        if not isinstance(prefix, str) or not NAME.match(prefix):
            raise BadArgs(f"[driver] prefix must be lowercase letters, digits and -, got "
                          f"{prefix!r}")
        if (not isinstance(command, list) or not command
                or not all(isinstance(word, str) and word for word in command)):
            raise BadArgs("[driver] command must be a non-empty list of strings")
        return cls(nodes, prefix, tuple(command))


@dataclass
class NetnsDriver:
    """The Driver: one namespace per sliver, its process started and stopped by actions."""

    authority_hrn: str
    state_dir: Path
    settings: NetnsSettings
    recorded: Callable[[], Sequence[Sliver]] = list  # the aggregate's slivers (reconcile)
    inventory: Inventory | None = None
    children: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    # --- lifecycle and inventory --------------------------------------------------------------

    async def start(self, inventory: Inventory) -> None:
        """Refuse to start where namespaces cannot be made (not root, no `ip`)."""
        if os.geteuid() != 0:
            raise Unavailable("the netns driver needs root (it makes network namespaces)")
        if shutil.which("ip") is None:
            raise Unavailable("the netns driver needs the `ip` command (iproute2)")
        self.inventory = inventory

    async def stop(self) -> None:
        """Slivers outlive the aggregate: nothing is torn down, only our handles dropped."""
        self.children.clear()

    async def nodes(self) -> list[Node]:
        return [Node(urn=node_urn(self.authority_hrn, f"node{i}"), hostname="localhost",
                     site="netns", hardware_types=("netns-host",),
                     sliver_types=(SLIVER_TYPE,), exclusive_allowed=False, capacity=8)
                for i in range(1, self.settings.nodes + 1)]

    async def check_health(self) -> HealthReport:
        ok = (await _run("ip", "netns", "list"))[0] == 0
        urns = tuple(n.urn for n in await self.nodes())
        return HealthReport(up=urns) if ok else HealthReport(down=urns)

    async def reconcile(self) -> ReconcileReport:
        """Delete the namespaces of ours that no sliver record names (left by a crash)."""
        known = {self._netns_of(s) for s in await asyncio.to_thread(self.recorded)}
        ours = [n for n in await _namespaces() if n.startswith(self.settings.prefix + "-")]
        orphans = [n for n in ours if n not in known]
        for name in orphans:
            await self._destroy(name)
        return ReconcileReport(orphans_deleted=tuple(orphans))

    # --- slivers ------------------------------------------------------------------------------

    async def allocate(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        return [SliverResult(s.urn, OperationalState.PENDING_ALLOCATION,
                             "" if s.sliver_type in ("", SLIVER_TYPE)
                             else f"this testbed offers only sliver_type {SLIVER_TYPE}")
                for s in slivers]

    async def provision(self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
                        ) -> list[SliverResult]:
        return list(await asyncio.gather(*(self._provision(s, users) for s in slivers)))

    async def perform_action(self, slivers: Sequence[Sliver], action: Action,
                             users: Sequence[UserKeys]) -> list[SliverResult]:
        steps = {Action.START: self._start, Action.STOP: self._stop,
                 Action.RESTART: self._restart}
        if action not in steps:
            return [SliverResult(s.urn, None, f"{action.value} is not an action here")
                    for s in slivers]
        return list(await asyncio.gather(*(steps[action](s) for s in slivers)))

    async def status(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        return [SliverResult(s.urn, self._state(s)) for s in slivers]

    async def renew(self, slivers: Sequence[Sliver], expires: datetime) -> list[SliverResult]:
        return [SliverResult(s.urn) for s in slivers]  # the aggregate reaps at expiry

    async def delete(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        results = []
        for sliver in slivers:
            error = await self._destroy(self._netns_of(sliver))
            results.append(SliverResult(sliver.urn, None, error))
        return results

    async def update_users(self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
                           ) -> list[SliverResult]:
        for sliver in slivers:
            self._write_keys(self._netns_of(sliver), users)
        return [SliverResult(s.urn, self._state(s)) for s in slivers]

    # --- the testbed --------------------------------------------------------------------------

    def _netns_of(self, sliver: Sliver) -> str:
        node = sliver.node_urn.rsplit("+", 1)[-1]
        return f"{self.settings.prefix}-{node}-{sliver.urn.rsplit('.', 1)[-1][:12]}"

    def _home(self, netns: str) -> Path:
        return self.state_dir / "slivers" / netns

    async def _provision(self, sliver: Sliver, users: Sequence[UserKeys]) -> SliverResult:
        netns = self._netns_of(sliver)
        if not (NETNS_DIR / netns).exists():
            code, output = await _run("ip", "netns", "add", netns)
            if code != 0:
                return SliverResult(sliver.urn, None, f"ip netns add {netns}: {output}")
        code, output = await _run("ip", "-n", netns, "link", "set", "lo", "up")
        if code != 0:
            return SliverResult(sliver.urn, None, f"loopback in {netns}: {output}")
        self._write_keys(netns, users)
        return SliverResult(sliver.urn, OperationalState.NOTREADY, login_user=netns)

    async def _start(self, sliver: Sliver) -> SliverResult:
        netns = self._netns_of(sliver)
        if not (NETNS_DIR / netns).exists():
            return SliverResult(sliver.urn, None, f"namespace {netns} is gone; provision again")
        if _alive(self._pid(netns)):
            return SliverResult(sliver.urn, OperationalState.READY)
        process = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", netns, *self.settings.command,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
        self.children[netns] = process
        (self._home(netns) / "pid").write_text(str(process.pid))
        return SliverResult(sliver.urn, OperationalState.READY)

    async def _stop(self, sliver: Sliver) -> SliverResult:
        await self._kill(self._netns_of(sliver))
        return SliverResult(sliver.urn, OperationalState.NOTREADY)

    async def _restart(self, sliver: Sliver) -> SliverResult:
        await self._stop(sliver)
        return await self._start(sliver)

    def _state(self, sliver: Sliver) -> OperationalState | None:
        netns = self._netns_of(sliver)
        if not (NETNS_DIR / netns).exists():
            return OperationalState.FAILED  # provisioned, yet its namespace is gone
        return OperationalState.READY if _alive(self._pid(netns)) else OperationalState.NOTREADY

    def _pid(self, netns: str) -> int | None:
        try:
            return int((self._home(netns) / "pid").read_text())
        except (OSError, ValueError):
            return None

    async def _kill(self, netns: str) -> None:
        pid = self._pid(netns)
        if _alive(pid):
            assert pid is not None
            os.killpg(pid, signal.SIGTERM)
        child = self.children.pop(netns, None)
        if child is not None:
            await child.wait()
        (self._home(netns) / "pid").unlink(missing_ok=True)

    async def _destroy(self, netns: str) -> str:
        await self._kill(netns)
        if (NETNS_DIR / netns).exists():
            code, output = await _run("ip", "netns", "delete", netns)
            if code != 0:
                return f"ip netns delete {netns}: {output}"
        shutil.rmtree(self._home(netns), ignore_errors=True)
        return ""

    def _write_keys(self, netns: str, users: Sequence[UserKeys]) -> None:
        home = self._home(netns)
        home.mkdir(parents=True, exist_ok=True)
        keys = [key for user in users for key in user.keys]
        (home / "authorized_keys").write_text("".join(f"{key}\n" for key in keys))


def netns_driver(context: DriverContext) -> NetnsDriver:
    """The factory sfa.toml names: `driver = "netns_driver:netns_driver"`."""
    settings = NetnsSettings.parse(dict(context.options))
    return NetnsDriver(context.authority_hrn, context.state_dir, settings,
                       recorded=context.store.all_slivers)


async def _run(*argv: str) -> tuple[int, str]:
    """Run a command without blocking the event loop: (exit code, its output)."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace").strip()


async def _namespaces() -> list[str]:
    code, output = await _run("ip", "netns", "list")
    return [line.split()[0] for line in output.splitlines() if line.strip()] if code == 0 else []


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False
