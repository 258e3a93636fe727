"""The registry API (`spec/registry-api.md`): one method per call, parsed arguments and the
TLS caller's GID in, plain values out, sfa.errors exceptions on refusal.

Every credential check goes through `sfa.trust.verify.authorize` (the one door); this module
only decides which operation and target each call needs and what the caller may see.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.errors import BadArgs, CredentialMismatch, Expired, Forbidden, SearchFailed
from sfa.registry.book import RecordBook, SliverCheck, no_slivers
from sfa.registry.grants import (
    Caller,
    credential_expiry,
    credential_rights,
    may_see_private,
)
from sfa.registry.records import (
    Record,
    SliceRecord,
    parse_wire_fields,
    record_class,
    record_from_wire,
    wire_name,
)
from sfa.registry.referral import Referrals
from sfa.registry.repository import RecordRepository
from sfa.registry.settings import RegistryConfig
from sfa.storage.records import RecordStore
from sfa.storage.registry_schema import open_registry_database
from sfa.timeutil import utcnow
from sfa.trust.credential import Credential, create_credential
from sfa.trust.gid import GID
from sfa.trust.hierarchy import AuthorityStore
from sfa.trust.keys import load_public_key, public_keys_equal
from sfa.trust.trusted_certs import trusted_certificates
from sfa.trust.verify import (
    TrustPolicy,
    VerifiedCall,
    authorize,
    covers,
    verify_caller,
)
from sfa.xrn import Xrn, validate_hrn

Credentials = Sequence[Any] | str | bytes | Mapping[str, Any]


@lru_cache(maxsize=4096)
def stored_gid(pem: str) -> GID:
    """A record's GID, parsed once (records are read on every call; GIDs are immutable)."""
    return GID.from_pem(pem)

TargetMatch = Literal["exact", "subtree", "any"]
Identified = Callable[[str], None]


def _ignore(_urn: str) -> None:
    """The default `identified`: nobody asked who the verified caller is."""
MAX_NAMES = 1000


