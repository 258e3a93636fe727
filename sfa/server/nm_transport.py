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
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from OpenSSL import SSL, crypto
from twisted.internet import defer, tcp
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import ClientFactory
from twisted.internet.threads import deferToThread
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from sfa.aggregate.nm_client import NodeCall, NodeReply
from sfa.rpc.xmlrpc_decode import loads
from sfa.server.http_client import HttpReply, KeptAliveHttp, NoReply, post_request
from sfa.server.reactor import event_loop
from sfa.trust.gid import GID
from sfa.trust.keys import public_key_der
from sfa.xrn import same_name

T = TypeVar("T")
MAX_REPLY_BYTES = 20_000_000
MAX_KNOWN_URLS = 100_000  # parsed node URLs kept (one per node manager)


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


class _Connect(ClientFactory):
    def __init__(self, reactor: Any, ready: defer.Deferred[KeptAliveHttp],
                 idle: Callable[[KeptAliveHttp], None]) -> None:
        self.reactor = reactor
        self.ready = ready
        self.idle = idle

    def buildProtocol(self, addr: Any) -> KeptAliveHttp:
        return KeptAliveHttp(self.reactor, self.ready, max_body=MAX_REPLY_BYTES,
                             on_idle=self.idle)

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        if not self.ready.called:
            self.ready.errback(reason)


class _SendAtOnce(tcp.Client):
    """A TCP client transport that sends a write at once when nothing is queued before it.

    Twisted's transport queues every write and sends it on the next reactor iteration, after
    registering for writability and before unregistering: two epoll changes and an iteration
    per request. A request is one write, so it usually leaves at once here; what the socket
    does not take (or any write behind queued bytes) goes the usual way, in order."""

    def write(self, data: bytes) -> None:
        if data and self.connected and not (self.disconnecting or self._writeDisconnected
                                            or self.dataBuffer or self._tempDataBuffer):
            sent = self.writeSomeData(data)
            if isinstance(sent, int):  # else the connection is lost: the queue finds out
                data = data[sent:]
        if data:
            super().write(data)


class _Connector(tcp.Connector):
    def _makeTransport(self) -> tcp.Client:
        return _SendAtOnce(self.host, self.port, self.bindAddress, self, self.reactor)


class _TlsFactory(TLSMemoryBIOFactory):
    """TLS without Twisted's write aggregation: a request is one write already, and the
    aggregation would cost a timer and a reactor iteration per call."""

    protocol = TLSMemoryBIOProtocol


@dataclass(frozen=True)
class _Target:
    """A node manager's URL, parsed once."""

    where: tuple[str, int]
    path: str


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
        self._idle: dict[tuple[str, int], KeptAliveHttp] = {}
        self._targets: dict[str, _Target] = {}
        self._sessions: dict[tuple[str, int], tuple[bytes, SSL.Session]] = {}
        self._queue: deque[tuple[NodeCall, Callable[[NodeReply], None]]] = deque()
        self._in_flight = 0
        self._pumping = False

    def in_thread(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return deferToThread(function, *args).asFuture(event_loop(self.reactor))

    def call_many(self, calls: Sequence[NodeCall]) -> asyncio.Future[list[NodeReply]]:
        """Every call, at most `parallelism` at a time (over all call_many in flight); one
        NodeReply each, in order. In the reactor thread."""
        done: asyncio.Future[list[NodeReply]] = event_loop(self.reactor).create_future()
        replies: list[NodeReply] = [_NOT_YET] * len(calls)
        left = [len(calls)]

        def answer(index: int, reply: NodeReply) -> None:
            replies[index] = reply
            left[0] -= 1
            if not left[0] and not done.done():
                done.set_result(replies)

        if not calls:
            done.set_result([])
        self._queue.extend((call, partial(answer, index)) for index, call in enumerate(calls))
        self._pump()
        return done

    def _pump(self) -> None:
        """Start queued calls while fewer than `parallelism` are in flight (read each time:
        a change applies to the calls not started yet)."""
        if self._pumping:  # a call that ended at once, inside this loop
            return
        self._pumping = True
        try:
            while self._queue and self._in_flight < max(1, self.parallelism):
                call, answer = self._queue.popleft()
                self._in_flight += 1
                self._start(call, partial(self._ended, answer))
        finally:
            self._pumping = False

    def _ended(self, answer: Callable[[NodeReply], None], reply: NodeReply) -> None:
        self._in_flight -= 1
        try:
            answer(reply)
        finally:
            self._pump()

    async def call(self, call: NodeCall) -> NodeReply:
        """One call, outside the parallelism limit; failures become NodeReplies (never
        raises)."""
        replied: defer.Deferred[NodeReply] = defer.Deferred()
        self._start(call, replied.callback)
        return await replied

    def _start(self, call: NodeCall, finish: Callable[[NodeReply], None]) -> None:
        """Send one call; `finish` hears its NodeReply exactly once."""
        try:
            target = self._target(call.url)
            body = xmlrpc.client.dumps(call.params, methodname=call.method,
                                       allow_none=True).encode()
            request = post_request(*target.where, target.path, body)
            expected = self.node_gids(call.node_urn)
        except Exception as exc:  # every failure is this node's reply
            finish(_failed_reply(call.url, exc))
            return
        _Exchange(self, call.url, target.where, request=request, expected=expected,
                  finish=finish).send(reuse=True)

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname:
                raise ValueError(f"not an https URL: {url!r}")
            target = _Target((parts.hostname, parts.port or 443), parts.path or "/")
            if len(self._targets) < MAX_KNOWN_URLS:
                self._targets[url] = target
        return target

    def _keep_session(self, where: tuple[str, int], expected: GID | None,
                      protocol: KeptAliveHttp) -> None:
        """Remember the TLS session of a connection that answered for the first time, for the
        next connection to the same address and pinned node (TLS 1.3 tickets arrive after the
        handshake, before the first reply)."""
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
                 ) -> defer.Deferred[KeptAliveHttp]:
        ready: defer.Deferred[KeptAliveHttp] = defer.Deferred()

        def idle(protocol: KeptAliveHttp) -> None:
            self._idle[where] = protocol

        creator = _PinnedNode(self._context, expected, self._session_for(where, expected))
        factory = _TlsFactory(creator,  # type: ignore[arg-type]
                              True, _Connect(self.reactor, ready, idle))  # type: ignore[arg-type]
        _Connector(where[0], where[1], factory, self.timeout, None, self.reactor).connect()
        ready.addTimeout(self.timeout, self.reactor)
        return ready

    def close(self) -> asyncio.Future[None]:
        """Drop the kept-alive connections now (in the reactor thread); the driver may await
        the answer, a future already done."""
        idle, self._idle = list(self._idle.values()), {}
        for protocol in idle:
            protocol.transport.loseConnection()
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


