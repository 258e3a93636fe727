"""The sliver login: derived from the full slice name, never taken from input (security items
16 and 29). The one place a login is derived: node managers name sliver accounts and
directories with it, and the aggregate's manifest announces it."""

from __future__ import annotations

import functools
import hashlib
import re

from sfa.xrn import validate_urn

MAX_LOGIN = 32  # the Linux user-name limit
HASH_CHARS = 12  # 48 bits of SHA-256
_READABLE = re.compile(r"[a-z][a-z0-9.]*")  # an HRN whose dots may become underscores
_UNSAFE = re.compile(r"[^a-z0-9_]")


@functools.lru_cache(maxsize=4096)  # a pure function, asked again at every sliver call
def sliver_login(slice_urn: str) -> str:
    """The slice's Unix login on a node: a pure function of the full slice HRN.

    A plain HRN (`plc.princeton.exp1`: lowercase letters, digits and dots, short enough)
    becomes `plc_princeton_exp1`; undoing the dots gives the name back, so two such slices never
    share a login. Any other HRN (escapes, other characters, too long) becomes a readable prefix,
    a `-` (which no plain login has) and a hash of the whole HRN: `plc_other_lab_a-1f2e3d4c5b6a`.
    Names that differ only in case are one name, so they share their login.
    """
    hrn = validate_urn(slice_urn, "slice").hrn.lower()
    if _READABLE.fullmatch(hrn) and len(hrn) <= MAX_LOGIN:
        return hrn.replace(".", "_")
    prefix = _UNSAFE.sub("_", hrn.replace(".", "_"))
    if not prefix[0].isalpha():
        prefix = "s" + prefix
    digest = hashlib.sha256(hrn.encode()).hexdigest()[:HASH_CHARS]
    return f"{prefix[: MAX_LOGIN - HASH_CHARS - 1]}-{digest}"
