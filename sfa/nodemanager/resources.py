"""Per-sliver resources: the PlanetLab 3.0 defaults, sums and the wire form."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from sfa.errors import BadArgs

_MAX_VALUE = 1 << 50


@dataclass(frozen=True)
class Resources:
    """What one sliver may use (or, as a capacity, what a node offers).

    Defaults are the PlanetLab 3.0 resource manager's per-sliver grant. `cpu_seconds` is an
    optional CPU-time cap (RLIMIT_CPU); 0 means none.
    """

    cpu_share: int = 32
    memory_mb: int = 128
    disk_mb: int = 5 * 1024
    tasks: int = 256
    bandwidth_kbps: int = 1
    cpu_seconds: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Resources:
        """Build from a dict (ticket, node.toml, XML-RPC); missing keys take the defaults."""
        if values is None:
            return cls()
        if isinstance(values, Resources):
            return values
        if not isinstance(values, Mapping):
            raise BadArgs("resources must be a mapping of name to integer")
        known = {f.name for f in fields(cls)}
        aliases = {"bandwidth": "bandwidth_kbps", "bandwidth_share": "bandwidth_kbps"}
        chosen: dict[str, int] = {}
        for raw_name, raw_value in values.items():
            name = aliases.get(str(raw_name), str(raw_name))
            if name not in known:
                continue
            chosen[name] = _as_count(name, raw_value)
        return cls(**chosen)

    def to_dict(self) -> dict[str, int]:
        # Its fields are ints: no need for dataclasses.asdict's recursive deep copy, which
        # showed in a node manager's profile (several calls per redemption).
        return {name: getattr(self, name) for name in _FIELD_NAMES}

    def plus(self, other: Resources) -> Resources:
        return Resources(**{k: v + getattr(other, k) for k, v in self.to_dict().items()})

    def minus(self, other: Resources) -> Resources:
        return Resources(**{k: v - getattr(other, k) for k, v in self.to_dict().items()})

    def exceeding(self, capacity: Resources) -> list[str]:
        """Names of the (capacity-limited) fields where self is above capacity."""
        return [
            name
            for name in ("cpu_share", "memory_mb", "disk_mb", "tasks", "bandwidth_kbps")
            if getattr(self, name) > getattr(capacity, name)
        ]


_FIELD_NAMES = tuple(f.name for f in fields(Resources))


def total(items: Iterable[Resources]) -> Resources:
    """The sum of several grants (zero for none)."""
    result = Resources(0, 0, 0, 0, 0, 0)
    for item in items:
        result = result.plus(item)
    return result


def _as_count(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise BadArgs(f"resource {name} must be a whole number, not a boolean")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise BadArgs(f"resource {name} must be a whole number, got {str(value)[:32]!r}") from None
    if not 0 <= number <= _MAX_VALUE:
        raise BadArgs(f"resource {name} out of range: {number}")
    return number
