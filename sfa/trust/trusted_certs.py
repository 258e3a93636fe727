"""`get_trusted_certs`, the same on every service (registry, aggregate, slice manager)."""

from __future__ import annotations

from typing import Any

from sfa.errors import Forbidden
from sfa.trust.gid import GID
from sfa.trust.verify import TrustPolicy, authorize


def trusted_certificates(own: GID, policy: TrustPolicy, peer: GID | None,
                         cred: Any = None) -> list[str]:
    """The service's own GID (PEM chain) without a credential; with a credential granting
    `gettrustedcerts` (an authority's, as SFA's `sfi trusted` sends), every trusted root."""
    if not cred:
        return [own.to_pem()]
    if peer is None:
        raise Forbidden("get_trusted_certs with a credential needs a TLS client certificate")
    credentials = list(cred) if isinstance(cred, list | tuple) else [cred]
    authorize(credentials, peer, policy, operation="gettrustedcerts")
    policy.roots.reload_if_changed()
    return [root.to_pem() for root in policy.roots.roots]
