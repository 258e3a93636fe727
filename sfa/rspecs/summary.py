"""RSpec documents for people: a short text summary and the whole model as JSON-ready data."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime
from typing import Any

from tabulate import tabulate

from sfa.rspecs.model import Extension, RSpec


def summary(model: RSpec) -> str:
    """A short human summary of an RSpec."""
    lines = [
        f"type:       {model.type}",
        f"generated:  {model.generated.isoformat() if model.generated else '-'}",
        f"expires:    {model.expires.isoformat() if model.expires else '-'}",
        f"nodes:      {len(model.nodes)}",
        f"interfaces: {len(model.interfaces)}",
        f"links:      {len(model.links)}",
        f"extensions: {len(model.extensions)} top-level",
    ]
    per_am = Counter(node.component_manager_id or "(unbound)" for node in model.nodes)
    if per_am:
        table = tabulate(sorted(per_am.items()), headers=["component manager", "nodes"])
        lines += ["", table]
    return "\n".join(lines)


def rspec_to_dict(model: RSpec) -> dict[str, Any]:
    """The model as JSON-ready data (times in RFC 3339)."""
    result: dict[str, Any] = _jsonable(dataclasses.asdict(model))
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Extension):
        return str(value)
    return value
