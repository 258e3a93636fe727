"""Fill a fresh deployment for a test: users, authorities with their PIs, slices, and nodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from sfa.aggregate.inventory import generate_nodes
from sfa.aggregate.store import AggregateStore
from sfa.cli.admin import open_admin
from sfa.deploy.layout import Deployment
from sfa.server.am_api import AGGREGATE_DB
from sfa.trust.keys import public_key_to_openssh


def populate(deployment: Deployment, *, users: Mapping[str, RSAPrivateKey],
             authorities: Mapping[str, Sequence[str]] | None = None,
             slices: Mapping[str, Sequence[str]] | None = None) -> None:
    """Register `users` (hrn -> key), then `authorities` (hrn -> PIs), then `slices`
    (hrn -> researchers) through the operator's admin door."""
    admin = open_admin(deployment)
    try:
        for user, key in users.items():
            admin.admin_add_user(user, pubkey=public_key_to_openssh(key))
        for authority, pis in (authorities or {}).items():
            admin.admin_add_authority(authority, pis=list(pis))
        for name, researchers in (slices or {}).items():
            admin.admin_add_slice(name, list(researchers))
    finally:
        admin.close()


def seed_nodes(deployment: Deployment, count: int, *, sites: int, capacity: int) -> None:
    """`count` generated nodes of the deployment's authority in its aggregate's inventory."""
    store = AggregateStore(deployment.db_dir / AGGREGATE_DB)
    try:
        store.upsert_nodes(generate_nodes(deployment.authority_hrn, count, sites=sites,
                                          capacity=capacity))
    finally:
        store.close()