class _Exchange:
    """One call on the wire: on the node's kept-alive connection or a new one; a request
    that a kept connection closed before any reply byte goes once more on a new connection;
    the reply checked and decoded. Callbacks only (no coroutine or Deferred chain per call)."""

    def __init__(self, client: TwistedNodeClient, url: str, where: tuple[str, int], *,
                 request: bytes, expected: GID | None,
                 finish: Callable[[NodeReply], None]) -> None:
        self.client, self.url, self.where = client, url, where
        self.request, self.expected, self.finish = request, expected, finish
        self.reused = False
        self.protocol: KeptAliveHttp | None = None

    def send(self, *, reuse: bool) -> None:
        protocol = self.client._idle.pop(self.where, None) if reuse else None
        self.reused = protocol is not None and protocol.idle
        if protocol is not None and protocol.idle:
            self._ask(protocol)
        else:
            self.client._connect(self.where, self.expected).addCallbacks(self._ask,
                                                                         self._failed)

    def _ask(self, protocol: KeptAliveHttp) -> None:
        self.protocol = protocol
        try:
            asked = protocol.request(self.request, self.client.timeout)
        except Exception:  # a bug here is still this node's reply
            self._failed(Failure())
            return
        asked.addCallbacks(self._replied, self._failed)

    def _replied(self, reply: HttpReply) -> None:
        try:
            if self.protocol is not None and self.protocol.replies == 1:
                self.client._keep_session(self.where, self.expected, self.protocol)
            if reply.status != 200:
                raise ConnectionError(f"HTTP {reply.status}")
            answer = _reply(reply.body)
        except Exception as exc:  # every failure is this node's reply
            answer = _failed_reply(self.url, exc)
        self.finish(answer)

    def _failed(self, failure: Failure) -> None:
        error = failure.value or ConnectionError("failed")
        if isinstance(error, NoReply) and self.reused:  # closed while kept: once more
            self.send(reuse=False)
            return
        if isinstance(error, defer.TimeoutError):
            self.finish(NodeReply(reachable=False, message=f"no answer from {self.url} "
                                  f"within {self.client.timeout:g} s"))
            return
        self.finish(_failed_reply(self.url, error))


_NOT_YET = NodeReply(reachable=False, message="not answered")  # a slot call_many fills


def _failed_reply(url: str, exc: BaseException) -> NodeReply:
    """The reply of a call that failed on the way: the node counts as unreachable."""
    return NodeReply(reachable=False, message=f"{url}: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, NoReply):
        return f"the connection failed ({exc})"
    return f"{type(exc).__name__}: {exc}"
