"""Revocations on the wire: the aggregate's list of withdrawn tickets, read into store rows.

A revocation is `{serial, sliver_urn, expires}`: the ticket `serial` for `sliver_urn`, valid
until `expires`. The issuer is not on the wire: the node manager records the verified caller.
"""

from __future__ import annotations

from typing import Any

from sfa.errors import BadArgs
from sfa.nodemanager.store import Revocation
from sfa.timeutil import parse_rfc3339
from sfa.xrn import validate_urn

MAX_REVOCATIONS = 10_000  # per call
MAX_SERIAL = 128


def revocations_from_wire(value: Any) -> list[Revocation]:
    """Read a list of revocation structs (issuer left empty); BadArgs naming the first bad
    one."""
    if not isinstance(value, list | tuple):
        raise BadArgs("revocations must be a list of {serial, sliver_urn, expires} structs")
    if len(value) > MAX_REVOCATIONS:
        raise BadArgs(f"at most {MAX_REVOCATIONS} revocations per call")
    return [_one(item, index) for index, item in enumerate(value)]


def _one(item: Any, index: int) -> Revocation:
    if not isinstance(item, dict):
        raise BadArgs(f"revocation {index} is not a struct")
    serial, sliver_urn, expires = (item.get(k) for k in ("serial", "sliver_urn", "expires"))
    if not isinstance(serial, str) or not serial or len(serial) > MAX_SERIAL:
        raise BadArgs(f"revocation {index}: serial must be a string of 1 to {MAX_SERIAL} chars")
    if not isinstance(sliver_urn, str) or not isinstance(expires, str):
        raise BadArgs(f"revocation {index}: sliver_urn and expires must be strings")
    validate_urn(sliver_urn, "sliver")
    return Revocation(serial, "", sliver_urn, parse_rfc3339(expires))
