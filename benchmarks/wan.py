"""An emulated wide-area network for benchmarks: a hub namespace (the aggregate's side) and a
few site namespaces (node managers), each site joined to the hub by a link with a round-trip
delay, jitter and loss.

Built for ~1,000 node managers on a 2-core machine: a handful of sites, each holding
node-manager processes that serve many nodes on one address, and one link per site, so every
node of a site sees that link's RTT. Addresses are 10.216.SITE.2 (site) and 10.216.SITE.1
(hub), only inside the namespaces made here; nothing is added to the caller's namespace.

The links are TUN device pairs driven by `delay_line.py` (this kernel has no sch_netem for
`tc netem`). Needs root. Everything made here (namespaces, devices, processes) is removed by
`close()`, which `with EmulatedWan(...)` calls on any exit, Ctrl-C included.

    with EmulatedWan(sites=4, shape=LinkShape(rtt_ms=80, jitter_ms=10, loss=0.01)) as wan:
        child = wan.popen(wan.site_namespace(0), [sys.executable, "server.py",
                                                    wan.site_address(0)])
        wan.enter_hub()  # this process now talks from the hub
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DELAY_LINE = Path(__file__).with_name("delay_line.py")
CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class LinkShape:
    """A site's link: round-trip time, jitter (± per direction) and loss (per direction)."""

    rtt_ms: float
    jitter_ms: float = 0.0
    loss: float = 0.0

    def as_spec(self) -> dict[str, float]:
        return {"delay": self.rtt_ms / 2000, "jitter": self.jitter_ms / 2000, "loss": self.loss}


def missing_mechanism() -> str:
    """Why an emulated WAN cannot be built here ('' when it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and TUN devices)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (the kernel has no TUN support)"
    if not os.path.exists("/proc/self/ns/net"):
        return "the kernel has no network namespaces"
    return ""


class EmulatedWan:
    """Hub and site namespaces, their links and the processes started in them."""

    def __init__(self, sites: int, shape: LinkShape, *, prefix: str = "w16b",
                 seed: int = 1) -> None:
        if not 1 <= sites <= 250:
            raise ValueError("between 1 and 250 sites")
        self.sites, self.shape, self.seed = sites, shape, seed
        tag = f"{prefix}-{os.getpid():x}"
        self.hub = f"{tag}-hub"
        self._site_names = [f"{tag}-s{i}" for i in range(sites)]
        # interface names are at most 15 bytes: prefix-pidhex + h|s + site number
        self._devices = [(f"{tag}h{i}", f"{tag}s{i}") for i in range(sites)]
        if any(len(name) > 15 for pair in self._devices for name in pair):
            raise ValueError(f"prefix {prefix!r} too long for interface names")
        self._namespaces: list[str] = []
        self._processes: list[subprocess.Popen[Any]] = []
        self._delay: subprocess.Popen[str] | None = None

    def site_namespace(self, site: int) -> str:
        return self._site_names[site]

    @staticmethod
    def site_address(site: int) -> str:
        return f"10.216.{site}.2"

    @staticmethod
    def hub_address(site: int) -> str:
        return f"10.216.{site}.1"

    def __enter__(self) -> EmulatedWan:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Make the namespaces, start the delay line and wire its devices into them."""
        why = missing_mechanism()
        if why:
            raise RuntimeError(f"cannot emulate a WAN: {why}")
        for name in (self.hub, *self._site_names):
            _ip("netns", "add", name)
            self._namespaces.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        links = [{"a": hub_dev, "b": site_dev, **self.shape.as_spec()}
                 for hub_dev, site_dev in self._devices]
        self._delay = subprocess.Popen(
            [sys.executable, str(DELAY_LINE), json.dumps({"seed": self.seed, "links": links})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._delay.stdout is not None
        if self._delay.stdout.readline().strip() != "ready":
            raise RuntimeError("the delay line did not start")
        for site, (hub_dev, site_dev) in enumerate(self._devices):
            self._wire(hub_dev, self.hub, self.hub_address(site), self.site_address(site))
            self._wire(site_dev, self._site_names[site], self.site_address(site),
                       self.hub_address(site))

    @staticmethod
    def _wire(device: str, namespace: str, local: str, peer: str) -> None:
        _ip("link", "set", device, "netns", namespace)
        _ip("-n", namespace, "addr", "add", local, "peer", peer, "dev", device)
        _ip("-n", namespace, "link", "set", device, "up")

    def popen(self, namespace: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start `argv` in `namespace` (one made here); `close()` ends it."""
        if namespace not in self._namespaces:
            raise ValueError(f"{namespace} is not a namespace of this WAN")
        process = subprocess.Popen(["ip", "netns", "exec", namespace, *argv], **kwargs)
        self._processes.append(process)
        return process

    @property
    def delay_line_pid(self) -> int | None:
        return self._delay.pid if self._delay is not None else None

    def delay_line_cpu(self) -> float:
        """CPU seconds the delay line has used so far (the emulated network's cost here)."""
        if self._delay is None:
            return 0.0
        fields = Path(f"/proc/{self._delay.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def enter_hub(self) -> None:
        """Move this process into the hub namespace (before it starts any thread)."""
        if threading.active_count() != 1:
            raise RuntimeError("enter the hub before starting threads: setns moves one thread")
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(NETNS_DIR / self.hub, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the hub failed")
        finally:
            os.close(fd)

    def close(self) -> None:
        """End the processes started here, the delay line (its devices go with it) and the
        namespaces. Safe to call twice and after a partial open."""
        for process in reversed(self._processes):
            _end(process)
        self._processes.clear()
        if self._delay is not None:
            if self._delay.stdin is not None:
                self._delay.stdin.close()  # its signal to stop
            _end(self._delay)
            self._delay = None
        for name in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        self._namespaces.clear()


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _end(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """Stop one process we started: SIGTERM, then SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
