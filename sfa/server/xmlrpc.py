"""The generic XML-RPC-over-TLS resource every service mounts.

The reactor thread only reads the request, checks its size and picks out the TLS client
certificate; parsing, the handler (verification, signing, SQLite) and the marshalling of its
reply run in a bounded pool (threads here, or worker processes: `sfa.server.workers`), so
CPU-heavy calls never run on the reactor thread.
"""

from __future__ import annotations

import io
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cryptography import x509
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import connectionDone
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, resource, server

from sfa.errors import Busy, ServerError, SfaError, TooBig, Unavailable
from sfa.server.dispatch import (
    ANONYMOUS_METHODS,
    CallContext,
    CallOutcome,
    Dispatcher,
    Handler,
)
from sfa.server.envelope import GENERIC_SERVER_ERROR, ReplyStyle
from sfa.server.reactor import event_loop
from sfa.server.tls import peer_certificates

__all__ = [
    "ANONYMOUS_METHODS",
    "CallContext",
    "CallPool",
    "ClosableChannel",
    "Handler",
    "LimitedRequest",
    "Pool",
    "XmlRpcResource",
    "XmlRpcSite",
]

log = Logger(namespace="sfa.server")

# A request that keeps streaming this many times the limit is cut off instead of drained.
_DRAIN_FACTOR = 4
_QUEUE_FACTOR = 16
# seconds from a request's first byte to its last header line (`[limits] header_timeout_seconds`)
DEFAULT_HEADER_TIMEOUT = 10.0
# distinct request bodies whose constant reply is kept (GetVersion with and without options)
_CONSTANT_BODIES = 16


class Pool(Protocol):
    """Where calls run: `dispatch` returns a Deferred firing with the CallOutcome."""

    def dispatch(
        self,
        dispatcher: Dispatcher,
        data: bytes,
        certificates: tuple[x509.Certificate, ...],
        address: str,
    ) -> Deferred[CallOutcome]: ...

    def stop(self) -> Any: ...


def remove_trigger(reactor: Any, trigger: Any) -> None:
    """Take a system event trigger off the reactor's list, also when it is the very trigger
    running now (the reactor took it off already as it fired)."""
    try:
        reactor.removeSystemEventTrigger(trigger)
    except ValueError:
        pass


class CallPool:
    """A bounded pool of threads tied to the reactor's life (stopped on shutdown).

    Lean on purpose: one queue the threads take calls from, each result handed back to the
    reactor thread (`_from_thread`); Twisted's ThreadPool costs ~20 us more a call in its
    coordinator, contexts and deferred plumbing. Threads start as concurrent calls need them.
    """

    def __init__(self, reactor: Any, max_threads: int, name: str = "sfa-calls") -> None:
        self.reactor = reactor
        self.max_threads = max_threads
        self.max_pending = max_threads * _QUEUE_FACTOR
        self.pending = 0
        self.name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._to_reactor = _from_thread(reactor)
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self._trigger = reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def stop(self) -> None:
        """Let the calls in progress and queued finish, then end the threads (idempotent)."""
        trigger, self._trigger = self._trigger, None
        if trigger is None:
            return
        remove_trigger(self.reactor, trigger)
        self._stopped = True
        for _ in self._threads:
            self._calls.put(None)
        for thread in self._threads:
            thread.join()

    def run(self, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Run function(*args) in the pool; Busy when too many calls are already waiting."""
        if self._stopped:
            raise ServerError("the server is shutting down")
        if self.pending >= self.max_pending:
            raise Busy(f"the server is handling {self.pending} calls; retry in a moment")
        self.pending += 1
        deferred: Deferred[Any] = Deferred()
        deferred.addBoth(self._done)
        self._calls.put((function, args, deferred))
        if self.pending > len(self._threads) < self.max_threads:
            self._start_thread()
        return deferred

    def _done(self, result: Any) -> Any:
        self.pending -= 1
        return result

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        to_reactor = self._to_reactor
        while (call := self._calls.get()) is not None:
            function, args, deferred = call
            try:
                result = function(*args)
            except BaseException:
                to_reactor(deferred.errback, Failure())
            else:
                to_reactor(deferred.callback, result)

    def dispatch(
        self,
        dispatcher: Dispatcher,
        data: bytes,
        certificates: tuple[x509.Certificate, ...],
        address: str,
    ) -> Deferred[CallOutcome]:
        return self.run(dispatcher.handle, data, certificates, address)


# a queued call: the function, its arguments, the Deferred its result fires
_Call = tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]


def _from_thread(reactor: Any) -> Callable[..., Any]:
    """How a pool thread has f(*args) run in the reactor thread: straight onto the asyncio
    loop under Twisted's asyncio reactor (whose callFromThread adds a callLater(0) there,
    ~25 us a call), else `callFromThread`."""
    try:
        return event_loop(reactor).call_soon_threadsafe
    except Unavailable:
        return reactor.callFromThread


class LimitedRequest(server.Request):
    """A request whose body is counted, not stored, past the site's size limit."""

    body_too_big = False
    _received = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # XML-RPC bodies are never HTML forms: no Content-Type parse by the email package
        # (~0.7 ms a request) and no form decoding.
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)

    def process(self) -> None:
        """Render the site's one resource, whatever the path (it is a leaf), with a Date
        header and no Server banner."""
        channel: Any = self.channel
        self.site = channel.site
        self.setHeader(b"date", http.datetimeToString())
        self.prepath, self.postpath = [], []
        try:
            self.render(self.site.resource)
        except BaseException:
            self.processingFailed(Failure())

    def gotLength(self, length: int | None) -> None:
        limit = _request_limit(self)
        if length is not None and length > limit:
            self.body_too_big = True
            self.content = io.BytesIO()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self._received += len(data)
        limit = _request_limit(self)
        if self._received > limit:
            self.body_too_big = True
            if self._received > limit * _DRAIN_FACTOR:
                getattr(self.channel.transport, "abortConnection", lambda: None)()
            return
        super().handleContentChunk(data)


