"""The deployment's `sfa.toml`: parsed with tomllib into dataclasses, every key checked.

Unknown sections or keys are refused with a message naming them, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sfa.errors import BadArgs
from sfa.nodemanager.nodedir import BACKENDS as NODE_BACKENDS

CONFIG_NAME = "sfa.toml"


class ConfigError(BadArgs):
    """The configuration file is invalid."""


@dataclass(frozen=True)
class AuthorityConfig:
    hrn: str = ""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    data_dir: str = "."


@dataclass(frozen=True)
class RegistrySection:
    enabled: bool = True
    port: int = 12345
    slice_lifetime_days: int = 30
    max_slice_lifetime_days: int = 180
    credential_lifetime_days: int = 30
    # N: calls run in N worker processes (every core, no GIL shared with the reactor);
    # 0: in threads of the server process
    worker_processes: int = 2


@dataclass(frozen=True)
class AggregateConfig:
    enabled: bool = True
    port: int = 12346
    # the resource driver: a name in the sfa.drivers entry-point group ("nodemanager",
    # "memory", ...) or "package.module:factory"; no default (docs/writing-a-driver.md)
    driver: str = ""
    # sliver lifetimes: allocated ones lapse after allocated_minutes; leases default to
    # default_lease_days and never exceed max_lease_days (nor the slice credential)
    allocated_minutes: int = 10
    default_lease_days: int = 1
    max_lease_days: int = 30
    # node managers: calls in flight at once, seconds before a node counts as down
    parallelism: int = 32
    node_timeout_seconds: int = 15
    # GetVersion at every node manager (liveness and load for the advertisement)
    health_interval_seconds: int = 30
    # expired slivers are reaped at their expiry, and at least this often
    reap_interval_seconds: int = 30
    # reconciliation with every node manager (pending revocations first) at start and this often
    reconcile_interval_seconds: int = 300


@dataclass(frozen=True)
class SliceMgrConfig:
    enabled: bool = False
    port: int = 12347


@dataclass(frozen=True)
class NodesConfig:
    count: int = 0
    base_port: int = 12400
    # the sliver backend written into each new node's node.toml: directory | enforcing
    backend: str = "directory"


@dataclass(frozen=True)
class XmppConfig:
    """The XMPP pubsub server for OMF experiment control (docs/omf.md)."""

    enabled: bool = False
    # true: `sfa serve` runs Prosody from DIR/xmpp as a child; false: use a running server
    managed: bool = True
    host: str = "127.0.0.1"
    port: int = 5222
    domain: str = "localhost"
    pubsub: str = "pubsub.localhost"


@dataclass(frozen=True)
class TrustConfig:
    strict_crypto: bool = False
    max_delegation_depth: int = 8


@dataclass(frozen=True)
class LimitsConfig:
    max_request_bytes: int = 10_000_000
    max_concurrent_calls: int = 16
    idle_timeout_seconds: int = 60
    header_timeout_seconds: int = 10


@dataclass(frozen=True)
class PeerConfig:
    registry: str = ""
    aggregate: str = ""


@dataclass(frozen=True)
class SfaConfig:
    """The whole configuration; `base_dir` is the directory holding `sfa.toml`."""

    base_dir: Path
    authority: AuthorityConfig
    server: ServerConfig = field(default_factory=ServerConfig)
    registry: RegistrySection = field(default_factory=RegistrySection)
    aggregate: AggregateConfig = field(default_factory=AggregateConfig)
    slicemgr: SliceMgrConfig = field(default_factory=SliceMgrConfig)
    nodes: NodesConfig = field(default_factory=NodesConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    xmpp: XmppConfig = field(default_factory=XmppConfig)
    peers: dict[str, PeerConfig] = field(default_factory=dict)
    # [driver]: the aggregate driver's own settings, handed to its factory unchecked
    driver: dict[str, Any] = field(default_factory=dict)

    @property
    def data_path(self) -> Path:
        """The data directory; a relative `data_dir` is relative to the config file."""
        return (self.base_dir / self.server.data_dir).resolve()


_SECTIONS: dict[str, type] = {
    "authority": AuthorityConfig,
    "server": ServerConfig,
    "registry": RegistrySection,
    "aggregate": AggregateConfig,
    "slicemgr": SliceMgrConfig,
    "nodes": NodesConfig,
    "trust": TrustConfig,
    "limits": LimitsConfig,
    "xmpp": XmppConfig,
}
_PORT_KEYS = ("port", "base_port")
_NON_NEGATIVE_KEYS = ("worker_processes", "count")
_POSITIVE_KEYS = (
    "slice_lifetime_days",
    "max_slice_lifetime_days",
    "credential_lifetime_days",
    "max_delegation_depth",
    "max_request_bytes",
    "max_concurrent_calls",
    "idle_timeout_seconds",
    "header_timeout_seconds",
    "allocated_minutes",
    "default_lease_days",
    "max_lease_days",
    "parallelism",
    "node_timeout_seconds",
    "health_interval_seconds",
    "reap_interval_seconds",
    "reconcile_interval_seconds",
)


def load_config(path: Path | str) -> SfaConfig:
    """Read and check `sfa.toml` (or DIR/sfa.toml when given a directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration {path}: {exc.strerror}") from None
    return parse_config(text, base_dir=path.parent.resolve(), source=str(path))


def parse_config(text: str, *, base_dir: Path, source: str = CONFIG_NAME) -> SfaConfig:
    """Parse TOML text into an SfaConfig; ConfigError names the offending section or key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name in ("peers", "driver"):
            continue
        if name not in _SECTIONS:
            known = ", ".join(sorted([*_SECTIONS, "peers", "driver"]))
            raise ConfigError(f"{source}: unknown section [{name}] (known: {known})")
        sections[name] = _build(_SECTIONS[name], value, f"{source} [{name}]")
    config = SfaConfig(
        base_dir=base_dir,
        authority=sections.pop("authority", AuthorityConfig()),
        peers=_peers(data.get("peers", {}), source),
        driver=_driver_table(data.get("driver", {}), source),
        **sections,
    )
    if not config.authority.hrn:
        raise ConfigError(f"{source}: [authority] hrn is required (e.g. hrn = \"plc\")")
    return config


def _build(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    types = {f.name: f.type for f in fields(cls)}
    for key, value in table.items():
        if key not in types:
            known = ", ".join(types)
            raise ConfigError(f"{where}: unknown key {key!r} (known: {known})")
        _check_value(key, value, types[key], where)
    return cls(**table)


def _check_value(key: str, value: Any, declared: object, where: str) -> None:
    expected = {"bool": bool, "int": int, "str": str}[str(declared)]
    if (expected is int and isinstance(value, bool)) or not isinstance(value, expected):
        raise ConfigError(f"{where}: {key} must be a {expected.__name__}, got {value!r}")
    _check_range(key, value, where)


def _check_range(key: str, value: Any, where: str) -> None:
    if key == "backend" and value not in NODE_BACKENDS:
        raise ConfigError(f"{where}: backend must be one of {', '.join(NODE_BACKENDS)}, "
                          f"got {value!r}")
    if key in _NON_NEGATIVE_KEYS and value < 0:
        raise ConfigError(f"{where}: {key} must be 0 or more, got {value}")
    if key in _PORT_KEYS and not 0 <= value <= 65535:
        raise ConfigError(f"{where}: {key} must be 0..65535 (0 = any free port), got {value}")
    if key in _POSITIVE_KEYS and value <= 0:
        raise ConfigError(f"{where}: {key} must be positive, got {value}")


def _driver_table(table: Any, source: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [driver] must be a table of the driver's settings")
    return dict(table)


def _peers(table: Any, source: str) -> dict[str, PeerConfig]:
    """[peers."plc.ple"] or the unquoted nested form [peers.plc.ple] both name HRN plc.ple."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [peers] must hold one table per peer HRN")
    peers: dict[str, PeerConfig] = {}

    def walk(prefix: str, node: dict[str, Any]) -> None:
        scalars = {k: v for k, v in node.items() if not isinstance(v, dict)}
        if scalars:
            peers[prefix] = _build(PeerConfig, scalars, f"{source} [peers.\"{prefix}\"]")
        for key, value in node.items():
            if isinstance(value, dict):
                walk(f"{prefix}.{key}" if prefix else key, value)

    for hrn, value in table.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [peers] {hrn} must be a table")
        walk(hrn, value)
    return peers


