"""The sliver login: derived from the slice URN, never taken from input (security item 16)."""

from __future__ import annotations

import hashlib
import re

from sfa.xrn import hrn_leaf, validate_urn

MAX_LOGIN = 32  # the Linux user-name limit
_UNSAFE = re.compile(r"[^a-z0-9_]")


def sliver_login(slice_urn: str) -> str:
    """`<authority leaf>_<slice leaf>` (PlanetLab style), sanitized to `[a-z0-9_]`.

    When sanitizing or truncating changed the name, a short hash of the URN is appended so
    that two different slices never share a login. The result is always a safe path component.
    """
    xrn = validate_urn(slice_urn, "slice")
    authority = xrn.authority_hrn
    raw = f"{hrn_leaf(authority) if authority else 'x'}_{xrn.leaf}"
    clean = _UNSAFE.sub("_", raw.lower())
    if not clean[0].isalpha():
        clean = "s" + clean
    if clean == raw and len(clean) <= MAX_LOGIN:
        return clean
    digest = hashlib.sha256(xrn.urn.encode()).hexdigest()[:8]
    return f"{clean[: MAX_LOGIN - 9]}_{digest}"