class Registry:
    """An authority's registry over one SQLite file and its authority hierarchy."""

    def __init__(
        self,
        database_path: Path | str,
        authorities: AuthorityStore,
        policy: TrustPolicy,
        gid: GID,
        key: rsa.RSAPrivateKey,
        *,
        config: RegistryConfig | None = None,
        slice_has_slivers: SliverCheck = no_slivers,
    ) -> None:
        self.policy = policy
        self.gid = gid
        self.key = key
        self.config = config or RegistryConfig()
        self.hrn = gid.hrn
        self.referrals = Referrals(self.hrn, self.config.peers)
        repository = RecordRepository(RecordStore(open_registry_database(database_path)))
        revoke = policy.roots.revoke if policy.roots.directory is not None else None
        self.book = RecordBook(repository, authorities, self.hrn, self.config, slice_has_slivers,
                               revoke=revoke)
        self.book.ensure_root_record()

    def close(self) -> None:
        self.book.repository.database.close()

    # --- helpers -------------------------------------------------------------------------
    def _authorize(  # noqa: PLR0917
        self, creds: Credentials, caller: GID, operation: str,
        targets: Sequence[str] = (), match: TargetMatch = "any", bootstrap: bool = False,
    ) -> VerifiedCall:
        return authorize(
            _credential_list(creds), caller, self.policy,
            operation=operation, targets=targets, target_match=match,
            allow_self_signed_caller=bootstrap,
        )

    def _caller(self, call: VerifiedCall) -> Caller:
        """The caller and its record — only when the record's current key is the caller's
        (a GID left over from before a re-key gets no PI or researcher standing)."""
        record = self.book.repository.get_by_urn(call.caller_urn)
        if record is not None and record.gid:
            current = stored_gid(record.gid)
            if not public_keys_equal(current.public_key, call.caller.public_key):
                record = None
        return Caller(urn=call.caller_urn, record=record)

    def _check_standing(self, call: VerifiedCall, target_urn: str) -> None:
        """Rights over `target_urn` that come from authority credentials hold only while the
        credential's first owner is, in the database now, a PI of that authority (or the
        authority itself): a PI taken off reg-pis loses them before the credential expires."""
        covering = [c for c in call.credentials if covers(c, target_urn, "subtree")]
        if any(c.target_type != "authority" for c in covering):
            return  # the record's own or its slice's credential: no authority standing needed
        for credential in covering:
            owner = _first_owner(credential)
            record = self.book.repository.get_by_urn(owner.owner_urn)
            if Caller(urn=owner.owner_urn, record=record).is_pi_over(credential.target_gid.hrn):
                return
        raise Forbidden(
            f"the authority credential's owner is no longer a PI of the authority it names; "
            f"ask a current PI of {target_urn}'s authority"
        )

    def _our_name(self, name: Any, kind: str | None) -> Xrn:
        """The Xrn of a name in our tree (an HRN needs `kind`); SearchFailed / referral else."""
        xrn = _parse_name(name, kind)
        self.referrals.check_ours(xrn.hrn)
        return xrn

    def _our_record(self, name: Any, kind: str | None) -> Record:
        """The one record a name (URN, or HRN with or without a type) designates."""
        kind = kind or None
        if not _is_urn(name) and kind is None:
            hrn, _ = _hrn_and_type(name)
            self.referrals.check_ours(hrn)
            found = self.book.find(hrn)
            if len(found) > 1:
                kinds = ", ".join(r.type for r in found)
                raise BadArgs(f"{hrn} names several records ({kinds}): give a type or a URN")
            return found[0]
        return self.book.get(self._our_name(name, kind))

    def _wire(self, record: Record, caller: Caller) -> dict[str, Any]:
        return record.to_wire(include_private=may_see_private(caller, record))

    # --- the API -------------------------------------------------------------------------
    def GetVersion(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Who this registry is and which peers it refers to."""
        return {
            "interface": "registry", "hrn": self.hrn, "urn": self.gid.urn, "sfa": 3,
            "peers": dict(self.config.peers), "code_tag": self.config.code_tag,
        }

    def GetSelfCredential(
        self, caller: GID, cert: str | None, xrn: str, type: str | None,
        *, identified: Identified = _ignore,
    ) -> str:
        """Bootstrap: a credential owned by and targeting the record whose GID key is the
        caller's (the TLS certificate may be self-signed); `identified(urn)` learns that
        record, the caller the key proves (not the URN a self-signed certificate claims)."""
        verify_caller(caller, self.policy, allow_self_signed=True)
        if cert:
            claimed = load_public_key(cert)
            if not public_keys_equal(claimed, caller.public_key):
                raise CredentialMismatch("the certificate given is not the one used for TLS")
        record = self._our_record(xrn, type)
        if not record.gid:
            raise SearchFailed(f"{record.hrn} has no GID yet; ask its authority to issue one")
        record_gid = stored_gid(record.gid)
        if not public_keys_equal(record_gid.public_key, caller.public_key):
            raise CredentialMismatch(
                f"your TLS key is not the key registered for {record.hrn}: connect with the "
                "private key whose public half is in the record"
            )
        identified(record.urn)
        rights = credential_rights(Caller(urn=record.urn, record=record), record, self.hrn)
        return self._issue(record_gid, record, rights)

    def GetCredential(self, caller: GID, creds: Credentials, xrn: str, type: str | None) -> str:
        """A credential owned by the caller over `xrn`, with the rights `trust.md` grants."""
        call = self._authorize(creds, caller, "getcredential")
        target = self._our_record(xrn, type)
        rights = credential_rights(self._caller(call), target, self.hrn)
        return self._issue(call.caller, target, rights)

    def _issue(self, owner: GID, target: Record, rights: Sequence[str]) -> str:
        assert target.gid is not None
        target_gid = stored_gid(target.gid)
        now = utcnow()
        if isinstance(target, SliceRecord) and target.expires and target.expires <= now:
            raise Expired(f"slice {target.hrn} has expired; a PI may extend it with Update")
        expires = credential_expiry(
            now, self.config.credential_lifetime, target, owner.not_after, target_gid.not_after
        )
        signer = self.book.signer_for(target.hrn)
        credential = create_credential(
            owner=owner, target=target_gid, privileges=list(rights), expires=expires,
            signer_key=signer.key, signer=signer.gid, delegatable=True,
        )
        return credential.xml

    def Resolve(
        self, caller: GID, xrns: Any, creds: Credentials,
        options: Mapping[str, Any] | None = None, *, identified: Identified = _ignore,
    ) -> list[dict[str, Any]]:
        """Records for names (all types of an HRN); peers' names come back as referral stubs.
        `identified(urn)` learns the verified caller."""
        # sfi resolves its own GID while still on its self-signed bootstrap certificate
        # (`registry-api.md`, "Bootstrap"): the door accepts it for a credential it owns.
        call = self._authorize(creds, caller, "resolve", bootstrap=True)
        identified(call.caller_urn)
        who = self._caller(call)
        details = bool((options or {}).get("details", True))
        results: list[dict[str, Any]] = []
        for name in _name_list(xrns):
            xrn_hrn, type = _hrn_and_type(name)
            referral = self.referrals.referral_for(xrn_hrn)
            if referral is not None:
                results.append(referral.stub())
                continue
            self.referrals.check_ours(xrn_hrn)
            for record in self.book.find(xrn_hrn, type):
                wire = self._wire(record, who)
                results.append(wire if details else _summary(wire))
        return results

    def List(
        self, caller: GID, xrn: str, creds: Credentials,
        options: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Records directly (or, with `recursive`, anywhere) under an authority."""
        call = self._authorize(creds, caller, "list")
        authority = self._our_name(xrn, "authority")
        who = self._caller(call)
        recursive = bool((options or {}).get("recursive", False))
        return [
            self._wire(r, who) for r in self.book.children(authority.hrn, recursive=recursive)
        ]

    def Register(self, caller: GID, record: Mapping[str, Any], creds: Credentials) -> str:
        """Register a record under an authority the credential covers; returns its GID."""
        new = record_from_wire(record)
        self.referrals.check_ours(new.hrn)
        parent = Xrn.from_hrn(new.authority, "authority") if new.authority else None
        if parent is None:
            raise BadArgs(f"{new.hrn} is a top-level name; only an operator creates roots")
        call = self._authorize(creds, caller, "register", [parent.urn], "subtree")
        self._check_standing(call, parent.urn)
        stored = self.book.register(new)
        assert stored.gid is not None
        return stored.gid

    def Update(self, caller: GID, record: Mapping[str, Any], creds: Credentials) -> int:
        """Change a record's writable fields; a user's new first key re-issues the GID. A `gid`
        field equal to the stored GID is ignored (clients send back what Resolve gave)."""
        xrn = wire_name(record)
        self.referrals.check_ours(xrn.hrn)
        call = self._authorize(creds, caller, "update", [xrn.urn], "subtree")
        self._check_standing(call, xrn.urn)
        stored = self.book.get(xrn)
        self.book.update(stored, parse_wire_fields(record, xrn.type, stored_gid=stored.gid))
        return 1

    def Remove(
        self, caller: GID, xrn: str, creds: Credentials, type: str | None = None,
        *, force: bool = False,
    ) -> int:
        """Remove a record; slices with live slivers only with `force`."""
        record = self._our_record(xrn, type)
        call = self._authorize(creds, caller, "remove", [record.urn], "subtree")
        self._check_standing(call, record.urn)
        self.book.remove(record, force=force)
        return 1

    def CreateGid(self, caller: GID, creds: Credentials, xrn: str, cert: str) -> str:
        """A leaf GID for a user, slice or node of ours with the public key of `cert` (not
        stored); never an authority's."""
        record = self._our_record(xrn, None)
        call = self._authorize(creds, caller, "update", [record.urn], "subtree")
        self._check_standing(call, record.urn)
        return self.book.gid_for_key(record, load_public_key(cert)).to_pem()

    def GetGids(self, caller: GID, xrns: Any, creds: Credentials) -> list[dict[str, Any]]:
        """`[{hrn, type, gid}]` for names of ours."""
        self._authorize(creds, caller, "getgids")
        results = []
        for name in _name_list(xrns):
            xrn_hrn, type = _hrn_and_type(name)
            self.referrals.check_ours(xrn_hrn)
            for record in self.book.find(xrn_hrn, type):
                results.append({"hrn": record.hrn, "type": record.type, "gid": record.gid})
        return results

    def get_trusted_certs(self, caller: GID, cred: Any = None) -> list[str]:
        """Our own GID without a credential; every trusted root with one."""
        return trusted_certificates(self.gid, self.policy, caller, cred)


def _first_owner(credential: Credential) -> Credential:
    """The credential a delegation chain starts from (its owner got it from the registry)."""
    while credential.parent is not None:
        credential = credential.parent
    return credential


def _credential_list(creds: Credentials) -> list[Any]:
    if isinstance(creds, str | bytes | Mapping):
        return [creds]
    if not isinstance(creds, Sequence):
        raise BadArgs(f"credentials must be a list, got {type(creds).__name__}")
    return list(creds)


def _name_list(xrns: Any) -> list[str]:
    names = [xrns] if isinstance(xrns, str) else xrns
    if not isinstance(names, list | tuple) or not names:
        raise BadArgs("give a name (HRN or URN) or a non-empty list of names")
    if len(names) > MAX_NAMES:
        raise BadArgs(f"at most {MAX_NAMES} names per call")
    if not all(isinstance(n, str) for n in names):
        raise BadArgs("every name must be a string (HRN or URN)")
    return list(names)


def _is_urn(name: Any) -> bool:
    return isinstance(name, str) and name.lower().startswith("urn:")


def _parse_name(name: Any, kind: str | None) -> Xrn:
    if not isinstance(name, str):
        raise BadArgs(f"a name must be a string (HRN or URN), got {type(name).__name__}")
    if kind is not None:
        record_class(kind)
    xrn = Xrn.parse(name, kind)
    record_class(xrn.type)
    return xrn


def _hrn_and_type(name: Any) -> tuple[str, str | None]:
    """(hrn, type or None): a URN fixes the type, an HRN means every type."""
    if _is_urn(name):
        xrn = _parse_name(name, None)
        return xrn.hrn, xrn.type
    if not isinstance(name, str):
        raise BadArgs(f"a name must be a string (HRN or URN), got {type(name).__name__}")
    return validate_hrn(name), None


def _summary(wire: dict[str, Any]) -> dict[str, Any]:
    """A record without its relations (Resolve with details=False)."""
    return {k: v for k, v in wire.items() if not k.startswith("reg-") or k == "reg-urn"}
