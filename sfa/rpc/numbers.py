"""Numbers for XML-RPC, whose integers are 32-bit."""

from __future__ import annotations

from collections.abc import Mapping

INT32 = range(-(2**31), 2**31)


def counts_on_wire(counts: Mapping[str, int]) -> dict[str, int | float]:
    """Counters for an XML-RPC reply: counts past 32 bits (bytes, nanoseconds) travel as
    doubles, exact up to 2**53."""
    return {name: value if value in INT32 else float(value) for name, value in counts.items()}
