"""AM API arguments and results: checking what callers send, shaping what they get back.

Values here are already unmarshalled XML-RPC (str, int, bool, list, dict, bytes, DateTime);
nothing here knows the transport.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sfa.errors import BadArgs, BadVersion
from sfa.timeutil import format_rfc3339, parse_time

from .slivers import AllocationState, Sliver, UserKeys

RSPEC_TYPE = "GENI"
RSPEC_VERSION = "3"


def options_of(options: object) -> Mapping[str, Any]:
    """The options struct (absent or empty is allowed; anything else is BADARGS)."""
    if options is None or options == "":
        return {}
    if not isinstance(options, Mapping):
        raise BadArgs(f"options must be a struct, got {type(options).__name__}")
    return options


def credentials_of(credentials: object) -> list[Any]:
    """The credential list; BADARGS when it is not a list."""
    if credentials is None:
        return []
    if not isinstance(credentials, list | tuple):
        raise BadArgs(f"credentials must be a list, got {type(credentials).__name__}")
    return list(credentials)


def option_flag(options: Mapping[str, Any], name: str) -> bool:
    """A boolean option; accepts true/false, 0/1 and their string forms."""
    value = options.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0",
                                                             "no", ""):
        return value.strip().lower() in ("true", "1", "yes")
    raise BadArgs(f"option {name} must be a boolean, got {value!r:.40}")


def require_rspec_version(options: Mapping[str, Any]) -> None:
    """`geni_rspec_version` must be present (BADARGS) and GENI 3 (BADVERSION)."""
    wanted = options.get("geni_rspec_version")
    if wanted is None or wanted == "":
        raise BadArgs("option geni_rspec_version is required, e.g. {type: GENI, version: 3}")
    if not isinstance(wanted, Mapping):
        raise BadArgs("option geni_rspec_version must be a struct {type, version}")
    kind = str(wanted.get("type", "")).strip().lower()
    version = str(wanted.get("version", "")).strip()
    if kind != RSPEC_TYPE.lower() or version != RSPEC_VERSION:
        raise BadVersion(
            f"RSpec version {wanted.get('type')!s:.20} {wanted.get('version')!s:.20} is not "
            f"supported; ask for {{type: {RSPEC_TYPE}, version: {RSPEC_VERSION}}}"
        )


def time_argument(value: object, name: str) -> datetime:
    """A time argument in any form `parse_time` reads (an XML-RPC dateTime too), as aware
    UTC (BADARGS otherwise)."""
    text = getattr(value, "value", value)  # xmlrpc.client.DateTime
    if isinstance(text, str) and not text.strip():
        raise BadArgs(f"{name} must be a time such as 2030-01-31T12:00:00Z")
    try:
        return parse_time(text)
    except BadArgs as exc:
        raise BadArgs(f"{name}: {exc.message}") from None


def optional_time(options: Mapping[str, Any], name: str) -> datetime | None:
    value = options.get(name)
    return None if value in (None, "") else time_argument(value, name)


def users_of(value: object) -> tuple[UserKeys, ...]:
    """`geni_users`: [{urn, keys: [ssh keys]}] (v3) or the v2 `users` argument."""
    if value in (None, ""):
        return ()
    if not isinstance(value, list | tuple):
        raise BadArgs("geni_users must be a list of {urn, keys}")
    users = []
    for entry in value:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("urn"), str):
            raise BadArgs("each of geni_users must be a struct with a urn and keys")
        keys = entry.get("keys", [])
        if not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys):
            raise BadArgs(f"the keys of user {entry['urn'][:80]} must be a list of strings")
        users.append(UserKeys(entry["urn"], tuple(k.strip() for k in keys if k.strip())))
    return tuple(users)


def urn_list(urns: object) -> list[str]:
    """The `urns` argument: a non-empty list of strings (a lone string is accepted too)."""
    if isinstance(urns, str):
        urns = [urns]
    if not isinstance(urns, list | tuple) or not urns:
        raise BadArgs("urns must be a non-empty list of one slice URN or sliver URNs")
    if not all(isinstance(u, str) and u for u in urns):
        raise BadArgs("every URN in urns must be a non-empty string")
    return list(urns)


def sliver_status(sliver: Sliver, error: str = "") -> dict[str, Any]:
    """The v3 sliver status struct."""
    return {
        "geni_sliver_urn": sliver.urn,
        "geni_expires": format_rfc3339(sliver.expires),
        "geni_allocation_status": sliver.allocation.value,
        "geni_operational_status": sliver.operational.value,
        "geni_error": error or sliver.error,
    }


def deleted_status(sliver: Sliver, error: str = "") -> dict[str, Any]:
    """What Delete reports for a sliver it removed (or failed to, with `error`)."""
    return {
        "geni_sliver_urn": sliver.urn,
        "geni_allocation_status": (sliver.allocation.value if error
                                   else AllocationState.UNALLOCATED.value),
        "geni_expires": format_rfc3339(sliver.expires),
        "geni_error": error,
    }


def statuses(slivers: Sequence[Sliver], errors: Mapping[str, str] | None = None,
             usage: Mapping[str, Mapping[str, int]] | None = None) -> list[dict[str, Any]]:
    """Sliver status structs; `sfa_usage` carries what the sliver's node measured of it."""
    errors, usage = errors or {}, usage or {}
    found = [sliver_status(s, errors.get(s.urn, "")) for s in slivers]
    for status in found:
        if status["geni_sliver_urn"] in usage:
            status["sfa_usage"] = dict(usage[status["geni_sliver_urn"]])
    return found
