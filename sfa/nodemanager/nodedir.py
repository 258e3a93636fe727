"""A node's data directory: node.toml, its GID and key, trusted roots, database, slivers.

```
NODEDIR/node.toml          urn, hostname, port, local_port, trusted_roots, uid_base, uid_db,
                           [capacity], [thresholds]
NODEDIR/node.gid           the node's GID chain;  NODEDIR/node.pkey  its key (0600)
NODEDIR/trusted_roots/     root GIDs (or `trusted_roots = "/path"` to share a deployment's)
NODEDIR/db/node.sqlite     tickets, slivers, leases
NODEDIR/slivers/<login>/   the slivers (dirbackend; with the enforcing backend each is the
                           mount point of NODEDIR/images/<login>.img)
```
`backend = "directory"` (default) or `"enforcing"` chooses the sliver backend; `[enforcing]`
holds the enforcing backend's settings (`sfa.nodemanager.enforcing.EnforcingConfig`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.errors import BadArgs
from sfa.nodemanager.admission import Admission, Thresholds, default_capacity
from sfa.nodemanager.backend import Backend
from sfa.nodemanager.dirbackend import DirBackend
from sfa.nodemanager.enforcing import EnforcingBackend, EnforcingConfig
from sfa.nodemanager.manager import NodeIdentity, NodeManager
from sfa.nodemanager.resources import Resources
from sfa.nodemanager.store import NodeStore
from sfa.nodemanager.uids import DEFAULT_UID_DB, HostUids, host_allocator
from sfa.trust.gid import GID
from sfa.trust.hierarchy import Authority
from sfa.trust.keys import public_keys_equal, save_private_key
from sfa.trust.roots import TrustedRoots
from sfa.trust.verify import TrustPolicy
from sfa.xrn import same_name

CONFIG_FILE = "node.toml"
DEFAULT_UID_BASE = 200_000
BACKENDS = ("directory", "enforcing")


@dataclass(frozen=True)
class NodeConfig:
    """What node.toml says."""

    urn: str
    hostname: str = "127.0.0.1"
    port: int = 12346
    local_port: int = 0  # 0 = no local API endpoint
    trusted_roots: str = "trusted_roots"
    uid_base: int | None = None  # per-sliver uids from here when running as root
    uid_db: str | None = None  # the host's uid file, shared by its node managers (root only)
    capacity: Resources = field(default_factory=default_capacity)
    thresholds: Thresholds = field(default_factory=Thresholds)
    strict_crypto: bool = False
    backend: str = "directory"
    enforcing: EnforcingConfig = field(default_factory=EnforcingConfig)

    def roots_dir(self, nodedir: Path) -> Path:
        return (nodedir / self.trusted_roots).resolve()


def load_node_config(nodedir: Path) -> NodeConfig:
    """Read NODEDIR/node.toml; BadArgs naming the file and the problem otherwise."""
    path = Path(nodedir) / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BadArgs(f"{path} is missing: create the node with `sfa init --nodes`") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadArgs(f"{path}: {exc}") from None
    try:
        thresholds = Thresholds(**data.get("thresholds", {}))
        uid_base = data.get("uid_base")
        uid_db = data.get("uid_db")
        return NodeConfig(
            urn=str(data["urn"]),
            hostname=str(data.get("hostname", "127.0.0.1")),
            port=int(data.get("port", 12346)),
            local_port=int(data.get("local_port", 0)),
            trusted_roots=str(data.get("trusted_roots", "trusted_roots")),
            uid_base=None if uid_base is None else int(uid_base),
            uid_db=None if uid_db is None else str(uid_db),
            capacity=Resources.from_mapping(data.get("capacity", default_capacity().to_dict())),
            thresholds=thresholds,
            strict_crypto=bool(data.get("strict_crypto", False)),
            backend=_backend_name(data.get("backend", "directory")),
            enforcing=_enforcing(data.get("enforcing", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadArgs(f"{path}: missing or bad setting ({exc})") from None


def write_node_config(nodedir: Path, config: NodeConfig) -> Path:
    """Write NODEDIR/node.toml (values are plain, so the TOML is written by hand)."""
    lines = [
        f"urn = {_toml(config.urn)}",
        f"hostname = {_toml(config.hostname)}",
        f"port = {config.port}",
        f"local_port = {config.local_port}",
        f"trusted_roots = {_toml(config.trusted_roots)}",
        f"strict_crypto = {'true' if config.strict_crypto else 'false'}",
        f"backend = {_toml(config.backend)}",
    ]
    if config.uid_base is not None:
        lines.append(f"uid_base = {config.uid_base}")
    if config.uid_db is not None:
        lines.append(f"uid_db = {_toml(config.uid_db)}")
    lines += ["", "[capacity]"]
    lines += [f"{name} = {value}" for name, value in config.capacity.to_dict().items()]
    lines += ["", "[thresholds]"]
    if config.thresholds.max_load is not None:
        lines.append(f"max_load = {float(config.thresholds.max_load)}")
    if config.thresholds.min_free_disk_percent is not None:
        lines.append(f"min_free_disk_percent = {float(config.thresholds.min_free_disk_percent)}")
    if config.enforcing != EnforcingConfig():
        lines += ["", "[enforcing]"]
        lines += [f"{f.name} = {_toml_value(getattr(config.enforcing, f.name))}"
                  for f in fields(EnforcingConfig)]
    path = Path(nodedir) / CONFIG_FILE
    path.write_text("\n".join(lines) + "\n")
    return path


def create_node_dir(
    nodedir: Path,
    *,
    authority: Authority,
    hrn: str,
    hostname: str = "127.0.0.1",
    port: int = 12346,
    local_port: int = 0,
    trusted_roots: Path | None = None,
    capacity: Resources | None = None,
    thresholds: Thresholds | None = None,
    uid_base: int | None = None,
    backend: str = "directory",
) -> NodeConfig:
    """Make a node's data directory: a key and GID issued by `authority`, node.toml, and
    trusted roots (`trusted_roots` shared by path, else a directory holding the authority's
    root)."""
    nodedir = Path(nodedir)
    nodedir.mkdir(parents=True, exist_ok=True)
    gid, key = authority.issue_gid(hrn, "node")
    assert key is not None
    (nodedir / "node.gid").write_text(gid.to_pem())
    save_private_key(nodedir / "node.pkey", key)
    if trusted_roots is None:
        roots = nodedir / "trusted_roots"
        roots.mkdir(exist_ok=True)
        top = gid.chain[-1] if gid.chain else authority.gid.certificate
        (roots / "root.gid").write_text(GID.from_certificate(top).to_pem())
        roots_setting = "trusted_roots"
    else:
        roots_setting = str(Path(trusted_roots).resolve())
    config = NodeConfig(
        urn=gid.urn, hostname=hostname, port=port, local_port=local_port,
        trusted_roots=roots_setting, uid_base=uid_base,
        capacity=capacity or default_capacity(), thresholds=thresholds or Thresholds(),
        backend=_backend_name(backend),
    )
    write_node_config(nodedir, config)
    return config


def open_node(nodedir: Path, *, config: NodeConfig | None = None) -> NodeManager:
    """A NodeManager over NODEDIR (database migrated, backend ready; not yet recovered:
    call `recover()` once before serving)."""
    nodedir = Path(nodedir)
    config = config or load_node_config(nodedir)
    gid = GID.from_pem((nodedir / "node.gid").read_bytes())
    if not same_name(gid.urn, config.urn):
        raise BadArgs(f"{nodedir}/node.gid is {gid.urn} but node.toml says {config.urn}")
    key = _load_own_key(nodedir / "node.pkey")
    if not public_keys_equal(key.public_key(), gid.public_key):
        raise BadArgs(f"{nodedir}/node.pkey is not the key of node.gid")
    (nodedir / "db").mkdir(exist_ok=True)
    roots = TrustedRoots(config.roots_dir(nodedir))
    return NodeManager(
        node=NodeIdentity(gid=gid, key=key, hostname=config.hostname),
        policy=TrustPolicy(roots=roots, strict_crypto=config.strict_crypto),
        store=NodeStore(nodedir / "db" / "node.sqlite"),
        backend=make_backend(nodedir, config),
        admission=Admission(config.capacity, config.thresholds, nodedir),
        uids=_host_uids(nodedir, config),
    )


def make_backend(nodedir: Path, config: NodeConfig) -> Backend:
    """The sliver backend node.toml chooses."""
    slivers = Path(nodedir) / "slivers"
    if config.backend == "enforcing":
        return EnforcingBackend(slivers, Path(nodedir) / "images", config.urn, config.enforcing)
    return DirBackend(slivers)


def _backend_name(value: object) -> str:
    if value not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {value!r}")
    return str(value)


def _enforcing(values: object) -> EnforcingConfig:
    if not isinstance(values, dict):
        raise TypeError("[enforcing] must be a table")
    known = {f.name: f for f in fields(EnforcingConfig)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown [enforcing] keys: {', '.join(sorted(unknown))}")
    config = EnforcingConfig(**values)
    for f in fields(EnforcingConfig):
        default = getattr(EnforcingConfig(), f.name)
        if type(getattr(config, f.name)) is not type(default):
            raise TypeError(f"[enforcing] {f.name} must be a {type(default).__name__}")
    return config


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else _toml(str(value))


def _host_uids(nodedir: Path, config: NodeConfig) -> HostUids | None:
    """Run as root, slivers get uids from the host's allocator; otherwise none."""
    if os.geteuid() != 0:
        return None
    path = Path(config.uid_db) if config.uid_db else DEFAULT_UID_DB
    if not path.is_absolute():
        path = nodedir / path
    base = DEFAULT_UID_BASE if config.uid_base is None else config.uid_base
    return HostUids(host_allocator(path), owner=str(nodedir.resolve()), base=base)


def _load_own_key(path: Path) -> rsa.RSAPrivateKey:
    """The node's own key from its own disk, without the ~60 ms RSA consistency check (a node
    host running a thousand node managers would spend a minute on it); it must match node.gid."""
    try:
        key = serialization.load_pem_private_key(
            path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
        )
    except (OSError, ValueError, TypeError) as exc:
        raise BadArgs(f"{path}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadArgs(f"{path}: not an RSA key")
    return key


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

