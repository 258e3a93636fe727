"""A network namespace per sliver: a veth pair to the node, routing, and HTB shaping (`ip`, `tc`).

```
node  <host veth> 10.213.x.1/30  ──────  10.213.x.2/30 <sliver veth>  sliver's namespace
      HTB root: rate to the sliver            HTB root: rate from the sliver; default route
```
The sliver reaches the node at the host end's address; beyond the node it needs forwarding
and NAT, which the operator turns on once for the whole pool (see docs/operator-guide.md).
The host end carries the owner's tag as its interface alias so that strays are recognisable
(interface names are limited to 15 characters).
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

IP = "/usr/sbin/ip"
TC = "/usr/sbin/tc"
NSENTER = "/usr/bin/nsenter"
NETNS_DIR = Path("/run/netns")
SYS_NET = Path("/sys/class/net")
DEFAULT_POOL = "10.213.0.0/16"
# several node managers of one host choose /30s from the same pool one at a time
POOL_LOCK = Path("/run/lock/sfa-sliver-addresses.lock")


class NetworkError(OSError):
    """An `ip` or `tc` command failed."""


@dataclass(frozen=True)
class SliverNetwork:
    """The names and addresses of one sliver's namespace and veth pair."""

    namespace: str
    host_veth: str
    sliver_veth: str
    tag: str

    @classmethod
    def named(cls, tag: str, login: str) -> SliverNetwork:
        digest = hashlib.sha256(f"{tag}/{login}".encode()).hexdigest()[:8]
        short = tag[:4]
        return cls(f"{tag}-{login}", f"{short}{digest}h", f"{short}{digest}s", tag)

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.namespace

    def exists(self) -> bool:
        return self.netns_path.exists()

    def enter_prefix(self) -> tuple[str, ...]:
        """The argv prefix that runs a command inside the namespace (nsenter execs, so the pid
        is kept)."""
        return (NSENTER, f"--net={self.netns_path}", "--")


@dataclass(frozen=True)
class Traffic:
    """Bytes the sliver sent and received through its veth."""

    sent_bytes: int
    received_bytes: int


def create(net: SliverNetwork, rate_kbit: int, pool: str = DEFAULT_POOL) -> None:
    """Make the namespace, veth pair, addresses, route and shaping; on an existing one only
    the rate is set again."""
    if net.exists() and (SYS_NET / net.host_veth).exists():
        shape(net, rate_kbit)
        return
    remove(net)
    try:
        with _pool_lock():
            subnet = free_subnet(pool)
            host_address, sliver_address = list(subnet.hosts())[:2]
            prefix = subnet.prefixlen
            _run(IP, "netns", "add", net.namespace)
            _batch(IP, (), [
                f"link add {net.host_veth} type veth peer name {net.sliver_veth}",
                f"link set {net.host_veth} alias {net.tag}/{net.namespace}",
                f"link set {net.sliver_veth} netns {net.namespace}",
                f"addr add {host_address}/{prefix} dev {net.host_veth}",
                f"link set {net.host_veth} up",
            ])
        _batch(IP, ("-n", net.namespace), [
            f"addr add {sliver_address}/{prefix} dev {net.sliver_veth}",
            f"link set {net.sliver_veth} up",
            "link set lo up",
            f"route add default via {host_address}",
        ])
        shape(net, rate_kbit)
    except NetworkError:
        remove(net)
        raise


def shape(net: SliverNetwork, rate_kbit: int) -> None:
    """One HTB class at `rate_kbit` (rate = ceil) on both ends: what the sliver sends leaves
    through its end, what it receives through the node's."""
    for prefix, device in ((("-n", net.namespace), net.sliver_veth), ((), net.host_veth)):
        commands = []
        if "qdisc htb 1: root" not in _run(TC, *prefix, "qdisc", "show", "dev", device):
            commands.append(f"qdisc replace dev {device} root handle 1: htb default 10")
        commands.append(f"class replace dev {device} parent 1: classid 1:10 htb "
                        f"rate {rate_kbit}kbit ceil {rate_kbit}kbit")
        _batch(TC, prefix, commands)


def remove(net: SliverNetwork) -> None:
    """Delete the namespace (which takes its veth pair with it) and a leftover host end."""
    if net.exists():
        _run(IP, "netns", "delete", net.namespace)
    _delete_link(net.host_veth)


def _delete_link(device: str) -> None:
    """Delete a link; one that vanished meanwhile (a namespace's veth goes with it) is fine."""
    if not (SYS_NET / device).exists():
        return
    try:
        _run(IP, "link", "delete", device)
    except NetworkError:
        if (SYS_NET / device).exists():
            raise


def addresses(net: SliverNetwork) -> tuple[str, str] | None:
    """(node end, sliver end) addresses of the pair, None when it is gone."""
    try:
        text = _run(IP, "-o", "-4", "addr", "show", "dev", net.host_veth)
    except NetworkError:
        return None
    for line in text.splitlines():
        interface = ipaddress.ip_interface(line.split()[3])
        hosts = list(interface.network.hosts())
        return str(hosts[0]), str(hosts[1])
    return None


def traffic(net: SliverNetwork) -> Traffic | None:
    """Bytes through the host end, seen from the sliver (None without a veth)."""
    stats = SYS_NET / net.host_veth / "statistics"
    try:
        received = int((stats / "tx_bytes").read_text())
        sent = int((stats / "rx_bytes").read_text())
    except OSError:
        return None
    return Traffic(sent_bytes=sent, received_bytes=received)


def owned(tag: str) -> tuple[set[str], set[str]]:
    """(namespaces, host veths) carrying `tag`: the owner's namespaces and veths now."""
    namespaces = {p.name for p in NETNS_DIR.glob(f"{tag}-*")} if NETNS_DIR.is_dir() else set()
    veths = set()
    for device in SYS_NET.iterdir():
        try:
            alias = (device / "ifalias").read_text().strip()
        except OSError:
            continue
        if alias.startswith(f"{tag}/"):
            veths.add(device.name)
    return namespaces, veths


def remove_owned(tag: str, keep: set[str]) -> list[str]:
    """Remove the tag's namespaces and veths whose namespace is not in `keep`; what went."""
    namespaces, veths = owned(tag)
    removed = []
    for name in sorted(namespaces - keep):
        _run(IP, "netns", "delete", name)
        removed.append(name)
    for device in sorted(veths):
        alias = (SYS_NET / device / "ifalias").read_text().strip()
        if alias.split("/", 1)[1] not in keep:
            _delete_link(device)
            removed.append(device)
    return removed


def free_subnet(pool: str) -> ipaddress.IPv4Network:
    """The first /30 of `pool` that no interface of the node uses."""
    network = ipaddress.ip_network(pool)
    if not isinstance(network, ipaddress.IPv4Network):
        raise NetworkError(f"the sliver address pool {pool} must be IPv4")
    used = set()
    for line in _run(IP, "-o", "-4", "addr", "show").splitlines():
        used.add(ipaddress.ip_interface(line.split()[3]).network)
    for subnet in network.subnets(new_prefix=30):
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise NetworkError(f"the sliver address pool {pool} is exhausted")


@contextmanager
def _pool_lock() -> Iterator[None]:
    POOL_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(POOL_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _batch(tool: str, options: tuple[str, ...], commands: list[str]) -> None:
    """Several `ip` / `tc` commands in one process (`-batch -`). Names are the tag and a
    sanitized login (no blanks or newlines), so no line can carry another command."""
    _run(tool, *options, "-batch", "-", stdin="".join(f"{line}\n" for line in commands))


def _run(*argv: str, stdin: str | None = None) -> str:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result.stdout
