"""Helpers for node manager tests: a node directory, tickets signed by the AM, credentials."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.nodemanager.admission import Thresholds
from sfa.nodemanager.dirbackend import DirBackend
from sfa.nodemanager.manager import NodeManager
from sfa.nodemanager.nodedir import NodeConfig, load_node_config, open_node, write_node_config
from sfa.nodemanager.resources import Resources
from sfa.trust.credential import create_credential
from sfa.trust.gid import GID
from sfa.trust.hierarchy import Authority
from sfa.trust.keys import public_key_to_openssh, save_private_key
from sfa.trust.slicekey import seal_slice_key
from sfa.trust.ticket import TicketResources, TicketUser, create_ticket
from tests.nodemanager.conftest import Principal


def make_node_dir(
    nodedir: Path,
    node: Principal,
    root: Authority,
    *,
    capacity: Resources | None = None,
    thresholds: Thresholds | None = None,
    uid_base: int | None = None,
) -> Path:
    """A node data directory for an already issued node GID (keys made once per session);
    the nodes of one parent directory share a host's uid file there."""
    nodedir.mkdir(parents=True, exist_ok=True)
    (nodedir / "node.gid").write_text(node.gid.to_pem())
    save_private_key(nodedir / "node.pkey", node.key)
    roots = nodedir / "trusted_roots"
    roots.mkdir(exist_ok=True)
    (roots / "plc.gid").write_text(root.gid.to_pem())
    config = NodeConfig(
        urn=node.gid.urn, uid_base=uid_base, uid_db=str(nodedir.parent / "uids.db"),
        capacity=capacity or Resources(
            cpu_share=1024, memory_mb=4096, disk_mb=100_000, tasks=8192, bandwidth_kbps=100
        ),
        thresholds=thresholds or Thresholds(),
    )
    write_node_config(nodedir, config)
    return nodedir


def reopen(nodedir: Path, **changes: Any) -> NodeManager:
    """A fresh NodeManager over the same directory (as after a restart)."""
    config = replace(load_node_config(nodedir), **changes)
    return open_node(nodedir, config=config)


@dataclass
class TicketMaker:
    """Signs tickets as the AM for a slice; remembers the slice key pair."""

    am: Principal
    slice_gid: GID
    slice_key: rsa.RSAPrivateKey
    user_keys: tuple[str, ...]

    def ticket(self, node_urn: str, *, sliver: str = "s1", **overrides: Any) -> str:
        fields: dict[str, Any] = {
            "slice_gid": self.slice_gid,
            "node_urn": node_urn,
            "sliver_urn": f"urn:publicid:IDN+plc+sliver+{sliver}",
            "expires": datetime.now(UTC) + timedelta(hours=2),
            "signer_key": self.am.key,
            "signer": self.am.gid,
            "resources": TicketResources(
                cpu_share=32, memory_mb=128, disk_mb=5120, tasks=256, bandwidth_kbps=1
            ),
            "users": (TicketUser("urn:publicid:IDN+plc:princeton+user+alice", self.user_keys),),
            "slice_keypair_public": public_key_to_openssh(self.slice_key),
            "serial": str(uuid.uuid4()),
        }
        fields.update(overrides)
        return create_ticket(**fields)

    def sealed_key(self, node: GID, sliver: str = "s1") -> str:
        return seal_slice_key(
            self.slice_key, node.public_key, f"urn:publicid:IDN+plc+sliver+{sliver}"
        )


def slice_credential(user: Principal, slice_gid: GID, authority: Authority) -> str:
    credential = create_credential(
        owner=user.gid, target=slice_gid, privileges="*",
        expires=datetime.now(UTC) + timedelta(hours=1),
        signer_key=authority.key, signer=authority.gid,
    )
    return credential.xml


def slivers_dir(nm: NodeManager) -> Path:
    """Where the node's DirBackend makes sliver directories."""
    assert isinstance(nm.backend, DirBackend)
    return nm.backend.slivers_dir
