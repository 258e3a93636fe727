"""The expiry timer behind the aggregate's sliver reaper and the node manager's lease reaper."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from twisted.internet.threads import blockingCallFromThread

from sfa.server.expiry_timer import ExpiryTimer
from sfa.timeutil import utcnow


class Recording(ExpiryTimer):
    """Fails on its first run, then records each run and asks to run again in a minute."""

    what = "test work"

    def __init__(self, reactor: Any) -> None:
        super().__init__(reactor, timedelta(minutes=1))
        self.runs = 0
        self.ran = [threading.Event() for _ in range(4)]

    def work(self) -> float:
        self.runs += 1
        self.ran[min(self.runs, 4) - 1].set()
        if self.runs == 1:
            raise RuntimeError("first run fails")
        return 60.0


def test_a_failed_run_is_retried_and_a_poke_brings_the_next_run_forward(reactor: Any) -> None:
    timer = Recording(reactor)
    blockingCallFromThread(reactor, timer.start)
    try:
        assert timer.ran[0].wait(5)
        assert timer.ran[1].wait(5), "a failure must not stop the timer"
        assert not timer.ran[2].wait(0.3)  # next planned in 60 s
        timer.poke(utcnow() + timedelta(milliseconds=100))
        assert timer.ran[2].wait(5), "a poke with an earlier expiry runs it sooner"
        timer.poke()
        assert timer.ran[3].wait(5), "a poke without a time runs it at once"
    finally:
        blockingCallFromThread(reactor, timer.stop)
