"""Worker processes for CPU-heavy services.

Each worker builds its own Dispatcher from a factory (the registry's: its own Registry over the
shared SQLite file and authority store), so credential verification and signing use every
core and never compete with the reactor thread for the server process's GIL.

Workers die with the server, even when it is SIGKILLed: each asks the kernel for SIGKILL when
its parent dies (`PR_SET_PDEATHSIG`, Linux), and watches a lifeline pipe whose only writer is
the server, exiting when it closes (the kernel closes it when the server dies; this also covers
systems without prctl and PDEATHSIG's firing on the death of the spawning thread).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from multiprocessing.connection import Connection
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThread
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver
from twisted.python.failure import Failure

from sfa.errors import Busy, ServerError
from sfa.server.dispatch import CallOutcome, Dispatcher
from sfa.server.parent_death import signal_on_parent_death
from sfa.server.xmlrpc import remove_trigger

log = Logger(namespace="sfa.server")

_QUEUE_FACTOR = 64
_WARM_TIMEOUT = 120.0
_dispatcher: Dispatcher | None = None


def die_with_parent(lifeline: Connection, parent_pid: int) -> None:
    """In a child: SIGKILL on the parent's death (Linux) and exit when `lifeline`, the read end
    of a pipe only the parent writes to, reaches end of file."""
    signal_on_parent_death(signal.SIGKILL, parent_pid)
    threading.Thread(target=_watch_lifeline, args=(lifeline,), name="sfa-lifeline",
                     daemon=True).start()


def _watch_lifeline(lifeline: Connection) -> None:
    try:
        lifeline.recv_bytes()  # the parent never writes: this returns only at end of file
    except (EOFError, OSError):
        pass
    os._exit(1)


def _init_worker(factory: str, args: tuple[Any, ...], lifeline: Connection,
                 parent_pid: int) -> None:
    """In the worker: die with the server, ignore Ctrl-C (the server stops us), log to stderr,
    build the dispatcher."""
    global _dispatcher  # noqa: PLW0603 - one dispatcher per worker process
    die_with_parent(lifeline, parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    observer: Any = textFileLogObserver(sys.stderr)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    module, _, attribute = factory.partition(":")
    _dispatcher = getattr(importlib.import_module(module), attribute)(*args)


def _handle(data: bytes, ders: tuple[bytes, ...], address: str) -> CallOutcome:
    if _dispatcher is None:
        raise ServerError("worker process without a dispatcher")
    certificates = tuple(x509.load_der_x509_certificate(der) for der in ders)
    return _dispatcher.handle(data, certificates, address)


def _ready() -> bool:
    return _dispatcher is not None


class ProcessCallPool:
    """Calls run in `workers` spawned processes; results come back to the reactor thread.

    `factory` is "module:function"; function(*args) returns the worker's Dispatcher.
    """

    def __init__(self, reactor: Any, workers: int, factory: str, args: tuple[Any, ...]) -> None:
        self.reactor = reactor
        self.workers = workers
        self.max_pending = workers * _QUEUE_FACTOR
        self.pending = 0
        self._factory = (factory, args)
        # the server holds the only write end for the pool's life; workers watch the read end
        self._lifeline, self._lifeline_writer = get_context("spawn").Pipe(duplex=False)
        self._executor: ProcessPoolExecutor | None = self._new_executor()
        self._trigger = reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(*self._factory, self._lifeline, os.getpid()),
        )

    def _replace_broken(self, broken: ProcessPoolExecutor) -> None:
        """A worker died (killed, out of memory): start a fresh set for the next calls."""
        if self._executor is not broken:
            return
        log.error("a registry worker process died; starting new workers")
        self._executor = self._new_executor()
        broken.shutdown(wait=False)

    def warm(self) -> None:
        """Block until the workers have built their dispatchers (call before listening);
        raises if a worker cannot start, so a broken deployment fails at once."""
        assert self._executor is not None
        futures = [self._executor.submit(_ready) for _ in range(self.workers)]
        for future in futures:
            if not future.result(timeout=_WARM_TIMEOUT):
                raise ServerError("a worker process could not build its dispatcher")

    def dispatch(
        self,
        dispatcher: Dispatcher,
        data: bytes,
        certificates: tuple[x509.Certificate, ...],
        address: str,
    ) -> Deferred[CallOutcome]:
        """Run the call in a worker; `dispatcher` (this process's) is not used here."""
        if self._executor is None:
            raise ServerError("the server is shutting down")
        if self.pending >= self.max_pending:
            raise Busy(f"the server is handling {self.pending} calls; retry in a moment")
        ders = tuple(cert.public_bytes(Encoding.DER) for cert in certificates)
        executor = self._executor
        try:
            future = executor.submit(_handle, data, ders, address)
        except BrokenProcessPool:
            self._replace_broken(executor)
            raise ServerError("the server's workers restarted; retry the call") from None
        self.pending += 1
        deferred: Deferred[CallOutcome] = Deferred()
        future.add_done_callback(
            lambda done: self.reactor.callFromThread(self._fire, deferred, done, executor)
        )
        return deferred

    def _fire(
        self,
        deferred: Deferred[CallOutcome],
        future: Future[CallOutcome],
        executor: ProcessPoolExecutor,
    ) -> None:
        self.pending -= 1
        error = future.exception()
        if isinstance(error, BrokenProcessPool):
            self._replace_broken(executor)
        if error is not None:
            deferred.errback(Failure(error))
        else:
            deferred.callback(future.result())

    def stop(self) -> Deferred[Any]:
        """Let the calls in progress finish, then end the workers (idempotent; also as its own
        shutdown trigger, e.g. after a failed start)."""
        trigger, self._trigger = self._trigger, None
        if trigger is not None:
            remove_trigger(self.reactor, trigger)
        executor, self._executor = self._executor, None
        if executor is None:
            return succeed(None)
        stopped = deferToThread(executor.shutdown, wait=True)
        stopped.addBoth(self._close_lifeline)
        return stopped

    def _close_lifeline(self, result: Any) -> Any:
        self._lifeline_writer.close()
        self._lifeline.close()
        return result
