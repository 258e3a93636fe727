"""Which resource knobs a node's sliver backend enforces and which it only counts.

Admission control counts every knob against the node's capacity; enforcement is what stops a
running sliver from taking more than its grant. The report is logged once when the node
manager starts and advertised in GetVersion and the aggregate's advertisement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KNOBS = ("cpu_share", "memory_mb", "tasks", "disk_mb", "bandwidth_kbps")


@dataclass(frozen=True)
class Enforcement:
    """Per knob, the host mechanism that enforces it, or why it is only counted."""

    backend: str
    enforced: dict[str, str] = field(default_factory=dict)
    counted: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """The one line a node manager logs at start."""
        enforced = ", ".join(f"{k} ({v})" for k, v in self.enforced.items()) or "none"
        counted = ", ".join(f"{k} ({v})" for k, v in self.counted.items()) or "none"
        return f"sliver backend {self.backend}: enforced: {enforced}; only counted: {counted}"

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "enforced": dict(self.enforced),
                "counted": dict(self.counted)}


DIRECTORY = Enforcement(
    backend="directory",
    counted={
        "cpu_share": "no CPU scheduler weight",
        "memory_mb": "address-space rlimit only",
        "tasks": "RLIMIT_NPROC of the sliver uid",
        "disk_mb": "RLIMIT_FSIZE per file only",
        "bandwidth_kbps": "no traffic shaping",
    },
)


def of_backend(backend: object) -> Enforcement:
    """The backend's own report (its `enforcement` attribute); a backend without one
    enforces nothing the node manager knows of."""
    report = getattr(backend, "enforcement", None)
    if isinstance(report, Enforcement):
        return report
    return Enforcement(type(backend).__name__, counted=dict.fromkeys(KNOBS, "not reported"))
