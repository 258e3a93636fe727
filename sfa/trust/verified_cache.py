"""A server-side cache of fully verified privilege credentials.

Services see the same slice credential on every call. Once a document has passed every check
(structure, signatures, signer chains, delegation rules), those outcomes depend only on its
exact bytes, the trusted roots and the policy, so they are kept under the SHA-256 of the bytes,
`roots.version` and the policy's knobs. What depends on the clock (credential expiry, each
certificate's validity window) is not cached: the door re-checks it on every hit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from dataclasses import dataclass

from sfa.trust.credential import Credential
from sfa.trust.gid import GID
from sfa.trust.xmldsig import BoundedCache


@dataclass(frozen=True)
class VerifiedEntry:
    """A credential that passed every time-independent check, and who signed each link."""

    credential: Credential
    signers: tuple[GID, ...]  # one per link of `credential.chain`, outermost first


class VerifiedCredentials:
    """Verified documents by (SHA-256 of the exact bytes, roots version, policy); thread-safe,
    bounded (oldest entries leave first)."""

    def __init__(self, size: int = 4096) -> None:
        self._entries: BoundedCache[Hashable, VerifiedEntry] = BoundedCache(size)

    @staticmethod
    def key(xml: str, roots_version: int, policy_knobs: Hashable) -> Hashable:
        """The cache key of a document under these roots and policy."""
        digest = hashlib.sha256(xml.encode("utf-8")).digest()
        return (digest, roots_version, policy_knobs)

    def get(self, key: Hashable) -> VerifiedEntry | None:
        """The entry stored under `key`, if any."""
        return self._entries.peek(key)

    def put(self, key: Hashable, entry: VerifiedEntry) -> None:
        """Remember a document that passed every time-independent check."""
        self._entries.get_or_make(key, lambda: entry)
