"""UTC, timezone-aware time: strict RFC 3339 when we write, every common form when we read."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sfa.errors import BadArgs

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$"
)
# What clients type or send besides RFC 3339 (see `parse_time`).
_NO_SECONDS = re.compile(r"^(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2})([Zz]|[+-]\d{2}:?\d{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2}:\d{2}:\d{2}.*)$")
_EPOCH = re.compile(r"^\d{1,12}(\.\d+)?$")
_RELATIVE = re.compile(r"^\+(\d{1,6})(min|[hdwm])$")
# SFA's sfi reads `m` as a month of four weeks; `h` and `min` are ours.
_UNITS = {"min": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
          "w": timedelta(weeks=1), "m": timedelta(weeks=4)}
TIME_FORMS = ("RFC 3339 (2030-01-31T12:00:00Z), a date (2030-01-31), epoch seconds, "
              "or +2d, +5h, +1w, +1m (4 weeks), +30min")


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


def parse_time(value: object, now: datetime | None = None) -> datetime:
    """Any time a client sends, as aware UTC: RFC 3339 (seconds optional), a date alone
    (midnight UTC), `YYYYMMDDTHH:MM:SS` (XML-RPC dateTime), epoch seconds (int, float or digits),
    or `+N` with min, h, d, w or m (4 weeks, as SFA's sfi) from `now`. BadArgs otherwise."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(value, str(value))
    if not isinstance(value, str):
        raise BadArgs(f"expected a time, got {type(value).__name__}; use {TIME_FORMS}")
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative:
        return (as_utc(now) if now else utcnow()) + int(relative[1]) * _UNITS[relative[2]]
    if _EPOCH.match(text):
        return _from_epoch(float(text), text)
    return parse_rfc3339(_as_rfc3339(text))


def _as_rfc3339(text: str) -> str:
    """The RFC 3339 spelling of the other absolute forms (unchanged when none matches)."""
    if _DATE.match(text):
        return f"{text}T00:00:00Z"
    short = _NO_SECONDS.match(text)
    if short:
        return f"{short[1]}:00{short[2] or ''}"
    compact = _COMPACT.match(text)
    if compact:
        return f"{compact[1]}-{compact[2]}-{compact[3]}T{compact[4]}"
    if not _RFC3339.match(text):
        raise BadArgs(f"not a time: {text[:64]!r}; use {TIME_FORMS}")
    return text


def _from_epoch(seconds: float, shown: str) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise BadArgs(f"epoch seconds out of range: {shown[:32]}") from None
