"""A timer that does expiry work in a thread when the next expiry is due (or every ceiling)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from sfa.timeutil import utcnow

log = Logger()

RETRY_AFTER_FAILURE = 1.0


class ExpiryTimer:
    """Calls `work()` in a thread; `work` returns the seconds until it should run again. A poke
    (from any thread) brings the next run forward; a failure is logged and retried shortly."""

    what = "expiry work"

    def __init__(self, reactor: Any, ceiling: timedelta) -> None:
        self.reactor = reactor
        self.ceiling = ceiling
        self._call: Any = None
        self._stopped = False

    def work(self) -> float:
        raise NotImplementedError

    def start(self) -> None:
        self._schedule(0.0)

    def stop(self) -> None:
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()

    def poke(self, expires: datetime | None = None) -> None:
        """Re-plan after a change: something now expires at `expires` (None: unknown, run and
        re-plan at once)."""
        self.reactor.callFromThread(self._replan, expires)

    def _replan(self, expires: datetime | None) -> None:
        if expires is None:
            if not self._stopped:
                self._schedule(0.0)
            return
        self._plan(max(0.0, (expires - utcnow()).total_seconds()) + 0.05)

    def _schedule(self, delay: float) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = self.reactor.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._call = None
        deferred = deferToThread(self.work)
        deferred.addErrback(self._failed)
        deferred.addCallback(self._plan)

    def _plan(self, delay: float) -> None:
        """Run in `delay` seconds, unless an earlier run is already planned."""
        if self._stopped:
            return
        if self._call is None or not self._call.active() or (
                self._call.getTime() > self.reactor.seconds() + delay):
            self._schedule(delay)

    def _failed(self, failure: Any) -> float:
        log.failure(f"{self.what} failed", failure)
        return RETRY_AFTER_FAILURE
