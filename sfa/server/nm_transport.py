"""The aggregate's client for node managers: XML-RPC over TLS on the reactor, many at once.

The aggregate's GID is the client certificate. A node's certificate must chain to the trusted
roots (OpenSSL checks signatures, validity and CA flags) and be exactly the node the aggregate
expects at that address (its URN and public key, from the inventory): node GIDs carry no host
names, so the identity is pinned instead. Calls run with bounded parallelism and a per-call
timeout; persistent connections are reused (Provision then geni_start costs one handshake),
and a new connection to a node resumes the TLS session of the last one (no RSA signature on
either side), as long as the node is still pinned to the same URN and key.
"""

from __future__ import annotations

import asyncio
import xmlrpc.client
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from OpenSSL import SSL, crypto
from twisted.internet import defer
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.threads import deferToThread
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web._newclient import (
    HTTP11ClientProtocol,
    PotentialDataLoss,
    Request,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from sfa.aggregate.nm_client import NodeCall, NodeReply
from sfa.rpc.xmlrpc_decode import loads
from sfa.server.reactor import event_loop
from sfa.trust.gid import GID
from sfa.trust.keys import public_key_der
from sfa.xrn import same_name

T = TypeVar("T")
MAX_REPLY_BYTES = 20_000_000
_RETRIED = (ResponseNeverReceived, RequestTransmissionFailed, RequestNotSent)


@implementer(IOpenSSLClientConnectionCreator)
class _PinnedNode:
    """TLS to one node: chain checked by OpenSSL against the roots, leaf pinned to the node."""

    def __init__(self, context: SSL.Context, expected: GID | None,
                 session: SSL.Session | None = None) -> None:
        self.context = context
        self.expected = expected
        self.session = session

    def clientConnectionForTLS(self, tls_protocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        connection.set_app_data(tls_protocol)
        connection.set_verify(SSL.VERIFY_PEER, self._verify)
        if self.session is not None:  # the node verified and pinned when it was made
            connection.set_session(self.session)
        connection.set_connect_state()
        return connection

    def _verify(self, connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int,
                ok: int) -> bool:
        if not ok:
            return False
        if depth != 0:
            return True
        if self.expected is None:
            return False
        leaf = GID.from_certificate(cert.to_cryptography())
        return (same_name(leaf.urn, self.expected.urn)
                and public_key_der(leaf.public_key) == public_key_der(self.expected.public_key))


@implementer(IBodyProducer)
class _Body:
    """A request body already in memory."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:
        consumer.write(self.data)
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        return None

    def resumeProducing(self) -> None:
        return None

    def stopProducing(self) -> None:
        return None


class _Collect(Protocol):
    """Gathers a response body (bounded) and fires when it is complete."""

    def __init__(self, done: defer.Deferred[bytes]) -> None:
        self.done = done
        self.parts: list[bytes] = []
        self.size = 0

    def dataReceived(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > MAX_REPLY_BYTES:
            self.transport.stopProducing()  # type: ignore[union-attr]
            return
        self.parts.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        if self.size > MAX_REPLY_BYTES:
            self.done.errback(ConnectionError("the reply is too big"))
        elif reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


class _Connect(ClientFactory):
    def __init__(self, ready: defer.Deferred[HTTP11ClientProtocol],
                 idle: Callable[[HTTP11ClientProtocol], None]) -> None:
        self.ready = ready
        self.idle = idle

    def buildProtocol(self, addr: Any) -> HTTP11ClientProtocol:
        protocol = _Http(self.idle)
        protocol.ready = self.ready
        return protocol

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        if not self.ready.called:
            self.ready.errback(reason)


class _Http(HTTP11ClientProtocol):
    ready: defer.Deferred[HTTP11ClientProtocol]

    def connectionMade(self) -> None:
        super().connectionMade()
        # Headers and body leave as two TLS records: without TCP_NODELAY the body waits for
        # the node's delayed ACK (~40 ms a call).
        tcp = getattr(self.transport, "transport", None)
        if tcp is not None and hasattr(tcp, "setTcpNoDelay"):
            tcp.setTcpNoDelay(True)
        if not self.ready.called:
            self.ready.callback(self)


def client_context(gid: GID, key: RSAPrivateKey, roots: Sequence[GID]) -> SSL.Context:
    """An OpenSSL client context: our GID and chain, the trusted roots as the only anchors."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.use_certificate(gid.certificate)
    for issuer in gid.chain:
        context.add_extra_chain_cert(issuer)
    context.use_privatekey(key)
    store = context.get_cert_store()
    assert store is not None
    for root in roots:
        store.add_cert(crypto.X509.from_cryptography(root.certificate))
    return context


class TwistedNodeClient:
    """`sfa.aggregate.nm_client.NodeClient` on Twisted's asyncio reactor (one kept-alive
    HTTP/1.1 connection per node manager); the driver awaits asyncio futures of its Deferreds."""

    def __init__(self, reactor: Any, *, gid: GID, key: RSAPrivateKey, roots: Sequence[GID],
                 node_gids: Callable[[str], GID | None], parallelism: int = 32,
                 timeout: float = 15.0) -> None:
        self.reactor = reactor
        self.parallelism = parallelism
        self.timeout = timeout
        self.node_gids = node_gids
        self._context = client_context(gid, key, roots)
        # A resumed session gives the node our certificate but not the issuers we sent: resume
        # only when there is no intermediate for the node to miss.
        self._resumable = all(c.issuer == c.subject for c in gid.chain)
        self._idle: dict[tuple[str, int], HTTP11ClientProtocol] = {}
        self._sessions: dict[tuple[str, int], tuple[bytes, SSL.Session]] = {}
        self._semaphore: defer.DeferredSemaphore | None = None

    def in_thread(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return deferToThread(function, *args).asFuture(event_loop(self.reactor))

    def call_many(self, calls: Sequence[NodeCall]) -> asyncio.Future[list[NodeReply]]:
        """Every call, at most `parallelism` at a time; one NodeReply each, in order."""
        limit = self._limit()
        each = [limit.run(self._deferred_call, call) for call in calls]
        return defer.gatherResults(each).asFuture(event_loop(self.reactor))

    def _limit(self) -> defer.DeferredSemaphore:
        """One semaphore for all calls in flight (several call_many may overlap), remade when
        `parallelism` changes."""
        wanted = max(1, self.parallelism)
        if self._semaphore is None or self._semaphore.limit != wanted:
            self._semaphore = defer.DeferredSemaphore(wanted)
        return self._semaphore

    def _deferred_call(self, call: NodeCall) -> defer.Deferred[NodeReply]:
        return defer.Deferred.fromCoroutine(self.call(call))

    async def call(self, call: NodeCall) -> NodeReply:
        """One call; failures become NodeReplies (never raises)."""
        try:
            parts = urlsplit(call.url)
            if parts.scheme != "https" or not parts.hostname:
                raise ValueError(f"not an https URL: {call.url!r}")
            where = (parts.hostname, parts.port or 443)
            body = xmlrpc.client.dumps(call.params, methodname=call.method,
                                       allow_none=True).encode()
            for attempt in range(2):
                try:
                    data = await self._exchange(where, parts.path or "/", body,
                                                self.node_gids(call.node_urn))
                    break
                except _RETRIED:  # a kept-alive connection the node had closed: once more
                    if attempt:
                        raise
            return _reply(data)
        except defer.TimeoutError:
            return NodeReply(reachable=False, message=f"no answer from {call.url} within "
                             f"{self.timeout:g} s")
        except Exception as exc:  # every failure is this node's reply
            return NodeReply(reachable=False, message=f"{call.url}: {_describe(exc)}")

    async def _exchange(self, where: tuple[str, int], path: str, body: bytes,
                        expected: GID | None) -> bytes:
        protocol = self._idle.pop(where, None)
        if protocol is None or protocol.state != "QUIESCENT":
            protocol = await self._connect(where, expected)
        headers = Headers({b"content-type": [b"text/xml"],
                           b"host": [f"{where[0]}:{where[1]}".encode()]})
        asking = protocol.request(Request(b"POST", path.encode(), headers, _Body(body),
                                          persistent=True))
        asking.addTimeout(self.timeout, self.reactor)
        response = await asking
        done: defer.Deferred[bytes] = defer.Deferred()
        response.deliverBody(_Collect(done))  # type: ignore[call-arg,misc]
        done.addTimeout(self.timeout, self.reactor)
        data: bytes = await done
        self._keep_session(where, expected, protocol)
        if response.code != 200:
            raise ConnectionError(f"HTTP {response.code}")
        return data

    def _keep_session(self, where: tuple[str, int], expected: GID | None,
                      protocol: HTTP11ClientProtocol) -> None:
        """Remember the TLS session of a connection that answered, for the next connection
        to the same address and pinned node (TLS 1.3 tickets arrive after the handshake)."""
        handle = getattr(protocol.transport, "getHandle", None)
        connection = handle() if handle is not None else None
        if not self._resumable or expected is None or not isinstance(connection,
                                                                     SSL.Connection):
            return
        session = connection.get_session()
        if session is not None:
            self._sessions[where] = (_pin(expected), session)

    def _session_for(self, where: tuple[str, int], expected: GID | None
                     ) -> SSL.Session | None:
        kept = self._sessions.get(where)
        if kept is None or expected is None or kept[0] != _pin(expected):
            return None
        return kept[1]

    def forget_sessions(self) -> None:
        """The next connection to every node is a full handshake."""
        self._sessions.clear()

    def _connect(self, where: tuple[str, int], expected: GID | None
                 ) -> defer.Deferred[HTTP11ClientProtocol]:
        ready: defer.Deferred[HTTP11ClientProtocol] = defer.Deferred()

        def idle(protocol: HTTP11ClientProtocol) -> None:
            self._idle[where] = protocol

        creator = _PinnedNode(self._context, expected, self._session_for(where, expected))
        factory = TLSMemoryBIOFactory(creator,  # type: ignore[arg-type]
                                      True, _Connect(ready, idle))  # type: ignore[arg-type]
        self.reactor.connectTCP(where[0], where[1], factory, timeout=self.timeout)
        ready.addTimeout(self.timeout, self.reactor)
        return ready

    def close(self) -> asyncio.Future[None]:
        """Drop the kept-alive connections now (in the reactor thread); the driver may await
        the answer, a future already done."""
        idle, self._idle = list(self._idle.values()), {}
        for protocol in idle:
            protocol.transport.loseConnection()  # type: ignore[union-attr,misc]
        done: asyncio.Future[None] = event_loop(self.reactor).create_future()
        done.set_result(None)
        return done


def _pin(gid: GID) -> bytes:
    """What a session is bound to: the node's URN and public key."""
    return gid.urn.encode() + b"\0" + public_key_der(gid.public_key)


def _reply(data: bytes) -> NodeReply:
    try:
        (envelope,), _ = loads(data, what="the node manager's reply",
                               max_bytes=MAX_REPLY_BYTES)
    except xmlrpc.client.Fault as fault:
        return NodeReply(code=int(fault.faultCode), message=str(fault.faultString))
    if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), dict):
        return NodeReply(code=10, message="the node manager's reply is not an envelope")
    code = int(envelope["code"].get("geni_code", 2))
    return NodeReply(value=envelope.get("value"), code=code,
                     message=str(envelope.get("output", "")))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _RETRIED):
        reasons = getattr(exc, "reasons", [])
        inner = reasons[0].value if reasons else exc
        return f"the connection failed ({type(inner).__name__}: {inner})"
    return f"{type(exc).__name__}: {exc}"
