"""The aggregate's OMF duties, transport-free: give an experimenter's EC an XMPP session for a
slice, create and remove its experiment groups (removable only by their owner), keep the
/OMF tree of a slice in step with its slivers.

The caller has already passed the trust door (`VerifiedCall` for the slice); XMPP accounts and
pubsub operations come through small protocols that `sfa.server.omf_aggregate` fills in.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils
from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.errors import BadArgs, Forbidden, SearchFailed
from sfa.omf.config import XmppServer
from sfa.omf.provision import (
    PubsubAdmin,
    create_experiment_groups,
    create_slice_tree,
    remove_slice_tree,
    remove_subtree,
)
from sfa.omf.tree import check_label, ec_account, experiment_node, rc_account, rc_password
from sfa.storage.db import Database, Migration
from sfa.timeutil import format_rfc3339, utcnow
from sfa.trust.keys import public_key_to_pem
from sfa.trust.verify import VerifiedCall
from sfa.xrn import urn_to_hrn

OMF_DB = "omf.sqlite"
MAX_GROUPS = 64


class Accounts(Protocol):
    def create(self, account: str, password: str | None = None) -> str: ...

    def remove(self, account: str) -> None: ...


Run = Callable[[Coroutine[Any, Any, Any]], Any]


def _migrate(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE omf_slices (slice_urn TEXT PRIMARY KEY COLLATE NOCASE, "
               "nodes TEXT NOT NULL)")
    db.execute("CREATE TABLE omf_experiments (slice_urn TEXT NOT NULL COLLATE NOCASE, "
               "experiment TEXT NOT NULL, owner_urn TEXT NOT NULL, created TEXT NOT NULL, "
               "PRIMARY KEY (slice_urn, experiment))")


def _migrate_requests(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE omf_requests (slice_urn TEXT PRIMARY KEY COLLATE NOCASE)")


class OmfBook:
    """DIR/db/omf.sqlite: the slices with an /OMF tree, the slices whose request asked for
    one (`<sfa:omf/>`, made at Provision), and each experiment's owner."""

    def __init__(self, path: Path) -> None:
        self.database = Database(path, [
            Migration(1, "omf slices and experiments", _migrate),
            Migration(2, "slices whose request asked for OMF", _migrate_requests)])

    def set_requested(self, slice_urn: str, requested: bool) -> None:
        with self.database.transaction() as db:
            if requested:
                db.execute("INSERT OR IGNORE INTO omf_requests VALUES (?)", [slice_urn])
            else:
                db.execute("DELETE FROM omf_requests WHERE slice_urn = ?", [slice_urn])

    def requested(self, slice_urn: str) -> bool:
        return bool(list(self.database.db().query(
            "SELECT 1 FROM omf_requests WHERE slice_urn = ?", [slice_urn])))

    def slice_nodes(self, slice_urn: str) -> list[str] | None:
        rows = list(self.database.db().query(
            "SELECT nodes FROM omf_slices WHERE slice_urn = ?", [slice_urn]))
        return rows[0]["nodes"].split() if rows else None

    def slices(self) -> list[str]:
        return [r["slice_urn"] for r in self.database.db().query("SELECT slice_urn FROM "
                                                                  "omf_slices")]

    def set_slice(self, slice_urn: str, nodes: Sequence[str]) -> None:
        with self.database.transaction() as db:
            db.execute("INSERT OR REPLACE INTO omf_slices VALUES (?, ?)",
                       [slice_urn, " ".join(nodes)])

    def drop_slice(self, slice_urn: str) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM omf_slices WHERE slice_urn = ?", [slice_urn])
            db.execute("DELETE FROM omf_requests WHERE slice_urn = ?", [slice_urn])
            db.execute("DELETE FROM omf_experiments WHERE slice_urn = ?", [slice_urn])

    def owner(self, slice_urn: str, experiment: str) -> str | None:
        rows = list(self.database.db().query(
            "SELECT owner_urn FROM omf_experiments WHERE slice_urn = ? AND experiment = ?",
            [slice_urn, experiment]))
        return rows[0]["owner_urn"] if rows else None

    def add_experiment(self, slice_urn: str, experiment: str, owner_urn: str) -> None:
        with self.database.transaction() as db:
            db.execute("INSERT INTO omf_experiments VALUES (?, ?, ?, ?)",
                       [slice_urn, experiment, owner_urn, format_rfc3339(utcnow())])

    def drop_experiment(self, slice_urn: str, experiment: str) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM omf_experiments WHERE slice_urn = ? AND experiment = ?",
                       [slice_urn, experiment])

    def close(self) -> None:
        self.database.close()