def render_config(config: SfaConfig) -> str:
    """The TOML text of a configuration, commented, as `sfa init` writes it."""
    c = config
    lines = [
        "# sfa deployment configuration (written by `sfa init`; see conf/sfa.toml for every key)",
        "",
        "[authority]",
        f"hrn = {_toml(c.authority.hrn)}",
        "",
        "[server]",
        f"host = {_toml(c.server.host)}",
        "# relative to this file",
        f"data_dir = {_toml(c.server.data_dir)}",
        "",
        *_section("registry", c.registry),
        *_section("aggregate", c.aggregate),
        "# the slice manager stays off until federation",
        *_section("slicemgr", c.slicemgr),
        "# node managers listen on base_port, base_port + 1, ...; backend: the sliver backend",
        "# new nodes get (directory | enforcing: cgroups, disk image, namespaces; needs root)",
        *_section("nodes", c.nodes),
        *_section("trust", c.trust),
        *_section("limits", c.limits),
        "# OMF experiment control over XMPP pubsub (`sfa init --xmpp`)",
        *_section("xmpp", c.xmpp),
    ]
    for hrn, peer in sorted(c.peers.items()):
        lines += _section(f'peers."{hrn}"', peer)
    if c.driver:
        lines += ["# the driver's own settings", "[driver]",
                  *(f"{key} = {_toml(value)}" for key, value in c.driver.items()), ""]
    return "\n".join(lines)


def _section(name: str, value: Any) -> list[str]:
    body = [f"{f.name} = {_toml(getattr(value, f.name))}" for f in fields(value)]
    return [f"[{name}]", *body, ""]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def service_url(host: str, port: int) -> str:
    """https://HOST:PORT/ (IPv6 literals in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"https://{shown}:{port}/"
