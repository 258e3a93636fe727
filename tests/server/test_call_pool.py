"""The call pool: at most max_threads calls at once, BUSY past its queue, errors passed on,
queued calls finished at stop and none taken after; over real TLS where a client sees it."""

from __future__ import annotations

import threading
import time
import xmlrpc.client
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.threads import blockingCallFromThread

from sfa.deploy.config import LimitsConfig
from sfa.errors import GeniCode, ServerError
from sfa.server.envelope import FaultReplies
from sfa.server.listener import RunningService, start_service
from sfa.server.reactor import event_loop
from sfa.server.xmlrpc import CallContext, CallPool
from tests.server.conftest import proxy, wait_deferred

THREADS = 2


class Gate:
    """Handlers that wait until released, counting how many wait at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.threads: set[str] = set()
        self.entered = threading.Semaphore(0)

    def wait(self, call: CallContext, params: tuple[Any, ...]) -> bool:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.threads.add(threading.current_thread().name)
        self.entered.release()
        try:
            return self.release.wait(20)
        finally:
            with self.lock:
                self.inside -= 1


@pytest.fixture
def gated(reactor: Any, test_pki: dict) -> Iterator[tuple[RunningService, Gate]]:
    gate = Gate()
    identity = test_pki["service"]
    limits = LimitsConfig(max_concurrent_calls=THREADS, idle_timeout_seconds=30)
    running = blockingCallFromThread(
        reactor,
        lambda: start_service(
            reactor, name="pool-test", handlers={"Wait": gate.wait, "Hello": lambda c, p: "hi"},
            replies=FaultReplies(), gid=identity.gid, key=identity.key, host="127.0.0.1",
            port=0, limits=limits,
        ),
    )
    try:
        yield running, gate
    finally:
        gate.release.set()
        blockingCallFromThread(reactor, running.stop)


def _client(service: RunningService, test_pki: dict) -> Any:
    return proxy(service.url, test_pki["root"].cert_file, test_pki["user"])


def test_at_most_max_threads_calls_run_at_once(gated, test_pki: dict):
    service, gate = gated
    with ThreadPoolExecutor(6) as clients:
        replies = [clients.submit(lambda: _client(service, test_pki).Wait()) for _ in range(6)]
        for _ in range(THREADS):
            assert gate.entered.acquire(timeout=10)
        assert not gate.entered.acquire(timeout=0.5)  # the others queue
        gate.release.set()
        assert [reply.result(timeout=20) for reply in replies] == [True] * 6
    assert gate.most == THREADS and len(gate.threads) == THREADS


def test_past_its_queue_the_pool_refuses_with_busy_and_goes_on(gated, test_pki: dict):
    service, gate = gated
    queue_size = THREADS * 16  # every thread busy and this many calls in all
    with ThreadPoolExecutor(queue_size) as clients:
        waiting = [clients.submit(lambda: _client(service, test_pki).Wait())
                   for _ in range(queue_size)]
        for _ in range(THREADS):
            assert gate.entered.acquire(timeout=10)
        pool: Any = service.pool
        deadline = time.monotonic() + 20  # the clients' requests all reached the pool
        while pool.pending < queue_size and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(xmlrpc.client.Fault) as refused:
            _client(service, test_pki).Hello()
        assert refused.value.faultCode == GeniCode.BUSY
        assert "retry in a moment" in refused.value.faultString
        gate.release.set()
        assert all(reply.result(timeout=30) for reply in waiting)
    assert _client(service, test_pki).Hello() == "hi"
    assert pool.pending == 0


def _run(reactor: Any, pool: CallPool, function: Any, *args: Any) -> Any:
    return wait_deferred(reactor, lambda: pool.run(function, *args))


def test_results_and_errors_come_back_in_the_reactor_thread(reactor: Any):
    pool = blockingCallFromThread(reactor, CallPool, reactor, 2, "pool-unit")
    try:
        assert _run(reactor, pool, lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(ZeroDivisionError):
            _run(reactor, pool, lambda: 1 / 0)
        fired_in: list[str] = []

        def on_reactor() -> Deferred[Any]:
            deferred = pool.run(threading.current_thread)

            def fired(worker: Any) -> Any:
                fired_in.append(threading.current_thread().name)
                return worker

            return deferred.addCallback(fired)

        worker = wait_deferred(reactor, on_reactor)
        assert worker.name.startswith("pool-unit-")
        assert fired_in and not fired_in[0].startswith("pool-unit-")
        assert pool.pending == 0
    finally:
        blockingCallFromThread(reactor, pool.stop)


def test_stop_finishes_queued_calls_then_refuses(reactor: Any):
    pool = blockingCallFromThread(reactor, CallPool, reactor, 1, "pool-stop")
    started, release = threading.Event(), threading.Event()
    done: list[int] = []

    def slow(number: int) -> int:
        started.set()
        release.wait(10)
        done.append(number)
        return number

    def submit() -> list[Deferred[Any]]:
        return [pool.run(slow, number) for number in range(3)]

    blockingCallFromThread(reactor, submit)
    assert started.wait(10)
    threading.Timer(0.2, release.set).start()
    blockingCallFromThread(reactor, pool.stop)  # returns once the queue is drained
    assert done == [0, 1, 2]
    assert not any(thread.is_alive() for thread in pool._threads)
    with pytest.raises(ServerError, match="shutting down"):
        blockingCallFromThread(reactor, pool.run, slow, 9)
    blockingCallFromThread(reactor, pool.stop)  # idempotent


def test_results_reach_a_reactor_that_is_not_asyncio():
    """Under any other reactor (the benchmarks' node processes run the default one) results
    come back through callFromThread: a real select reactor in its own thread here."""
    other = SelectReactor()
    thread = threading.Thread(target=other.run, kwargs={"installSignalHandlers": False},
                              daemon=True)
    thread.start()
    try:
        pool = blockingCallFromThread(other, CallPool, other, 2, "pool-select")
        assert pool._to_reactor == other.callFromThread
        seen: list[str] = []

        def run() -> Deferred[Any]:

            def fired(value: Any) -> Any:
                seen.append(threading.current_thread().name)
                return value

            return pool.run(lambda: 6 * 7).addCallback(fired)

        assert blockingCallFromThread(other, run) == 42
        assert seen == [thread.name]
        with pytest.raises(ZeroDivisionError):
            blockingCallFromThread(other, pool.run, lambda: 1 / 0)
        blockingCallFromThread(other, pool.stop)
    finally:
        other.callFromThread(other.stop)
        thread.join(10)
    assert not thread.is_alive()


def test_under_the_asyncio_reactor_results_go_straight_to_its_loop(reactor: Any):
    pool = blockingCallFromThread(reactor, CallPool, reactor, 1, "pool-asyncio")
    try:
        assert pool._to_reactor == event_loop(reactor).call_soon_threadsafe
        assert _run(reactor, pool, lambda: "done") == "done"
    finally:
        blockingCallFromThread(reactor, pool.stop)
