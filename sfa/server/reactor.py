"""The one reactor: Twisted's asyncio reactor, so that drivers run as asyncio tasks.

`sfa serve`, the test suite's reactor fixture and every tool that serves the aggregate call
`install_asyncio_reactor()` before anything imports `twisted.internet.reactor`. Twisted code
reaches asyncio through `as_deferred` (a coroutine as an asyncio task, seen as a Deferred);
asyncio code reaches Twisted through `Deferred.asFuture(loop)`, the one adapter a driver's
Twisted transport uses to hand it awaitables.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import Deferred

from sfa.errors import Unavailable

T = TypeVar("T")


def install_asyncio_reactor() -> Any:
    """Install Twisted's asyncio reactor on a new event loop (once) and return the reactor.

    Unavailable when another reactor was installed first (something imported
    `twisted.internet.reactor` too early).
    """
    if "twisted.internet.reactor" not in sys.modules:
        from twisted.internet import asyncioreactor  # noqa: PLC0415 - installs on demand

        asyncioreactor.install(asyncio.new_event_loop())
    from twisted.internet import reactor  # noqa: PLC0415 - the one just installed

    event_loop(reactor)
    return reactor


def event_loop(reactor: Any) -> asyncio.AbstractEventLoop:
    """The asyncio event loop under `reactor` (Unavailable for another kind of reactor)."""
    loop = getattr(reactor, "_asyncioEventloop", None)
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise Unavailable(f"the reactor is {type(reactor).__name__}, not Twisted's asyncio "
                          "reactor: call sfa.server.reactor.install_asyncio_reactor() before "
                          "anything imports twisted.internet.reactor")
    return loop


def as_deferred(reactor: Any, coroutine: Coroutine[Any, Any, T]) -> Deferred[T]:
    """Run an asyncio coroutine as a task on the reactor's loop (call in the reactor thread)."""
    return Deferred.fromFuture(event_loop(reactor).create_task(coroutine))