class ClosableChannel(http.HTTPChannel):
    """An HTTP/1.1 connection its site can close gracefully: after its current response, with
    a TLS close_notify and nothing more. TCP stays open, so the next request of a kept-alive
    client meets no reset (it is discarded); the client reads the clean end, and Python's
    stock xmlrpc.client then retries on a new connection. A bare close makes it SSLEOFError."""

    site: XmlRpcSite
    closing = False
    # the TLS client's certificates, once its first request read them
    peer_certificates: tuple[x509.Certificate, ...] | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.closed: Deferred[None] = Deferred()  # the close_notify is under way, or lost
        self.site.channels.add(self)

    def close_gracefully(self) -> Deferred[None]:
        """Close after the response in progress (now when idle)."""
        self.closing = True
        if not self.requests:
            self._close()
        return self.closed

    def dataReceived(self, data: bytes) -> None:
        if not (self.closing and not self.requests):
            super().dataReceived(data)

    def requestDone(self, request: Any) -> None:
        super().requestDone(request)
        if self.closing and not self.requests:
            self._close()

    def _close(self) -> None:
        self.loseConnection()
        self._fire_closed()

    def _fire_closed(self) -> None:
        if not self.closed.called:
            self.closed.callback(None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.site.channels.discard(self)
        try:
            super().connectionLost(reason)
        finally:
            self._fire_closed()


class HeaderDeadlineChannel(ClosableChannel):
    """An HTTP channel that gives each request `header_timeout` seconds from its first byte to
    its last header line: the idle timeout restarts with every byte, so headers trickled a byte
    at a time would otherwise hold the connection forever.

    The timer starts only when a chunk ends with the head still incomplete: a head that comes
    whole in one read (nearly all) costs no timer (~14 us to set and cancel on the asyncio
    reactor)."""

    _awaiting_headers = True
    _head_begun = False  # bytes of the current request's head have arrived
    _deadline: Any = None

    @property
    def header_timeout(self) -> float:
        return float(self.site.header_timeout)

    def dataReceived(self, data: bytes) -> None:
        if self._awaiting_headers and data:
            self._head_begun = True
        super().dataReceived(data)
        if self._head_begun and self._awaiting_headers and self._deadline is None:
            self._deadline = self.callLater(self.header_timeout, self._headers_too_slow)

    def allHeadersReceived(self) -> None:
        self._awaiting_headers = self._head_begun = False
        self._cancel_deadline()
        super().allHeadersReceived()

    def requestDone(self, request: Any) -> None:
        self._awaiting_headers = True  # before the next pipelined request is read
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_deadline()
        super().connectionLost(reason)

    def _cancel_deadline(self) -> None:
        deadline, self._deadline = self._deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()

    def _headers_too_slow(self) -> None:
        self._deadline = None
        transport: Any = self.transport
        log.info("closing {peer}: request headers not complete within {seconds} s",
                 peer=str(transport.getPeer()), seconds=self.header_timeout)
        transport.abortConnection()


class XmlRpcSite(server.Site):
    """A Site with a request size limit, idle and header timeouts, no server banner, and a
    graceful close of every connection (`close_connections`)."""

    requestFactory = LimitedRequest
    protocol = HeaderDeadlineChannel  # type: ignore[assignment]  # HTTP/1.1 only: no ALPN
    # A connection whose response is still not written by then is aborted.
    close_timeout = 5.0

    def __init__(self, root: resource.Resource, *, max_request_bytes: int, idle_timeout: float,
                 header_timeout: float = DEFAULT_HEADER_TIMEOUT):
        super().__init__(root, timeout=idle_timeout)
        self.max_request_bytes = max_request_bytes
        self.header_timeout = header_timeout
        self.displayTracebacks = False
        self.channels: set[ClosableChannel] = set()

    def log(self, request: Any) -> None:
        """No access log line: the resource logs every call (method, caller, code, time)."""

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        channel.abortTimeout = 5
        return channel

    def close_connections(self) -> Deferred[Any]:
        """Close every connection gracefully; fires once every close_notify is sent."""
        reactor: Any = self.reactor
        closing = [channel.close_gracefully() for channel in list(self.channels)]
        laggards = reactor.callLater(self.close_timeout, self._abort_busy)

        def sent(_: Any) -> Deferred[None]:
            if laggards.active():
                laggards.cancel()
            # The alerts sit in the TCP buffers until the reactor next writes: one turn.
            return deferLater(reactor, 0, lambda: None)

        return DeferredList(closing).addBoth(sent)

    def _abort_busy(self) -> None:
        for channel in list(self.channels):
            if not channel.closed.called:
                transport: Any = channel.transport
                transport.abortConnection()


class XmlRpcResource(resource.Resource):
    """POST / : one XML-RPC call, dispatched by method name to a handler in the call pool.

    With a pool of worker processes, `handlers` may be empty: the workers hold their own.
    """

    isLeaf = True

    def __init__(
        self,
        *,
        service: str,
        handlers: Mapping[str, Handler],
        replies: ReplyStyle,
        pool: Pool,
        anonymous_methods: frozenset[str] = ANONYMOUS_METHODS,
        constant_methods: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self.service = service
        self.pool = pool
        # replies of methods whose answer never changes, by the exact request body
        self.constant_methods = constant_methods
        self._constant: dict[bytes, CallOutcome] = {}
        self._longest_constant = -1  # no body is looked up (and hashed) past this length
        self.dispatcher = Dispatcher(
            service=service, handlers=handlers, replies=replies,
            anonymous_methods=anonymous_methods,
        )

    def render_GET(self, request: server.Request) -> bytes:
        request.setResponseCode(http.NOT_ALLOWED)
        request.setHeader(b"allow", b"POST")
        request.setHeader(b"content-type", b"text/plain")
        return f"sfa {self.service}: POST XML-RPC calls here\n".encode()

    def render_POST(self, request: server.Request) -> Any:
        """On the reactor: size check and client certificate only; the rest in the pool."""
        started = time.perf_counter()
        try:
            data = _body(request)
            known = self._constant.get(data) if len(data) <= self._longest_constant else None
            if known is not None:
                self._log(known, started)
                return _with_headers(request, known.body)
            certificates = _connection_certificates(request)
            address = _client_address(request)
            deferred = self.pool.dispatch(self.dispatcher, data, certificates, address)
        except SfaError as error:
            outcome = self.dispatcher.refusal(error)
            self._log(outcome, started)
            return _with_headers(request, outcome.body)
        deferred.addErrback(self._crashed)
        deferred.addCallback(self._send, request, started)
        return server.NOT_DONE_YET

    def _crashed(self, failure: Any) -> CallOutcome:
        log.failure("{service}: dispatch failed", failure, service=self.service)
        return self.dispatcher.refusal(ServerError(GENERIC_SERVER_ERROR))

    def _send(self, outcome: CallOutcome, request: server.Request, started: float) -> None:
        self._log(outcome, started)
        if (outcome.method in self.constant_methods and outcome.code == 0
                and len(self._constant) < _CONSTANT_BODIES):
            body = _body(request)
            self._constant[body] = outcome
            self._longest_constant = max(self._longest_constant, len(body))
        if not request._disconnected:
            request.write(_with_headers(request, outcome.body))
            request.finish()

    def _log(self, outcome: CallOutcome, started: float) -> None:
        log.info(
            "{service} {method} caller={caller} code={code} {duration_ms:.1f} ms",
            service=self.service,
            method=outcome.method,
            caller=outcome.caller,
            code=outcome.code,
            duration_ms=(time.perf_counter() - started) * 1000,
        )


def _body(request: server.Request) -> bytes:
    if getattr(request, "body_too_big", False):
        limit = _request_limit(request)
        raise TooBig(f"the request is larger than {limit} bytes; send less at once")
    assert request.content is not None
    request.content.seek(0)
    return request.content.read()


def _connection_certificates(request: server.Request) -> tuple[x509.Certificate, ...]:
    """The client's certificates, read once per connection: TLS renegotiation is off
    (`sfa.server.tls`), so they cannot change after the handshake."""
    channel: ClosableChannel = request.channel  # type: ignore[assignment]
    known = channel.peer_certificates
    if known is None:
        known = channel.peer_certificates = peer_certificates(request.transport)
    return known


def _request_limit(request: server.Request) -> int:
    return int(getattr(request.channel, "site").max_request_bytes)  # noqa: B009


def _with_headers(request: server.Request, body: bytes) -> bytes:
    request.setHeader(b"content-type", b"text/xml; charset=utf-8")
    request.setHeader(b"content-length", str(len(body)).encode())
    return body


def _client_address(request: server.Request) -> str:
    peer = request.getClientAddress()
    host = getattr(peer, "host", "?")
    port = getattr(peer, "port", "?")
    return f"{host}:{port}"
