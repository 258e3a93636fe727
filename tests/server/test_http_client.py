"""The node client's lean HTTP/1.1 connection: replies framed every way HTTP allows, bounded,
and over real TLS to a node that misbehaves (closes a kept-alive connection, answers HTTP
errors, chunks, stalls, stops mid-reply), every failure one NodeReply."""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import blockingCallFromThread
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from sfa.aggregate.nm_client import NodeCall, NodeReply
from sfa.server import nm_transport
from sfa.server.http_client import (
    HttpReply,
    HttpReplyError,
    KeptAliveHttp,
    NoReply,
    ReplyReader,
    post_request,
)
from sfa.server.nm_transport import TwistedNodeClient
from sfa.server.tls import ServerTLSContext
from sfa.trust.gid import GID, create_gid

# ---- the reply reader, byte by byte ----

XML = xmlrpc.client.dumps(({"code": {"geni_code": 0}, "value": "pong", "output": ""},),
                          methodresponse=True).encode()


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(body: bytes, size: int = 100) -> bytes:
    parts = [b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
             for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\nX-Trailer: t\r\n\r\n"


def read(data: bytes, *, max_body: int = 1 << 20, step: int = 0) -> HttpReply | None:
    """The reply of `data` fed at once (step 0) or `step` bytes at a time."""
    reader = ReplyReader(max_body)
    pieces = [data] if not step else [data[i:i + step] for i in range(0, len(data), step)]
    reply = None
    for number, piece in enumerate(pieces):
        reply = reader.feed(piece)
        assert reply is None or number == len(pieces) - 1
    return reply


FRAMINGS = {
    "content-length": head("HTTP/1.1 200 OK", f"Content-Length: {len(XML)}") + XML,
    "chunked": head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked") + chunked(XML),
    "after a 100 Continue": head("HTTP/1.1 100 Continue") + head(
        "HTTP/1.1 200 OK", f"content-length: {len(XML)}") + XML,
}


@pytest.mark.parametrize("name", list(FRAMINGS))
@pytest.mark.parametrize("step", [0, 1, 7])
def test_replies_are_read_however_they_are_framed_and_cut(name: str, step: int) -> None:
    assert read(FRAMINGS[name], step=step) == HttpReply(200, XML, keep_alive=True)


def test_a_reply_without_length_runs_until_the_connection_closes() -> None:
    reader = ReplyReader(1000)
    assert reader.feed(head("HTTP/1.0 200 OK") + b"<a/>") is None
    assert reader.feed(b"<b/>") is None
    assert reader.closed() == HttpReply(200, b"<a/><b/>", keep_alive=False)


@pytest.mark.parametrize("lines, keep", [
    (("HTTP/1.1 200 OK", "Connection: close"), False),
    (("HTTP/1.1 200 OK", "Connection: Keep-Alive, Close"), False),
    (("HTTP/1.0 200 OK",), False),
    (("HTTP/1.0 200 OK", "Connection: keep-alive"), True),
])
def test_keep_alive_follows_the_version_and_connection_header(lines: tuple[str, ...],
                                                              keep: bool) -> None:
    reply = read(head(*lines, "Content-Length: 2") + b"ok")
    assert reply is not None and reply.keep_alive == keep


def test_an_error_status_is_a_reply_and_a_204_has_no_body() -> None:
    assert read(head("HTTP/1.1 500 Internal", "Content-Length: 4") + b"oops") == HttpReply(
        500, b"oops", True)
    assert read(head("HTTP/1.1 204 No Content")) == HttpReply(204, b"", True)


BAD = {
    "not HTTP": (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x reply"),
    "bad status": (head("HTTP/1.1 2x0 OK"), "not an HTTP/1.x reply"),
    "bad header": (head("HTTP/1.1 200 OK", "no colon here"), "malformed header"),
    "space before colon": (head("HTTP/1.1 200 OK", "Content-Length : 2"), "malformed header"),
    "bad length": (head("HTTP/1.1 200 OK", "Content-Length: -1"), "bad Content-Length"),
    "two lengths": (head("HTTP/1.1 200 OK", "Content-Length: 1", "Content-Length: 2"),
                    "two different Content-Length"),
    "too long by length": (head("HTTP/1.1 200 OK", "Content-Length: 101"), "too big"),
    "too long by chunks": (head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked")
                           + chunked(b"x" * 101, 60), "too big"),
    "too long until close": (head("HTTP/1.1 200 OK") + b"x" * 101, "too big"),
    "more than the length": (head("HTTP/1.1 200 OK", "Content-Length: 1") + b"12",
                             "more bytes than"),
    "bad chunk size": (head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked") + b"zz\r\n",
                       "bad chunk size"),
    "chunk without CRLF": (head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked")
                           + b"2\r\nokXX", "does not end with CRLF"),
    "gzip": (head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip"), "unsupported"),
    "endless header": (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20000, "header is too big"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_what_is_not_a_good_reply_is_refused(name: str) -> None:
    data, message = BAD[name]
    with pytest.raises(HttpReplyError, match=message):
        read(data, max_body=100)


def test_a_reply_cut_short_is_an_error_when_the_connection_closes() -> None:
    reader = ReplyReader(1000)
    reader.feed(head("HTTP/1.1 200 OK", "Content-Length: 10") + b"12345")
    with pytest.raises(HttpReplyError, match="middle of the reply"):
        reader.closed()


def test_the_request_is_one_post_with_its_length() -> None:
    assert post_request("127.0.0.1", 8443, "/", b"<x/>") == (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nContent-Type: text/xml\r\n"
        b"Content-Length: 4\r\n\r\n<x/>")


def test_a_request_on_a_connection_already_closed_fails_as_no_reply(reactor: Any) -> None:
    """The connection closed between being made (or kept) and the request: the caller may
    retry, as for a connection closed before any byte of the reply."""
    from twisted.internet.testing import StringTransport  # noqa: PLC0415

    ready: defer.Deferred[KeptAliveHttp] = defer.Deferred()
    connection = KeptAliveHttp(reactor, ready, max_body=100)
    connection.makeConnection(StringTransport())
    assert connection.idle and ready.called
    connection.connectionLost(Failure(ConnectionResetError()))
    failed = connection.request(b"POST / HTTP/1.1\r\n\r\n", 1.0)
    failures: list[Failure] = []
    failed.addErrback(failures.append)
    assert failures and failures[0].check(NoReply)


# ---- over real TLS, to a node that misbehaves as told ----

OK_REPLY = head("HTTP/1.1 200 OK", f"Content-Length: {len(XML)}") + XML
Script = Callable[["ScriptedNode", int], None]


@dataclass
class Node:
    """A TLS server with a node's GID; `script(connection, number)` answers the number-th
    request (from 0) on each connection."""

    script: Script
    connections: int = 0
    requests: list[int] = field(default_factory=list)


class ScriptedNode(Protocol):
    transport: Any

    def __init__(self, node: Node) -> None:
        self.node, self.buffer, self.count = node, b"", 0
        self.last_body = b""

    def connectionMade(self) -> None:
        self.node.connections += 1

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            top, rest = self.buffer.split(b"\r\n\r\n", 1)
            length = int(top.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(rest) < length:
                return
            self.buffer, self.last_body = rest[length:], rest[:length]
            self.node.requests.append(self.count)
            self.node.script(self, self.count)
            self.count += 1


@dataclass
class Pki:
    root: GID
    node: GID
    node_key: RSAPrivateKey
    aggregate: GID
    aggregate_key: RSAPrivateKey


@pytest.fixture(scope="module")
def pki(keys: list[RSAPrivateKey]) -> Pki:
    root_key, node_key, aggregate_key, _ = keys
    root = create_gid(urn="urn:publicid:IDN+w16a+authority+sa",
                      public_key=root_key.public_key(), issuer_key=root_key, is_ca=True)
    node = create_gid(urn="urn:publicid:IDN+w16a+node+n1", public_key=node_key.public_key(),
                      issuer_key=root_key, issuer=root)
    aggregate = create_gid(urn="urn:publicid:IDN+w16a+authority+am",
                           public_key=aggregate_key.public_key(), issuer_key=root_key,
                           issuer=root)
    return Pki(root, node, node_key, aggregate, aggregate_key)


@dataclass
class Served:
    node: Node
    url: str
    client: TwistedNodeClient


@pytest.fixture
def serve(reactor: Any, pki: Pki) -> Iterator[Callable[[Script], Served]]:
    ports: list[Any] = []
    clients: list[TwistedNodeClient] = []

    def start(script: Script) -> Served:
        node = Node(script)
        factory = TLSMemoryBIOFactory(cast(Any, ServerTLSContext(pki.node, pki.node_key)),
                                      False,
                                      cast(Any, Factory.forProtocol(lambda: ScriptedNode(node))))
        port = blockingCallFromThread(
            reactor, lambda: reactor.listenTCP(0, factory, interface="127.0.0.1"))
        ports.append(port)
        client = TwistedNodeClient(reactor, gid=pki.aggregate, key=pki.aggregate_key,
                                   roots=[pki.root], node_gids=lambda urn: pki.node,
                                   timeout=10.0)
        clients.append(client)
        return Served(node, f"https://127.0.0.1:{port.getHost().port}/", client)

    yield start
    for client in clients:
        blockingCallFromThread(reactor, client.close)
    for port in ports:
        blockingCallFromThread(reactor, port.stopListening)


def call(reactor: Any, served: Served) -> NodeReply:
    node_call = NodeCall("urn:publicid:IDN+w16a+node+n1", served.url, "GetVersion", ())

    def start() -> defer.Deferred[NodeReply]:
        return defer.Deferred.fromCoroutine(served.client.call(node_call))

    return cast(NodeReply, blockingCallFromThread(reactor, cast(Any, start)))


def answer(data: bytes) -> Script:
    def script(connection: ScriptedNode, number: int) -> None:
        connection.transport.write(data)
    return script


def test_kept_alive_calls_share_one_connection(reactor: Any, serve: Any) -> None:
    served = serve(answer(OK_REPLY))
    for _ in range(3):
        assert call(reactor, served) == NodeReply(value="pong", code=0, message="")
    assert served.node.connections == 1 and served.node.requests == [0, 1, 2]


def test_a_chunked_reply_is_read(reactor: Any, serve: Any) -> None:
    served = serve(answer(FRAMINGS["chunked"]))
    assert call(reactor, served).value == "pong"
    assert call(reactor, served).value == "pong"
    assert served.node.connections == 1


def test_a_connection_the_node_closed_between_calls_is_replaced(reactor: Any,
                                                                serve: Any) -> None:
    def close_after_each(connection: ScriptedNode, number: int) -> None:
        connection.transport.write(OK_REPLY)
        connection.transport.loseConnection()

    served = serve(close_after_each)
    assert call(reactor, served).ok
    assert call(reactor, served).ok  # the kept connection was closed: a new one
    assert served.node.connections == 2


def test_a_kept_connection_that_dies_without_reply_is_retried_on_a_new_one(
        reactor: Any, serve: Any) -> None:
    def drop_the_second(connection: ScriptedNode, number: int) -> None:
        if number == 1:  # the request arrived; the node goes away without a word
            connection.transport.abortConnection()
        else:
            connection.transport.write(OK_REPLY)

    served = serve(drop_the_second)
    assert call(reactor, served).ok and call(reactor, served).ok
    assert served.node.connections == 2 and served.node.requests == [0, 1, 0]


def test_a_new_connection_that_dies_without_reply_is_not_retried(reactor: Any,
                                                                 serve: Any) -> None:
    def drop(connection: ScriptedNode, number: int) -> None:
        connection.transport.abortConnection()

    served = serve(drop)
    reply = call(reactor, served)
    assert not reply.reachable and "the connection failed" in reply.message
    assert served.node.connections == 1


def test_connection_close_in_the_reply_means_a_new_connection_next(reactor: Any,
                                                                  serve: Any) -> None:
    served = serve(answer(head("HTTP/1.1 200 OK", "Connection: close",
                               f"Content-Length: {len(XML)}") + XML))
    assert call(reactor, served).ok and call(reactor, served).ok
    assert served.node.connections == 2


def test_an_http_error_is_the_node_reply(reactor: Any, serve: Any) -> None:
    served = serve(answer(head("HTTP/1.1 503 Busy", "Content-Length: 4") + b"busy"))
    reply = call(reactor, served)
    assert not reply.reachable and reply.message.endswith("HTTP 503")
    assert call(reactor, served).message.endswith("HTTP 503")  # the connection was kept
    assert served.node.connections == 1


def test_a_reply_over_the_bound_is_refused(reactor: Any, serve: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nm_transport, "MAX_REPLY_BYTES", len(XML) - 1)
    served = serve(answer(OK_REPLY))
    reply = call(reactor, served)
    assert not reply.reachable and "too big" in reply.message
    monkeypatch.setattr(nm_transport, "MAX_REPLY_BYTES", len(XML))
    assert call(reactor, served).ok  # a new connection; the refused one was dropped
    assert served.node.connections == 2


def test_a_reply_cut_off_by_the_node_is_an_error(reactor: Any, serve: Any) -> None:
    def half(connection: ScriptedNode, number: int) -> None:
        connection.transport.write(OK_REPLY[:len(OK_REPLY) // 2])
        connection.transport.loseConnection()

    reply = call(reactor, serve(half))
    assert not reply.reachable and "middle of the reply" in reply.message


def test_a_silent_node_times_out_with_one_deadline(reactor: Any, serve: Any) -> None:
    served = serve(lambda connection, number: None)
    served.client.timeout = 0.5
    reply = call(reactor, served)
    assert not reply.reachable and "no answer from" in reply.message
    assert "within 0.5 s" in reply.message
    assert not served.client._idle  # the stalled connection is not kept


def test_a_reply_that_is_not_xml_rpc_is_the_node_reply(reactor: Any, serve: Any) -> None:
    body = b"<html>oops</html>"
    served = serve(answer(head("HTTP/1.1 200 OK", f"Content-Length: {len(body)}") + body))
    reply = call(reactor, served)
    assert not reply.reachable and "not an XML-RPC call or response" in reply.message


# ---- many calls at once: the queue, and requests sent at once ----

def call_many(reactor: Any, served: Served, calls: list[NodeCall]) -> list[NodeReply]:
    def start() -> defer.Deferred[list[NodeReply]]:
        return defer.Deferred.fromFuture(served.client.call_many(calls))

    return cast(list[NodeReply], blockingCallFromThread(reactor, cast(Any, start)))


def get_version(url: str) -> NodeCall:
    return NodeCall("urn:publicid:IDN+w16a+node+n1", url, "GetVersion", ())


def test_calls_of_overlapping_call_many_share_one_bound_and_keep_their_order(
        reactor: Any, serve: Any) -> None:
    in_flight, most = [0], [0]

    def later(connection: ScriptedNode, number: int) -> None:
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])

        def reply() -> None:
            in_flight[0] -= 1
            connection.transport.write(OK_REPLY)
        reactor.callLater(0.02, reply)

    served = serve(later)
    served.client.parallelism = 3
    bad = NodeCall("urn:publicid:IDN+w16a+node+n1", "http://plain/", "GetVersion", ())

    def start() -> defer.Deferred[list[list[NodeReply]]]:
        first = served.client.call_many([get_version(served.url)] * 5 + [bad])
        second = served.client.call_many([bad] + [get_version(served.url)] * 5)
        return defer.gatherResults([defer.Deferred.fromFuture(first),
                                    defer.Deferred.fromFuture(second)])

    first, second = blockingCallFromThread(reactor, cast(Any, start))
    assert [r.ok for r in first] == [True] * 5 + [False]
    assert [r.ok for r in second] == [False] + [True] * 5
    assert "not an https URL" in first[5].message
    assert most[0] == 3 and len(served.node.requests) == 10


def test_no_calls_is_no_replies_and_calls_failing_at_once_do_not_nest(reactor: Any,
                                                                      serve: Any) -> None:
    served = serve(answer(OK_REPLY))
    assert call_many(reactor, served, []) == []
    served.client.parallelism = 1
    bad = [NodeCall("urn:publicid:IDN+w16a+node+n1", f"ftp://n{i}/", "GetVersion", ())
           for i in range(5000)]  # each ends before the next starts: no recursion
    replies = call_many(reactor, served, [*bad, get_version(served.url)])
    assert [r.reachable for r in replies] == [False] * 5000 + [True]
    assert replies[1234].message.startswith("ftp://n1234/")


def test_a_request_leaves_at_once_and_a_long_one_arrives_whole(reactor: Any,
                                                               serve: Any) -> None:
    bodies: list[bytes] = []

    def keep(connection: ScriptedNode, number: int) -> None:
        bodies.append(connection.last_body)
        connection.transport.write(OK_REPLY)

    served = serve(keep)
    assert call(reactor, served).ok
    (protocol,) = served.client._idle.values()
    tcp = protocol.transport.transport
    assert isinstance(tcp, nm_transport._SendAtOnce)

    def ask() -> tuple[bool, defer.Deferred[HttpReply]]:
        asked = protocol.request(post_request("127.0.0.1", 1, "/", b"<small/>"), 10.0)
        return not (tcp.dataBuffer or tcp._tempDataBuffer), asked

    queued_nothing, asked = blockingCallFromThread(reactor, ask)
    assert queued_nothing  # sent before the reactor's next iteration
    waited: Any = asked
    blockingCallFromThread(reactor, lambda: waited)
    big = "x" * 8_000_000  # more than the socket takes at once: the rest is queued, in order
    long_call = NodeCall("urn:publicid:IDN+w16a+node+n1", served.url, "Echo", (big,))
    assert call_many(reactor, served, [long_call])[0].ok
    assert xmlrpc.client.loads(bodies[-1])[0] == (big,)
