"""The on-disk layout of one deployment, and `init` that creates it.

    DIR/sfa.toml
    DIR/authorities/            the AuthorityStore; the root authority in it
    DIR/trusted_roots/<hrn>.gid our root (and peers' roots, added later)
    DIR/services/<name>.gid     service GIDs (+authority+sa|am|sm), CN=<hrn>.<service>,
    DIR/services/<name>.pkey    with DNS:/IP: names for the host
    DIR/db/registry.sqlite      created and migrated
    DIR/db/aggregate.sqlite     the aggregate: inventory (with each node manager's URL and GID)
    DIR/xmpp/                   with `--xmpp`: Prosody's configuration, data and accounts
                                (sfa.server.prosody)
    DIR/nodes/<name>/           one node manager each (sfa.nodemanager.nodedir); its slivers in
                                DIR/nodes/<name>/slivers/<login>/

(All but sfa.toml live under [server] data_dir, which is DIR itself by default.)
"""

from __future__ import annotations

import ipaddress
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from sfa.aggregate.inventory import generate_nodes
from sfa.aggregate.nm_book import NodeManagerBook, NodeManagerEntry
from sfa.aggregate.store import AggregateStore
from sfa.deploy.config import (
    AggregateConfig,
    AuthorityConfig,
    NodesConfig,
    RegistrySection,
    ServerConfig,
    SfaConfig,
    SliceMgrConfig,
    XmppConfig,
    load_config,
    render_config,
    service_url,
)
from sfa.deploy.xmpp import free_port, init_deployment_xmpp
from sfa.errors import AlreadyExists, BadArgs
from sfa.nodemanager.nodedir import create_node_dir
from sfa.storage.registry_schema import open_registry_database
from sfa.trust.gid import GID
from sfa.trust.hierarchy import Authority, AuthorityStore
from sfa.trust.keys import generate_private_key, load_private_key, save_private_key
from sfa.trust.roots import TrustedRoots
from sfa.xrn import hrn_split, validate_hrn

# service name -> the authority service in its URN
SERVICE_TYPES = {"registry": "sa", "aggregate": "am", "slicemgr": "sm"}
SERVICE_LIFETIME = timedelta(days=365)


@dataclass(frozen=True)
class ServiceIdentity:
    """A service's GID (with its chain) and private key."""

    gid: GID
    key: RSAPrivateKey


@dataclass(frozen=True)
class Deployment:
    """A deployment directory and its parsed configuration; paths derive from both."""

    directory: Path
    config: SfaConfig

    @classmethod
    def load(cls, directory: Path | str) -> Deployment:
        """Read DIR/sfa.toml (ConfigError when missing or invalid)."""
        path = Path(directory).resolve()
        return cls(directory=path, config=load_config(path))

    @property
    def data_dir(self) -> Path:
        return self.config.data_path

    @property
    def authorities_dir(self) -> Path:
        return self.data_dir / "authorities"

    @property
    def trusted_roots_dir(self) -> Path:
        return self.data_dir / "trusted_roots"

    @property
    def services_dir(self) -> Path:
        return self.data_dir / "services"

    @property
    def db_dir(self) -> Path:
        return self.data_dir / "db"

    @property
    def nodes_dir(self) -> Path:
        return self.data_dir / "nodes"

    @property
    def xmpp_dir(self) -> Path:
        return self.data_dir / "xmpp"

    @property
    def registry_db(self) -> Path:
        return self.db_dir / "registry.sqlite"

    @property
    def authority_hrn(self) -> str:
        return self.config.authority.hrn

    def authority_store(self) -> AuthorityStore:
        return AuthorityStore(self.authorities_dir)

    def root_authority(self) -> Authority:
        return self.authority_store().get(self.authority_hrn)

    def trusted_roots(self) -> TrustedRoots:
        return TrustedRoots(self.trusted_roots_dir)

    def service_identity(self, service: str) -> ServiceIdentity:
        """The GID and key of `registry`, `aggregate` or `slicemgr`."""
        gid_path = self.services_dir / f"{service}.gid"
        key_path = self.services_dir / f"{service}.pkey"
        try:
            gid = GID.from_pem(gid_path.read_bytes())
            key = load_private_key(key_path.read_bytes())
        except FileNotFoundError as exc:
            raise BadArgs(
                f"the deployment {self.directory} lacks {exc.filename}; was it made by `sfa init`?"
            ) from None
        return ServiceIdentity(gid, key)


