"""The local API slivers and node tools query (PlanetLab's GetSSHKeys in spirit): read-only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sfa.errors import BadArgs, SearchFailed
from sfa.nodemanager.store import NodeStore, SliverRecord
from sfa.timeutil import format_rfc3339
from sfa.xrn import hrn_to_urn

MAX_NAME = 300


class LocalApi:
    """GetKeys and GetSliverInfo over the node's store. A slice is named by its login
    (`plc_princeton_exp1`), its URN or its HRN."""

    def __init__(
        self, store: NodeStore, usage: Callable[[str], dict[str, int]] | None = None
    ) -> None:
        self.store = store
        self.usage = usage  # login -> what the backend measured (cpu, memory, disk, traffic)

    def get_keys(self, slice_name: str) -> list[str]:
        """The public keys of the slice's users (what goes into authorized_keys)."""
        record = self._find(slice_name)
        keys = [key for user in record.users for key in user.keys]
        if record.slice_public_key:
            keys.append(record.slice_public_key)
        return list(dict.fromkeys(keys))

    def get_sliver_info(self, slice_name: str) -> dict[str, Any]:
        """The slice's sliver on this node: URNs, login, expiry, resources, state, usage."""
        record = self._find(slice_name)
        return {
            "slice_urn": record.slice_urn,
            "sliver_urn": record.sliver_urn,
            "login": record.login,
            "expires": format_rfc3339(record.expires),
            "resources": record.resources.to_dict(),
            "state": record.state,
            "users": [user.urn for user in record.users],
            "usage": self.usage(record.login) if self.usage else {},
        }

    def _find(self, slice_name: str) -> SliverRecord:
        if not isinstance(slice_name, str) or not slice_name or len(slice_name) > MAX_NAME:
            raise BadArgs("name the slice by its login, URN or HRN")
        if slice_name.startswith("urn:"):
            record = self.store.sliver_of_slice(slice_name)
        elif "." in slice_name:
            record = self.store.sliver_of_slice(hrn_to_urn(slice_name, "slice"))
        else:
            record = self.store.sliver_by_login(slice_name)
        if record is None:
            raise SearchFailed(f"no sliver of slice {slice_name!r} on this node")
        return record
