"""Referrals: names that belong to a peer registry are answered with a pointer to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sfa.errors import SearchFailed
from sfa.xrn import hrn_split, hrn_to_urn, is_authority_for


@dataclass(frozen=True)
class Referral:
    """The peer registry that owns a name: its authority HRN and its URL."""

    peer_hrn: str
    url: str

    def error(self, hrn: str) -> SearchFailed:
        return SearchFailed(
            f"{hrn} is not registered here: ask the registry of {self.peer_hrn} at {self.url}"
        )

    def stub(self) -> dict[str, Any]:
        """The record stub Resolve returns for a referral."""
        return {
            "hrn": self.peer_hrn, "type": "authority",
            "reg-urn": hrn_to_urn(self.peer_hrn, "authority"), "url": self.url,
        }


class Referrals:
    """Decides whether a name is ours, a peer's (longest matching prefix), or nobody's."""

    def __init__(self, root_hrn: str, peers: Mapping[str, str]) -> None:
        self.root_hrn = root_hrn
        self.peers = peers  # kept, not copied: a live mapping sees peers added later

    def is_ours(self, hrn: str) -> bool:
        return self.referral_for(hrn) is None and is_authority_for(self.root_hrn, hrn)

    def referral_for(self, hrn: str) -> Referral | None:
        """The peer owning `hrn` when its prefix is longer than ours; None otherwise."""
        best: tuple[int, Referral] | None = None
        for peer_hrn, url in self.peers.items():
            if is_authority_for(peer_hrn, hrn):
                depth = len(hrn_split(peer_hrn))
                if best is None or depth > best[0]:
                    best = (depth, Referral(peer_hrn, url))
        if best is None:
            return None
        if is_authority_for(self.root_hrn, hrn) and len(hrn_split(self.root_hrn)) >= best[0]:
            return None
        return best[1]

    def check_ours(self, hrn: str) -> None:
        """SearchFailed (a referral when a peer owns it) unless `hrn` is in our tree."""
        referral = self.referral_for(hrn)
        if referral is not None:
            raise referral.error(hrn)
        if not is_authority_for(self.root_hrn, hrn):
            raise SearchFailed(
                f"{hrn} is not under {self.root_hrn} and no configured peer registry owns it"
            )
