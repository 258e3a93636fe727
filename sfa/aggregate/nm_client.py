"""What the node-manager driver asks of a transport: calls to many node managers at once.

The aggregate layer knows no network; the server gives the driver a `NodeClient` that speaks
XML-RPC over TLS (sfa.server.nm_transport) with bounded parallelism and a per-node timeout.
Its methods return asyncio awaitables (the driver's await rule, sfa.aggregate.driver).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sfa.errors import GeniCode

T = TypeVar("T")


@dataclass(frozen=True)
class NodeCall:
    """One remote call to one node manager."""

    node_urn: str
    url: str
    method: str
    params: tuple[Any, ...]


@dataclass(frozen=True)
class NodeReply:
    """A node manager's answer: the envelope's value, or its error, or no answer at all
    (`reachable` False: refused, timed out, TLS or identity failure)."""

    value: Any = None
    code: int = 0
    message: str = ""
    reachable: bool = True

    @property
    def ok(self) -> bool:
        return self.reachable and self.code == 0

    @property
    def error(self) -> str:
        """The failure as one line a user can act on ('' when ok)."""
        if self.ok:
            return ""
        if not self.reachable:
            return f"the node manager did not answer: {self.message}"
        try:
            name = GeniCode(self.code).name
        except ValueError:
            name = str(self.code)
        return f"{name}: {self.message or 'the node manager gave no reason'}"


class NodeClient(Protocol):
    """Calls node managers concurrently (bounded) and runs blocking work off the event loop."""

    parallelism: int

    def call_many(self, calls: Sequence[NodeCall]) -> Awaitable[list[NodeReply]]:
        """One reply per call, in order; never raises for one node's failure."""

    def in_thread(self, function: Callable[..., T], *args: Any) -> Awaitable[T]:
        """Run blocking `function(*args)` (signing, SQLite) where it does not stall calls."""

    def close(self) -> Awaitable[None]:
        """Drop kept-alive connections (the aggregate is stopping)."""
