"""What sfi remembers about each slice, in DIR/slices/<hrn>/state.json: which aggregate holds
which sliver on which node, the slice's keys, its expiry, and the tickets saved from
Describe (`sfa_tickets`) so that `redeem` can retry the nodes that failed."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sfa.errors import BadArgs
from sfa.timeutil import format_rfc3339, parse_rfc3339, utcnow

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class SavedTicket:
    """A node's ticket as Describe returned it, and where to redeem it."""

    node_urn: str
    sliver_urn: str
    url: str
    ticket: str
    aggregate: str = ""
    slice_key: str = ""


@dataclass
class SliceState:
    """The local memory of one slice."""

    hrn: str
    slivers: dict[str, dict[str, str]] = field(default_factory=dict)  # urn -> {node, aggregate}
    keys: list[str] | None = None
    expires: str = ""
    tickets: dict[str, SavedTicket] = field(default_factory=dict)  # node urn -> ticket

    def node_of(self, sliver_urn: str) -> str:
        """The node a sliver is on (its URN when unknown)."""
        return self.slivers.get(sliver_urn, {}).get("node") or sliver_urn

    def remember_sliver(self, sliver_urn: str, node: str, aggregate: str) -> None:
        self.slivers[sliver_urn] = {"node": node, "aggregate": aggregate}

    def aggregates(self) -> set[str]:
        return {entry.get("aggregate", "") for entry in self.slivers.values()} - {""}

    def forget_slivers(self, aggregate: str) -> None:
        self.slivers = {urn: entry for urn, entry in self.slivers.items()
                        if entry.get("aggregate") != aggregate}
        self.tickets = {node: t for node, t in self.tickets.items() if t.aggregate != aggregate}

    def set_expires(self, when: datetime) -> None:
        self.expires = format_rfc3339(when)

    def expired(self, now: datetime | None = None) -> bool:
        return bool(self.expires) and parse_rfc3339(self.expires) <= (now or utcnow())


class SliceStates:
    """The DIR/slices directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, hrn: str) -> Path:
        return self.directory / _SAFE.sub("_", hrn) / "state.json"

    def load(self, hrn: str) -> SliceState:
        path = self.path(hrn)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return SliceState(hrn)
        except (OSError, ValueError) as exc:
            raise BadArgs(f"cannot read {path}: {exc}; remove it or run `sfi clean`") from None
        return _state_from(hrn, data)

    def save(self, state: SliceState) -> Path:
        path = self.path(state.hrn)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(".state.json.tmp")
        tmp.write_text(json.dumps(asdict(state), indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
        return path

    def all(self) -> list[SliceState]:
        states = []
        for path in sorted(self.directory.glob("*/state.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                states.append(_state_from(str(data.get("hrn", path.parent.name)), data))
            except (OSError, ValueError, TypeError):
                continue
        return states

    def remove(self, hrn: str) -> None:
        shutil.rmtree(self.path(hrn).parent, ignore_errors=True)


def _state_from(hrn: str, data: dict[str, Any]) -> SliceState:
    tickets = {node: SavedTicket(**ticket) for node, ticket in data.get("tickets", {}).items()}
    return SliceState(hrn=hrn, slivers=dict(data.get("slivers", {})), keys=data.get("keys"),
                      expires=str(data.get("expires", "")), tickets=tickets)