@dataclass
class OmfAggregate:
    server: XmppServer
    accounts: Accounts
    admin: PubsubAdmin
    run: Run
    book: OmfBook

    def enable_slice(self, slice_urn: str, node_hrns: Sequence[str],
                     slice_key: rsa.RSAPrivateKey) -> None:
        """The slice's /OMF nodes and one RC account per sliver (password from the slice
        key), recorded so that Delete and expiry remove them."""
        slice_hrn = _slice_hrn(slice_urn)
        for node in node_hrns:
            self.accounts.create(rc_account(slice_hrn, node), rc_password(slice_key, node))
        self.run(create_slice_tree(self.admin, slice_hrn, list(node_hrns),
                                   domain=self.server.domain))
        self.book.set_slice(slice_urn, node_hrns)

    def disable_slice(self, slice_urn: str) -> list[str]:
        """Remove the slice's tree and its RC accounts (nothing to do when it has none)."""
        nodes = self.book.slice_nodes(slice_urn)
        if nodes is None:
            return []
        slice_hrn = _slice_hrn(slice_urn)
        removed = self.run(remove_slice_tree(self.admin, slice_hrn))
        for node in nodes:
            self.accounts.remove(rc_account(slice_hrn, node))
        self.book.drop_slice(slice_urn)
        return list(removed)

    def session(self, call: VerifiedCall, slice_urn: str,
                slice_key: rsa.RSAPrivateKey) -> dict[str, Any]:
        """An XMPP account for the caller's EC on this slice (a fresh password each time),
        allowed to publish on the slice's resource nodes; what the EC needs to verify RCs."""
        nodes = self.book.slice_nodes(slice_urn)
        if nodes is None:
            raise SearchFailed(f"{slice_urn} has no OMF-enabled slivers here")
        slice_hrn = _slice_hrn(slice_urn)
        user_hrn, _ = urn_to_hrn(call.caller_urn)
        account = ec_account(user_hrn, slice_hrn)
        password = self.accounts.create(account)
        jid = self.server.jid(account)
        self.run(create_slice_tree(self.admin, slice_hrn, nodes, domain=self.server.domain,
                                   ec_jids=[jid]))
        return {
            "host": self.server.host, "port": self.server.port, "domain": self.server.domain,
            "pubsub": self.server.pubsub, "account": account, "password": password,
            "slice_hrn": slice_hrn, "nodes": nodes,
            "rc_public_key": public_key_to_pem(slice_key.public_key()).decode(),
        }

    def create_experiment(self, call: VerifiedCall, slice_urn: str, experiment: str,
                          groups: Sequence[str]) -> list[str]:
        """/OMF/<slice>/<experiment>/<group>..., owned by the caller."""
        experiment = check_label(experiment, "experiment id")
        if not groups or len(groups) > MAX_GROUPS:
            raise BadArgs(f"an experiment needs 1 to {MAX_GROUPS} groups")
        names = [check_label(g, "group name") for g in groups]
        if self.book.slice_nodes(slice_urn) is None:
            raise SearchFailed(f"{slice_urn} has no OMF-enabled slivers here")
        owner = self.book.owner(slice_urn, experiment)
        if owner is not None and owner.lower() != call.caller_urn.lower():
            raise Forbidden(f"experiment {experiment} of this slice belongs to {owner}")
        slice_hrn = _slice_hrn(slice_urn)
        user_hrn, _ = urn_to_hrn(call.caller_urn)
        ec = self.server.jid(ec_account(user_hrn, slice_hrn))
        made = self.run(create_experiment_groups(self.admin, slice_hrn, experiment, names, [ec]))
        if owner is None:
            self.book.add_experiment(slice_urn, experiment, call.caller_urn)
        return list(made)

    def delete_experiment(self, call: VerifiedCall, slice_urn: str, experiment: str
                          ) -> list[str]:
        """Remove an experiment's nodes: only its owner may."""
        experiment = check_label(experiment, "experiment id")
        owner = self.book.owner(slice_urn, experiment)
        if owner is None:
            raise SearchFailed(f"no experiment {experiment} in {slice_urn}")
        if owner.lower() != call.caller_urn.lower():
            raise Forbidden(f"experiment {experiment} belongs to {owner}; only it may remove it")
        top = experiment_node(_slice_hrn(slice_urn), experiment)
        removed = self.run(remove_subtree(self.admin, top))
        self.book.drop_experiment(slice_urn, experiment)
        return list(removed)


def _slice_hrn(slice_urn: str) -> str:
    hrn, kind = urn_to_hrn(slice_urn)
    if kind != "slice":
        raise BadArgs(f"not a slice URN: {slice_urn[:120]}")
    return hrn
