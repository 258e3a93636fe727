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
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from OpenSSL import SSL, crypto
from twisted.internet import defer
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import ClientFactory
from twisted.internet.threads import deferToThread
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import implementer

from sfa.aggregate.nm_client import NodeCall, NodeReply
from sfa.rpc.xmlrpc_decode import loads
from sfa.server.http_client import KeptAliveHttp, NoReply, post_request
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
            target = self._target(call.url)
            body = xmlrpc.client.dumps(call.params, methodname=call.method,
                                       allow_none=True).encode()
            request = post_request(*target.where, target.path, body)
            expected = self.node_gids(call.node_urn)
            try:
                data = await self._exchange(target.where, request, expected, reuse=True)
            except _Reused:  # a kept-alive connection the node had closed: once more
                data = await self._exchange(target.where, request, expected, reuse=False)
            return _reply(data)
        except defer.TimeoutError:
            return NodeReply(reachable=False, message=f"no answer from {call.url} within "
                             f"{self.timeout:g} s")
        except Exception as exc:  # every failure is this node's reply
            return NodeReply(reachable=False, message=f"{call.url}: {_describe(exc)}")

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

    async def _exchange(self, where: tuple[str, int], request: bytes, expected: GID | None,
                        *, reuse: bool) -> bytes:
        protocol = self._idle.pop(where, None) if reuse else None
        reused = protocol is not None and protocol.idle
        if protocol is None or not protocol.idle:
            protocol = await self._connect(where, expected)
        try:
            reply = await protocol.request(request, self.timeout)
        except NoReply as closed:
            if reused:
                raise _Reused(closed.reason) from None
            raise
        if protocol.replies == 1:
            self._keep_session(where, expected, protocol)
        if reply.status != 200:
            raise ConnectionError(f"HTTP {reply.status}")
        return reply.body

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
        self.reactor.connectTCP(where[0], where[1], factory, timeout=self.timeout)
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


class _Reused(NoReply):
    """A kept-alive connection closed before the reply: the request goes once more."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, NoReply):
        return f"the connection failed ({exc})"
    return f"{type(exc).__name__}: {exc}"
