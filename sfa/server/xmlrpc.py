"""The generic XML-RPC-over-TLS resource every service mounts.

The reactor thread only reads the request, checks its size and shape and picks out the TLS
client certificate; the handler (verification, signing, SQLite) and the marshalling of its reply
run in a bounded thread pool, so CPU-heavy calls never stall other callers.
"""

from __future__ import annotations

import io
import time
import xmlrpc.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from xml.parsers.expat import ExpatError

from cryptography import x509
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web import http, resource, server

from sfa.errors import BadArgs, Busy, Forbidden, ServerError, SfaError, TooBig, Unsupported
from sfa.server.envelope import GENERIC_SERVER_ERROR, Envelope, ReplyStyle
from sfa.server.tls import gid_from_certificates, peer_certificates
from sfa.trust.gid import GID

log = Logger(namespace="sfa.server")

ANONYMOUS_METHODS = frozenset({"GetVersion"})
# A request that keeps streaming this many times the limit is cut off instead of drained.
_DRAIN_FACTOR = 4
_QUEUE_FACTOR = 16


@dataclass(frozen=True)
class CallContext:
    """What a handler knows about its call: the method and the TLS client certificate.

    `peer` is the certificate as presented (with the chain the client sent) and is NOT yet
    verified: a handler that needs an identity passes it to `sfa.trust.verify.verify_caller`.
    """

    method: str
    peer: GID | None
    client_address: str


Handler = Callable[[CallContext, tuple[Any, ...]], Any]


