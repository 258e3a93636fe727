"""What a registry is told at construction besides its keys: lifetimes and peers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sfa.errors import BadArgs
from sfa.xrn import validate_hrn

CODE_TAG = "sfa-0.1.0"


@dataclass(frozen=True)
class RegistryConfig:
    """Slice lifetimes (default / maximum), credential lifetime and peers {hrn: registry url}."""

    slice_lifetime: timedelta = timedelta(days=30)
    max_slice_lifetime: timedelta = timedelta(days=180)
    credential_lifetime: timedelta = timedelta(days=30)
    peers: Mapping[str, str] = field(default_factory=dict)
    code_tag: str = CODE_TAG

    def __post_init__(self) -> None:
        for name in ("slice_lifetime", "max_slice_lifetime", "credential_lifetime"):
            if getattr(self, name) <= timedelta(0):
                raise BadArgs(f"registry {name} must be positive")
        if self.slice_lifetime > self.max_slice_lifetime:
            raise BadArgs("the default slice lifetime exceeds the maximum slice lifetime")
        for hrn, url in self.peers.items():
            validate_hrn(hrn)
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise BadArgs(f"peer {hrn}: registry url must be http(s)://..., got {url!r}")
