"""The operator's side of the registry (`sfa admin DIR ...`): the same record book, no
credentials, every validation. It may run in another process while the server runs; both
use the same SQLite file, so changes take effect at the server's next call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.errors import BadArgs
from sfa.registry.book import RecordBook, Revoker, SliverCheck, no_slivers
from sfa.registry.records import (
    AuthorityRecord,
    NodeRecord,
    Record,
    SliceRecord,
    UserRecord,
)
from sfa.registry.repository import RecordRepository
from sfa.registry.settings import RegistryConfig
from sfa.storage.records import RecordStore
from sfa.storage.registry_schema import open_registry_database
from sfa.trust.hierarchy import AuthorityStore
from sfa.trust.keys import generate_private_key, public_key_to_openssh
from sfa.xrn import Xrn, validate_hrn


@dataclass(frozen=True)
class NewUser:
    """A user the operator added; `private_key` only when the registry made it."""

    record: UserRecord
    private_key: rsa.RSAPrivateKey | None


class RegistryAdmin:
    """Operator actions over the registry's records, bypassing credentials, not validation."""

    def __init__(
        self,
        database_path: Path | str,
        authorities: AuthorityStore,
        root_hrn: str,
        *,
        config: RegistryConfig | None = None,
        slice_has_slivers: SliverCheck = no_slivers,
        revoke: Revoker | None = None,
    ) -> None:
        repository = RecordRepository(RecordStore(open_registry_database(database_path)))
        self.book = RecordBook(
            repository, authorities, validate_hrn(root_hrn), config or RegistryConfig(),
            slice_has_slivers, revoke=revoke,
        )
        self.book.ensure_root_record()

    @property
    def repository(self) -> RecordRepository:
        return self.book.repository

    def close(self) -> None:
        self.repository.database.close()

    def admin_add_user(
        self, hrn: str, email: str | None = None, pubkey: str | None = None,
        pi_of: Iterable[str] = (),
    ) -> NewUser:
        """Register a user with `pubkey` (PEM or ssh-rsa), or with a key made here and
        returned once; optionally make them PI of authorities."""
        private_key = None
        if pubkey is None:
            private_key = generate_private_key()
            pubkey = public_key_to_openssh(private_key)
        record = UserRecord(hrn=validate_hrn(hrn), email=email, keys=[pubkey])
        with self.repository.database.transaction():
            stored = self.book.register(record)
            for authority in [self._authority(a) for a in pi_of]:
                self.repository.update(authority, {"pis": [*authority.pis, stored.hrn]})
        user = self.book.get(Xrn.from_hrn(stored.hrn, "user"))
        assert isinstance(user, UserRecord)
        return NewUser(record=user, private_key=private_key)

    def admin_add_authority(
        self, hrn: str, pis: Iterable[str] = (), name: str | None = None
    ) -> AuthorityRecord:
        """Register a sub-authority (its key goes to the hierarchy), with PIs."""
        record = AuthorityRecord(hrn=validate_hrn(hrn), pis=list(pis), name=name)
        stored = self.book.register(record)
        assert isinstance(stored, AuthorityRecord)
        return stored

    def admin_add_slice(
        self, hrn: str, researchers: Iterable[str], expires: datetime | None = None,
        description: str | None = None,
    ) -> SliceRecord:
        """Register a slice (default lifetime when no expiry, capped at the maximum)."""
        members = list(researchers)
        if not members:
            raise BadArgs("a slice needs at least one researcher")
        record = SliceRecord(
            hrn=validate_hrn(hrn), researchers=members, expires=expires, description=description
        )
        stored = self.book.register(record)
        assert isinstance(stored, SliceRecord)
        return stored

    def admin_add_node(
        self, hrn: str, hostname: str | None = None, component_manager: str | None = None,
        site: str | None = None,
    ) -> NodeRecord:
        record = NodeRecord(
            hrn=validate_hrn(hrn), hostname=hostname, component_manager=component_manager,
            site=site,
        )
        stored = self.book.register(record)
        assert isinstance(stored, NodeRecord)
        return stored

    def admin_list(
        self, authority_hrn: str | None = None, *, recursive: bool = True
    ) -> list[Record]:
        """Records under an authority (the root by default), recursively by default."""
        return self.book.children(authority_hrn or self.book.root_hrn, recursive=recursive)

    def admin_show(self, hrn: str, type: str | None = None) -> list[Record]:
        """Every record named `hrn` (of `type` when given); SearchFailed when none."""
        return self.book.find(validate_hrn(hrn), type)

    def admin_remove(self, hrn: str, type: str | None = None, *, force: bool = False) -> Record:
        """Remove the one record named `hrn`; BadArgs when the name is ambiguous."""
        found = self.book.find(validate_hrn(hrn), type)
        if len(found) > 1:
            kinds = ", ".join(r.type for r in found)
            raise BadArgs(f"{hrn} names several records ({kinds}): give a type")
        self.book.remove(found[0], force=force)
        return found[0]

    def _authority(self, hrn: str) -> AuthorityRecord:
        record = self.book.get(Xrn.from_hrn(validate_hrn(hrn), "authority"))
        assert isinstance(record, AuthorityRecord)
        return record