class CallPool:
    """A bounded thread pool tied to the reactor's life (started on run, stopped on shutdown)."""

    def __init__(self, reactor: Any, max_threads: int, name: str = "sfa-calls") -> None:
        self.reactor = reactor
        self.max_threads = max_threads
        self.max_pending = max_threads * _QUEUE_FACTOR
        self.pending = 0
        self._pool = ThreadPool(minthreads=0, maxthreads=max_threads, name=name)
        reactor.callWhenRunning(self._pool.start)
        self._trigger = reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def stop(self) -> None:
        """Stop the threads once the calls in progress end (idempotent)."""
        if self._trigger is not None:
            self.reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None
            self._pool.stop()

    def run(self, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Run function(*args) in the pool; Busy when too many calls are already waiting."""
        if self.pending >= self.max_pending:
            raise Busy(f"the server is handling {self.pending} calls; retry in a moment")
        self.pending += 1
        deferred = deferToThreadPool(self.reactor, self._pool, function, *args)

        def done(result: Any) -> Any:
            self.pending -= 1
            return result

        deferred.addBoth(done)
        return deferred


class LimitedRequest(server.Request):
    """A request whose body is counted, not stored, past the site's size limit."""

    body_too_big = False
    _received = 0

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


class XmlRpcSite(server.Site):
    """A Site with a request size limit, an idle timeout and no server banner."""

    requestFactory = LimitedRequest

    def __init__(self, root: resource.Resource, *, max_request_bytes: int, idle_timeout: float):
        super().__init__(root, timeout=idle_timeout)
        self.max_request_bytes = max_request_bytes
        self.displayTracebacks = False

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        channel.abortTimeout = 5
        return channel


class XmlRpcResource(resource.Resource):
    """POST / : one XML-RPC call, dispatched by method name to a handler in the call pool."""

    isLeaf = True

    def __init__(
        self,
        *,
        service: str,
        handlers: Mapping[str, Handler],
        replies: ReplyStyle,
        pool: CallPool,
        anonymous_methods: frozenset[str] = ANONYMOUS_METHODS,
    ) -> None:
        super().__init__()
        self.service = service
        self.handlers = dict(handlers)
        self.replies = replies
        self.pool = pool
        self.anonymous_methods = anonymous_methods

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
            certificates = peer_certificates(request.transport)
            address = _client_address(request)
            deferred = self.pool.run(self._invoke, data, certificates, address)
        except SfaError as error:
            body, code = self._marshal(self.replies.error(error))
            _log_call(self.service, "?", "-", code, started)
            return _with_headers(request, body)
        deferred.addCallback(self._send, request, started)
        deferred.addErrback(self._crashed, request, started)
        return server.NOT_DONE_YET

    def _admit(self, method: str, certificates: tuple[x509.Certificate, ...]) -> None:
        if method not in self.handlers:
            known = ", ".join(sorted(self.handlers))
            raise Unsupported(f"{self.service} has no method {method!r}; it offers: {known}")
        if not certificates and method not in self.anonymous_methods:
            raise Forbidden(
                f"{method} needs a client certificate: connect over TLS with your GID and "
                f"private key (only {', '.join(sorted(self.anonymous_methods))} works without)"
            )

    def _invoke(
        self, data: bytes, certificates: tuple[x509.Certificate, ...], address: str
    ) -> tuple[bytes, int, str, str]:
        """Runs in the pool: parse, admit, build the caller, call the handler, marshal."""
        method, caller = "?", "-"
        try:
            params, method = _parse_call(data)
            self._admit(method, certificates)
            peer = gid_from_certificates(certificates)
            caller = _urn_of(peer)
            result = self.handlers[method](CallContext(method, peer, address), params)
            reply, code = self.replies.ok(result), _code_of(result)
        except SfaError as error:
            reply, code = self.replies.error(error), int(error.code)
        except Exception:
            log.failure("{service} {method}: unexpected error", service=self.service, method=method)
            reply = self.replies.error(ServerError(GENERIC_SERVER_ERROR))
            code = int(ServerError.code)
        body, marshal_code = self._marshal(reply)
        return body, marshal_code if marshal_code else code, caller, method

    def _marshal(self, reply: Any) -> tuple[bytes, int]:
        try:
            if isinstance(reply, xmlrpc.client.Fault):
                return xmlrpc.client.dumps(reply).encode(), reply.faultCode
            text = xmlrpc.client.dumps((reply,), methodresponse=True, allow_none=True)
            return text.encode(), 0
        except (TypeError, OverflowError, ValueError):
            log.failure("{service}: cannot marshal a reply", service=self.service)
            return self._marshal(self.replies.error(ServerError(GENERIC_SERVER_ERROR)))

    def _send(
        self, outcome: tuple[bytes, int, str, str], request: server.Request, started: float
    ) -> None:
        body, code, caller, method = outcome
        _log_call(self.service, method, caller, code, started)
        if not request._disconnected:
            request.write(_with_headers(request, body))
            request.finish()

    def _crashed(self, failure: Any, request: server.Request, started: float) -> None:
        log.failure("{service}: dispatch failed", failure, service=self.service)
        body, code = self._marshal(self.replies.error(ServerError(GENERIC_SERVER_ERROR)))
        _log_call(self.service, "?", "-", code, started)
        if not request._disconnected:
            request.write(_with_headers(request, body))
            request.finish()



def _body(request: server.Request) -> bytes:
    if getattr(request, "body_too_big", False):
        limit = _request_limit(request)
        raise TooBig(f"the request is larger than {limit} bytes; send less at once")
    assert request.content is not None
    request.content.seek(0)
    return request.content.read()


def _parse_call(data: bytes) -> tuple[tuple[Any, ...], str]:
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise BadArgs("XML-RPC requests may not carry a DOCTYPE or entities")
    try:
        params, method = xmlrpc.client.loads(data, use_builtin_types=False)
    except (ExpatError, xmlrpc.client.ResponseError, ValueError, TypeError) as exc:
        raise BadArgs(f"the request is not a well-formed XML-RPC call: {exc}") from None
    if not method:
        raise BadArgs("the request is an XML-RPC response, not a call")
    return params, method


def _request_limit(request: server.Request) -> int:
    return int(getattr(request.channel, "site").max_request_bytes)  # noqa: B009


def _with_headers(request: server.Request, body: bytes) -> bytes:
    request.setHeader(b"content-type", b"text/xml; charset=utf-8")
    request.setHeader(b"content-length", str(len(body)).encode())
    return body


def _urn_of(peer: GID | None) -> str:
    if peer is None:
        return "-"
    try:
        return str(peer.urn)
    except Exception:  # the certificate carries no usable URN; the door will say why
        return "?"


def _code_of(result: Any) -> int:
    return int(result.geni_code) if isinstance(result, Envelope) else 0


def _client_address(request: server.Request) -> str:
    peer = request.getClientAddress()
    host = getattr(peer, "host", "?")
    port = getattr(peer, "port", "?")
    return f"{host}:{port}"


def _log_call(service: str, method: str, caller: str, code: int, started: float) -> None:
    log.info(
        "{service} {method} caller={caller} code={code} {duration_ms:.1f} ms",
        service=service,
        method=method,
        caller=caller,
        code=code,
        duration_ms=(time.perf_counter() - started) * 1000,
    )
