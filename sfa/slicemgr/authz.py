"""Whom the slice manager acts for: only a caller who delegated a slice credential to the slice
manager's GID, or who gave it a speaks-for credential. Never its own authority."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sfa.errors import CredentialMismatch
from sfa.trust.gid import GID
from sfa.trust.keys import public_keys_equal
from sfa.trust.verify import TargetMatch, TrustPolicy, VerifiedCall, authorize, verify_caller


def authorize_forwarding(
    credentials: Sequence[Any], caller: GID, manager: GID, policy: TrustPolicy, *,
    operation: str | None, targets: Sequence[str], options: Mapping[str, Any] | None = None,
    target_match: TargetMatch = "exact",
) -> VerifiedCall:
    """Check the call exactly as each aggregate will (the slice manager's GID as the TLS
    caller), then that the TLS caller is the one who handed the credential over."""
    user = verify_caller(caller, policy)
    try:
        call = authorize(credentials, manager, policy, operation=operation, targets=targets,
                         target_match=target_match, options=options)
    except CredentialMismatch as error:
        raise CredentialMismatch(
            f"the slice manager acts only with a slice credential delegated to its GID "
            f"({manager.urn}) or a speaks-for credential naming it: {error.message}") from None
    if call.speaking_for is not None:
        if not public_keys_equal(call.caller.public_key, user.public_key):
            raise CredentialMismatch(
                f"the speaks-for credential speaks for {call.speaking_for}, not for the "
                f"caller {user.urn}")
        return call
    for credential in call.credentials:
        giver = credential.parent.owner_gid if credential.parent is not None else None
        if giver is None or not public_keys_equal(giver.public_key, user.public_key):
            raise CredentialMismatch(
                f"the credential for {credential.target_urn} was not delegated to this slice "
                f"manager by the caller {user.urn}; delegate your own slice credential")
    return call


def verify_lister(credentials: Sequence[Any], caller: GID, policy: TrustPolicy,
                  options: Mapping[str, Any] | None = None) -> VerifiedCall:
    """ListResources: the caller's own credentials (if any) are checked as an aggregate checks
    them; the aggregates are then asked with none (they see only the slice manager)."""
    return authorize(credentials, caller, policy, operation=None, target_match="any",
                     options=options, allow_empty=True)
