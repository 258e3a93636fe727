"""UTC, timezone-aware time and RFC 3339 on the wire."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sfa.errors import BadArgs

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$"
)


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware."""
    return datetime.now(UTC)


def parse_rfc3339(text: str) -> datetime:
    """Parse RFC 3339 (`Z`, offsets, fractions accepted; no zone means UTC) into aware UTC."""
    if isinstance(text, datetime):
        return as_utc(text)
    if not isinstance(text, str):
        raise BadArgs(f"expected an RFC 3339 time, got {type(text).__name__}")
    match = _RFC3339.match(text.strip())
    if not match:
        raise BadArgs(f"not an RFC 3339 time: {text[:64]!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or ".0")[1:7].ljust(6, "0"))
    try:
        value = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC
        )
    except ValueError as exc:
        raise BadArgs(f"not a valid time: {text[:64]!r} ({exc})") from None
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        value -= sign * offset
    return value


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_rfc3339(value: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ`: whole seconds, UTC, the form every GENI client parses."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
