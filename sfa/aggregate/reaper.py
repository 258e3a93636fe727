"""Expiry: expired slivers are deleted through the driver, whether or not anyone calls."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from .driver import Driver
from .slivers import Sliver
from .store import AggregateStore

Runner = Callable[..., object]


def reap_expired(store: AggregateStore, driver: Driver, run: Runner, now: datetime
                 ) -> list[Sliver]:
    """Delete every sliver expired at `now` (backend first, then the record); return them."""
    expired = store.expired(now)
    if expired:
        run(driver.delete(expired))
        store.delete([s.urn for s in expired])
    return expired


class Reaper:
    """Runs `reap_expired` when asked (the server's timer calls `tick`) and tells listeners."""

    def __init__(self, store: AggregateStore, driver: Driver, run: Runner,
                 clock: Callable[[], datetime]) -> None:
        self.store = store
        self.driver = driver
        self.run = run
        self.clock = clock
        self.listeners: list[Callable[[list[Sliver]], None]] = []
        self._lock = threading.Lock()

    def tick(self) -> list[Sliver]:
        """Reap now; one tick at a time."""
        with self._lock:
            reaped = reap_expired(self.store, self.driver, self.run, self.clock())
        if reaped:
            for listener in list(self.listeners):
                listener(reaped)
        return reaped

    def delay_until_next(self, ceiling: timedelta) -> float:
        """Seconds until the next sliver expires (at most `ceiling`; 0 when one is due)."""
        upcoming = self.store.next_expiry()
        if upcoming is None:
            return ceiling.total_seconds()
        delay = (upcoming - self.clock()).total_seconds()
        return max(0.0, min(delay, ceiling.total_seconds()))
