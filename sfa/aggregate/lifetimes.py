"""How long slivers live: allocations are short, leases are capped by policy and credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sfa.errors import OutOfRange
from sfa.timeutil import format_rfc3339


@dataclass(frozen=True)
class LifetimePolicy:
    """Allocated slivers live `allocated`; provisioned ones at most `max_lease` from now."""

    allocated: timedelta = timedelta(minutes=10)
    default_lease: timedelta = timedelta(days=1)
    max_lease: timedelta = timedelta(days=30)

    def allocation_expiry(self, now: datetime, credential_expiry: datetime | None) -> datetime:
        """When a new allocation lapses: the short allocation time, never past the credential."""
        return _cap(now + self.allocated, credential_expiry)

    def lease_end(
        self, now: datetime, requested: datetime | None, credential_expiry: datetime | None,
        *, extend_alap: bool = False,
    ) -> datetime:
        """The expiry to grant for `requested` (default lease when None).

        Beyond the maximum lease or the slice credential: OUTOFRANGE, or the latest allowed
        time when `extend_alap` is set. A time already past is OUTOFRANGE either way.
        """
        if requested is not None and requested <= now:
            raise OutOfRange(f"the requested time {format_rfc3339(requested)} is in the past")
        limit = _cap(now + self.max_lease, credential_expiry)
        wanted = requested if requested is not None else min(now + self.default_lease, limit)
        if wanted <= limit:
            return wanted
        if extend_alap or requested is None:
            return limit
        raise OutOfRange(
            f"{format_rfc3339(wanted)} is beyond the latest allowed expiry "
            f"{format_rfc3339(limit)} ({_why(now, self.max_lease, credential_expiry)}); "
            "ask for less or pass geni_extend_alap"
        )


def _cap(value: datetime, credential_expiry: datetime | None) -> datetime:
    return value if credential_expiry is None else min(value, credential_expiry)


def _why(now: datetime, max_lease: timedelta, credential_expiry: datetime | None) -> str:
    if credential_expiry is not None and credential_expiry < now + max_lease:
        return "the slice credential expires then"
    return f"the maximum lease is {max_lease.days} days"