def init_deployment(
    directory: Path | str,
    *,
    authority: str,
    host: str = "127.0.0.1",
    registry_port: int = 12345,
    am_port: int = 12346,
    sm_port: int | None = None,
    nm_base_port: int = 12400,
    nodes: int = 0,
    nm_backend: str = "directory",
    xmpp_port: int | None = None,
) -> Deployment:
    """Create a deployment in `directory` (absent or empty): config, root, services, database.
    A slice manager port enables the slice manager; without one it stays off (port 12347).
    An XMPP port (0 = a free one now) configures Prosody for OMF experiment control."""
    path = Path(directory).resolve()
    _refuse_non_empty(path)
    validate_hrn(authority)
    if len(hrn_split(authority)) != 1:
        raise BadArgs(f"the deployment's authority must be a top-level HRN, not {authority!r}")
    slicemgr = SliceMgrConfig() if sm_port is None else SliceMgrConfig(enabled=True, port=sm_port)
    _check_ports(registry_port, am_port, slicemgr.port, nm_base_port,
                 *(() if xmpp_port is None else (xmpp_port,)))
    if nodes < 0:
        raise BadArgs(f"--nodes must be 0 or more, got {nodes}")
    service_names(host)  # refuse a bad host before anything is written
    config = SfaConfig(
        base_dir=path,
        authority=AuthorityConfig(hrn=authority),
        server=ServerConfig(host=host, data_dir="."),
        registry=RegistrySection(port=registry_port),
        aggregate=AggregateConfig(port=am_port, driver="nodemanager"),
        slicemgr=slicemgr,
        nodes=NodesConfig(count=nodes, base_port=nm_base_port, backend=nm_backend),
        xmpp=XmppConfig() if xmpp_port is None else XmppConfig(
            enabled=True, host=host, port=xmpp_port or free_port(host)),
    )
    path.mkdir(parents=True, exist_ok=True)
    deployment = Deployment(path, config)
    for sub in ("trusted_roots", "services", "db"):
        (deployment.data_dir / sub).mkdir(mode=0o700, exist_ok=True)
    # slivers running under their own uids must be able to reach their homes below
    (deployment.data_dir / "nodes").mkdir(mode=0o711, exist_ok=True)
    root = deployment.authority_store().create_root(authority)
    deployment.trusted_roots().write(root.gid, f"{authority}.gid")
    for service, kind in SERVICE_TYPES.items():
        _write_service(deployment, service, kind, root, host)
    open_registry_database(deployment.registry_db).close()
    if nodes:
        create_nodes(deployment, nodes)
    if config.xmpp.enabled:
        init_deployment_xmpp(deployment, root, nodes)
    (path / "sfa.toml").write_text(render_config(config), encoding="utf-8")
    return deployment


def node_port(base_port: int, index: int) -> int:
    """The port of node `index` (1-based): base_port + index - 1, or 0 (any) when base is 0."""
    return base_port + index - 1 if base_port else 0


def create_nodes(deployment: Deployment, count: int) -> None:
    """Node directories DIR/nodes/node1..N (keys made in parallel processes) and their
    inventory entries, with node manager URLs, in the aggregate's database."""
    config = deployment.config
    host = config.server.host
    args = [(str(deployment.authorities_dir), deployment.authority_hrn, str(deployment.nodes_dir),
             str(deployment.trusted_roots_dir), host, node_port(config.nodes.base_port, i), i,
             config.nodes.backend)
            for i in range(1, count + 1)]
    if count >= 8:
        workers = min(os.cpu_count() or 1, 8)
        with ProcessPoolExecutor(workers) as pool:
            made = list(pool.map(_create_node, args, chunksize=max(1, count // (workers * 4))))
    else:
        made = [_create_node(a) for a in args]
    nodes = [replace(node, hostname=host)
             for node in generate_nodes(deployment.authority_hrn, count)]
    store = AggregateStore(deployment.db_dir / "aggregate.sqlite")
    try:
        store.upsert_nodes(nodes)
        NodeManagerBook(store.database).set_managers(
            NodeManagerEntry(urn, service_url(host, port), gid) for urn, port, gid in made)
    finally:
        store.close()


def _create_node(args: tuple[str, str, str, str, str, int, int, str]) -> tuple[str, int, str]:
    """One node directory (runs in a worker process): (URN, port, GID PEM)."""
    authorities, authority_hrn, nodes_dir, roots, host, port, index, backend = args
    authority = AuthorityStore(Path(authorities)).get(authority_hrn)
    nodedir = Path(nodes_dir) / f"node{index}"
    node = create_node_dir(nodedir, authority=authority, hrn=f"{authority_hrn}.node{index}",
                           hostname=host, port=port, trusted_roots=Path(roots),
                           backend=backend)
    return node.urn, port, (nodedir / "node.gid").read_text()


def node_dirs(deployment: Deployment) -> list[Path]:
    """The deployment's node directories, in node order (node1, node2, ...)."""
    if not deployment.nodes_dir.is_dir():
        return []
    found = [d for d in deployment.nodes_dir.iterdir() if (d / "node.toml").is_file()]
    return sorted(found, key=lambda d: (len(d.name), d.name))


def _refuse_non_empty(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise AlreadyExists(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        raise AlreadyExists(f"{path} is not empty; choose a new or empty directory")


def _check_ports(*ports: int) -> None:
    for port in ports:
        if not 0 <= port <= 65535:
            raise BadArgs(f"port {port} is outside 0..65535 (0 = any free port)")


def service_names(host: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, IP addresses) a service certificate for `host` carries; loopback gets both."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not host or len(host) > 253 or any(c in host for c in "/\\ \0\n:@"):
            raise BadArgs(f"not a host name or IP address: {host[:80]!r}") from None
        if host.lower() == "localhost":
            return ("localhost",), ("127.0.0.1",)
        return (host.lower(),), ()
    if address.is_loopback:
        return ("localhost",), (str(address),)
    return (), (str(address),)


def _write_service(
    deployment: Deployment, service: str, kind: str, root: Authority, host: str
) -> None:
    key = generate_private_key()
    gid, _ = root.issue_service_gid(kind, host, key.public_key(), lifetime=SERVICE_LIFETIME,
                                    names=service_names(host))
    save_private_key(deployment.services_dir / f"{service}.pkey", key)
    (deployment.services_dir / f"{service}.gid").write_text(gid.to_pem(include_chain=True))
