"""Who may act on a sliver (spec/nodemanager.md): the issuing AM, a holder of a slice
credential for the sliver's slice, and for listings the node's own authority."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sfa.errors import Forbidden
from sfa.trust.gid import GID
from sfa.trust.verify import TrustPolicy, authorize, verify_caller
from sfa.xrn import Xrn, is_authority_for, same_name

# The credential operation each node manager method needs (spec/trust.md rights table).
OPERATIONS = {
    "start": "startslice",
    "stop": "stopslice",
    "restart": "startslice",
    "delete": "deletesliver",
    "update_keys": "updateslice",
    "status": "sliverstatus",
}


def caller_of(peer: GID | None, policy: TrustPolicy) -> GID:
    """The TLS caller, its chain verified against the node's trusted roots."""
    if peer is None:
        raise Forbidden("this call needs a client certificate (a GID chaining to a trusted root)")
    return verify_caller(peer, policy)


def authorize_sliver(
    peer: GID | None,
    credentials: Sequence[Any],
    policy: TrustPolicy,
    *,
    issuer_urn: str,
    slice_urn: str,
    action: str,
) -> str:
    """The caller's URN when it may do `action` on a sliver of `slice_urn` issued by
    `issuer_urn`; Forbidden / credential errors otherwise."""
    caller = caller_of(peer, policy)
    if same_name(caller.urn, issuer_urn):
        return caller.urn
    assert peer is not None
    verified = authorize(
        list(credentials or ()), peer, policy, operation=OPERATIONS[action], targets=[slice_urn]
    )
    return verified.caller_urn


def listing_scope(peer: GID | None, policy: TrustPolicy, node_urn: str) -> str | None:
    """None when the caller may list every sliver (an authority over the node, or any of its
    services); else the caller's URN, which then sees only the slivers it issued."""
    caller = caller_of(peer, policy)
    xrn = Xrn.from_urn(caller.urn)
    if xrn.is_authority and is_authority_for(xrn.hrn, Xrn.from_urn(node_urn).hrn):
        return None
    return caller.urn
