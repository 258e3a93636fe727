"""The registry's record book: validated, transactional changes to records and the GIDs they
need. No credentials here — `service.Registry` (callers) and `admin.RegistryAdmin`
(operators) decide who may; this module decides what is valid.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.errors import (
    AlreadyExists,
    BadArgs,
    Forbidden,
    MissingArgs,
    Refused,
    SearchFailed,
)
from sfa.registry.records import (
    AuthorityRecord,
    Record,
    SliceRecord,
    UserRecord,
    record_class,
)
from sfa.registry.repository import RecordRepository
from sfa.registry.settings import RegistryConfig
from sfa.timeutil import as_utc, format_rfc3339, utcnow
from sfa.trust.gid import GID
from sfa.trust.hierarchy import GID_FILE, Authority, AuthorityStore
from sfa.trust.keys import load_public_key, public_key_to_openssh, public_keys_equal
from sfa.xrn import (
    Xrn,
    hrn_authority,
    hrn_join,
    hrn_leaf,
    hrn_split,
    is_authority_for,
    same_name,
    validate_slice_name,
    validate_user_name,
)

SliverCheck = Callable[[str], bool]
# Revokes a removed record's GID key for the whole deployment (TrustedRoots.revoke).
Revoker = Callable[[GID], None]


def no_slivers(_slice_urn: str) -> bool:
    """The default sliver check: this registry knows of no aggregate."""
    return False


class RecordBook:
    """Registers, updates and removes records, issuing GIDs from the authority hierarchy."""

    def __init__(
        self,
        repository: RecordRepository,
        authorities: AuthorityStore,
        root_hrn: str,
        config: RegistryConfig,
        slice_has_slivers: SliverCheck = no_slivers,
        *,
        revoke: Revoker | None = None,
    ) -> None:
        self.repository = repository
        self.revoke = revoke
        self.authorities = authorities
        self.root_hrn = root_hrn
        self.config = config
        self.slice_has_slivers = slice_has_slivers
        self._signers: dict[str, Authority] = {}
        self._signers_lock = threading.Lock()

    # --- lookups -------------------------------------------------------------------------
    def ensure_root_record(self) -> AuthorityRecord:
        """The root authority's record, created from the hierarchy on first use."""
        found = self.repository.get(self.root_hrn, "authority")
        if isinstance(found, AuthorityRecord):
            return found
        root = self.authorities.get(self.root_hrn)
        record = AuthorityRecord(hrn=self.root_hrn, gid=root.gid.to_pem())
        try:
            inserted = self.repository.insert(record)
        except AlreadyExists:  # another process created it meanwhile
            return self.ensure_root_record()
        assert isinstance(inserted, AuthorityRecord)
        return inserted

    def get(self, xrn: Xrn) -> Record:
        """The record named by `xrn`; SearchFailed when there is none."""
        record = self.repository.get(xrn.hrn, xrn.type)
        if record is None:
            raise SearchFailed(f"no {xrn.type} record {xrn.hrn} in this registry")
        return record

    def find(self, hrn: str, type: str | None = None) -> list[Record]:
        """Records named `hrn` (of `type` when given); SearchFailed when there is none."""
        if type is not None:
            return [self.get(Xrn.from_hrn(hrn, type))]
        found = self.repository.find(hrn)
        if not found:
            raise SearchFailed(f"no record named {hrn} in this registry")
        return found

    def children(self, authority_hrn: str, *, recursive: bool = False) -> list[Record]:
        """The records under an authority of ours."""
        self.get(Xrn.from_hrn(authority_hrn, "authority"))
        return self.repository.children(authority_hrn, recursive=recursive)

    # --- register ------------------------------------------------------------------------
    def register(self, record: Record) -> Record:
        """Store a new record with a fresh GID; returns it (gid filled in)."""
        record = replace(record, gid=None, id=None)
        self._check_new_name(record)
        if self.repository.get(record.hrn, record.type) is not None:
            raise AlreadyExists(f"{record.type} {record.hrn} is already registered")
        if isinstance(record, AuthorityRecord):
            return self._register_authority(record)
        record.gid = self._issue_gid(record).to_pem()
        return self.repository.insert(record)

    def _check_new_name(self, record: Record) -> None:
        if not is_authority_for(self.root_hrn, record.hrn) or same_name(record.hrn, self.root_hrn):
            raise BadArgs(f"{record.hrn} is not beneath this registry's authority {self.root_hrn}")
        leaf = hrn_leaf(record.hrn)
        if isinstance(record, UserRecord):
            validate_user_name(leaf)
        elif isinstance(record, SliceRecord):
            validate_slice_name(leaf)
        parent = self.repository.get(record.authority, "authority")
        if parent is None:
            raise SearchFailed(
                f"no authority {record.authority} in this registry: register it before {record.hrn}"
            )
        if isinstance(record, UserRecord):
            record.keys = normalize_keys(record.keys)
        if isinstance(record, SliceRecord):
            record.expires = self.slice_expiry(record.expires)

    def _check_keys_are_own(self, hrn: str, keys: list[str]) -> None:
        """A public key identifies one user. The registry cannot ask for proof that the caller
        holds the private key (no client would answer), so it refuses another user's key: with
        it, this record's GID would let that user act as this one."""
        for key in keys:
            others = [h for h in self.repository.key_holders(key) if not same_name(h, hrn)]
            if others:
                raise AlreadyExists(
                    f"this public key is already registered to {others[0]}: give a key of "
                    f"{hrn}'s own (`ssh-keygen -t rsa -b 3072` makes one)"
                )

    def _first_key(self, keys: list[str]) -> rsa.RSAPublicKey:
        if not keys:
            raise MissingArgs(
                "a user needs a public key (reg-keys): the registry never makes a user's "
                "private key"
            )
        return load_public_key(keys[0])

    def slice_expiry(self, requested: datetime | None, now: datetime | None = None) -> datetime:
        """The slice expiry to store: default lifetime when none, capped at the maximum."""
        now = now or utcnow()
        if requested is None:
            return (now + self.config.slice_lifetime).replace(microsecond=0)
        requested = as_utc(requested)
        if requested <= now:
            raise BadArgs(
                f"slice expiry {format_rfc3339(requested)} is in the past; give a future time"
            )
        return min(requested, now + self.config.max_slice_lifetime).replace(microsecond=0)

    def _issuer(self, hrn: str) -> Authority:
        return self.signer_for(hrn_authority(hrn))

    def signer_for(self, hrn: str) -> Authority:
        """The nearest authority at or above `hrn`, its key loaded once and kept (loading an
        RSA key from disk costs far more than signing with it)."""
        parts = hrn_split(hrn)
        for count in range(len(parts), 0, -1):
            candidate = hrn_join(parts[:count])
            with self._signers_lock:
                cached = self._signers.get(candidate)
            if cached is not None:
                return cached
            if (self.authorities.directory_for(candidate) / GID_FILE).is_file():
                authority = self.authorities.get(candidate)
                with self._signers_lock:
                    self._signers[candidate] = authority
                return authority
        raise SearchFailed(f"no authority of this registry is authority for {hrn}")

    def _issue_gid(self, record: Record, *, uuid: str | None = None) -> GID:
        """A GID for a user (its first key), slice or node (a fresh key nobody keeps)."""
        issuer = self._issuer(record.hrn)
        if isinstance(record, UserRecord):
            public_key = self._first_key(record.keys)
            gid, _ = issuer.issue_gid(
                record.hrn, "user", public_key, email=record.email, uuid=uuid
            )
            return gid
        lifetime = self.config.max_slice_lifetime if isinstance(record, SliceRecord) else None
        gid, _discarded_key = issuer.issue_gid(
            record.hrn, record.type, lifetime=lifetime, uuid=uuid
        )
        return gid

    def _register_authority(self, record: AuthorityRecord) -> Record:
        directory = self.authorities.directory_for(record.hrn)
        if directory.exists():
            raise AlreadyExists(
                f"the key directory of {record.hrn} already exists ({directory}); an operator "
                "must remove it first"
            )
        authority = self.authorities.create_sub(record.hrn)
        record.gid = authority.gid.to_pem()
        try:
            return self.repository.insert(record)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise

    # --- update --------------------------------------------------------------------------
    def update(self, record: Record, changes: dict[str, Any]) -> Record:
        """Apply writable-field changes; a user's new first key or a slice's longer life
        re-issues its GID (same UUID)."""
        unknown = set(changes) - record_class(record.type).WRITABLE
        if unknown:
            raise BadArgs(f"cannot change {', '.join(sorted(unknown))} of a {record.type}")
        changes = dict(changes)
        updated = replace(record, **changes)
        if isinstance(updated, UserRecord) and "keys" in changes:
            changes["keys"] = updated.keys = normalize_keys(changes["keys"])
            self._check_keys_are_own(record.hrn, updated.keys)
            self._rekey_user(record, updated, changes)
        if isinstance(updated, SliceRecord) and "expires" in changes:
            changes["expires"] = updated.expires = self.slice_expiry(changes["expires"])
            self._extend_slice_gid(record, updated, changes)
        self.repository.update(record, changes)
        return self.get(Xrn.from_hrn(record.hrn, record.type))

    def _rekey_user(self, old: Record, new: UserRecord, changes: dict[str, Any]) -> None:
        first = self._first_key(new.keys)
        current = GID.from_pem(old.gid) if old.gid else None
        if current is None or not public_keys_equal(current.public_key, first):
            uuid = current.uuid if current else None
            changes["gid"] = self._issue_gid(new, uuid=uuid).to_pem()

    def _extend_slice_gid(self, old: Record, new: SliceRecord, changes: dict[str, Any]) -> None:
        current = GID.from_pem(old.gid) if old.gid else None
        if current is None or (new.expires is not None and new.expires > current.not_after):
            changes["gid"] = self._issue_gid(new, uuid=current.uuid if current else None).to_pem()

    def gid_for_key(self, record: Record, public_key: rsa.RSAPublicKey) -> GID:
        """A leaf GID for an existing record with a given public key (CreateGid); not stored.
        Never an authority's: CA certificates come only from operators (`sfa admin`)."""
        if isinstance(record, AuthorityRecord):
            raise Forbidden(
                f"{record.hrn} is an authority: authority (CA) certificates are issued only by "
                "its operators (sfa admin), never over the API"
            )
        issuer = self._issuer(record.hrn)
        current = GID.from_pem(record.gid) if record.gid else None
        gid, _ = issuer.issue_gid(
            record.hrn, record.type, public_key,
            email=getattr(record, "email", None), uuid=current.uuid if current else None,
        )
        return gid

    # --- remove --------------------------------------------------------------------------
    def remove(self, record: Record, *, force: bool = False) -> None:
        """Delete a record (its keys and memberships go with it). A user's or authority's GID
        key is revoked first: what it signed or was given stops working everywhere."""
        if isinstance(record, AuthorityRecord):
            self._check_authority_removable(record)
        if isinstance(record, SliceRecord) and not force and self.slice_has_slivers(record.urn):
            raise Refused(
                f"slice {record.hrn} still has slivers: delete them at the aggregates first, "
                "or remove with force"
            )
        if isinstance(record, UserRecord | AuthorityRecord) and record.gid and self.revoke:
            self.revoke(GID.from_pem(record.gid))
        self.repository.delete(record)
        if isinstance(record, AuthorityRecord):
            with self._signers_lock:
                self._signers.pop(record.hrn, None)
            shutil.rmtree(self.authorities.directory_for(record.hrn), ignore_errors=True)

    def _check_authority_removable(self, record: AuthorityRecord) -> None:
        if same_name(record.hrn, self.root_hrn):
            raise Refused(f"{record.hrn} is this registry's root authority; it cannot be removed")
        children = self.repository.children(record.hrn)
        if children:
            raise Refused(
                f"authority {record.hrn} still holds {len(children)} record(s); remove them first"
            )



def normalize_keys(keys: list[str]) -> list[str]:
    """Public keys as `ssh-rsa ...` lines (what slivers' authorized_keys need), duplicates
    dropped; MissingArgs when there is none, BadArgs when one is not an RSA public key."""
    if not keys:
        raise MissingArgs(
            "a user needs a public key (reg-keys): the registry never makes a user's private key"
        )
    lines = [public_key_to_openssh(load_public_key(key)) for key in keys]
    return list(dict.fromkeys(lines))
