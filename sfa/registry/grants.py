"""Who gets what from the registry (`spec/trust.md`, "Rights the registry grants in
GetCredential"), who may read private fields, and how long a credential may live."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sfa.errors import Forbidden
from sfa.registry.records import (
    AuthorityRecord,
    NodeRecord,
    Record,
    SliceRecord,
    UserRecord,
)
from sfa.xrn import is_authority_for, same_name

SLICE_RIGHTS = ("refresh", "embed", "bind", "control", "info")
AUTHORITY_RIGHTS = ("authority", "sa")
REGISTRY_AUTHORITY_EXTRA = ("ma",)
SELF_USER_RIGHTS = ("refresh", "resolve", "info")
OTHER_USER_RIGHTS = ("resolve", "info")
NODE_RIGHTS = ("operator",)


@dataclass(frozen=True)
class Caller:
    """The verified caller as the registry sees it: its URN and, when ours, its record."""

    urn: str
    record: Record | None = None
    is_operator: bool = False

    def is_pi_over(self, hrn: str) -> bool:
        """True for a PI of `hrn` or of an authority above it (an authority itself counts)."""
        if self.is_operator:
            return True
        if isinstance(self.record, AuthorityRecord):
            return is_authority_for(self.record.hrn, hrn)
        if isinstance(self.record, UserRecord):
            return any(is_authority_for(a, hrn) for a in self.record.pi_authorities)
        return False

    def is_researcher_of(self, record: SliceRecord) -> bool:
        return isinstance(self.record, UserRecord) and any(
            same_name(self.record.hrn, hrn) for hrn in record.researchers)


def credential_rights(caller: Caller, target: Record, registry_hrn: str) -> tuple[str, ...]:
    """The privileges GetCredential puts in `caller`'s credential over `target`; Forbidden
    when the caller is entitled to none."""
    if isinstance(target, UserRecord):
        return SELF_USER_RIGHTS if same_name(caller.urn, target.urn) else OTHER_USER_RIGHTS
    if isinstance(target, SliceRecord):
        if caller.is_researcher_of(target) or caller.is_pi_over(target.hrn):
            return SLICE_RIGHTS
        raise Forbidden(
            f"only researchers of slice {target.hrn} and PIs above it get its credential; "
            "ask a PI to add you with Update (reg-researchers)"
        )
    if isinstance(target, AuthorityRecord):
        if caller.is_pi_over(target.hrn):
            extra = REGISTRY_AUTHORITY_EXTRA if same_name(target.hrn, registry_hrn) else ()
            return AUTHORITY_RIGHTS + extra
        raise Forbidden(f"only PIs of {target.hrn} get its authority credential")
    if isinstance(target, NodeRecord):
        if caller.is_pi_over(target.hrn):
            return NODE_RIGHTS
        raise Forbidden(
            f"only PIs of {target.authority} get an operator credential for {target.hrn}"
        )
    raise Forbidden(f"no credential for records of type {target.type}")


def may_see_private(caller: Caller, record: Record) -> bool:
    """Private fields (e-mail) go to the record itself, PIs above it and operators."""
    return same_name(caller.urn, record.urn) or caller.is_pi_over(record.hrn)


def credential_expiry(
    now: datetime, lifetime: timedelta, target: Record, *limits: datetime
) -> datetime:
    """No later than the configured lifetime, a slice's `expires`, and every limit given
    (the owner's and the target's GID expiry)."""
    candidates = [now + lifetime, *limits]
    if isinstance(target, SliceRecord) and target.expires is not None:
        candidates.append(target.expires)
    return min(candidates).replace(microsecond=0)
