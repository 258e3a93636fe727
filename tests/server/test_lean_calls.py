"""What the server does to spend less per call, over real TLS on 127.0.0.1: it keeps a
connection's client certificates (read once: renegotiation is off) and the GID of each
certificate chain, writes replies with the fast encoder (32-bit widening), renders its one
resource without traversal or banner, and writes one log line per call (no access log)."""

from __future__ import annotations

import select
import socket
import ssl
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.internet.threads import blockingCallFromThread
from twisted.logger import formatEvent, globalLogPublisher

from sfa.deploy.config import LimitsConfig
from sfa.errors import GeniCode
from sfa.server import xmlrpc as xmlrpc_module
from sfa.server.dispatch import peer_of
from sfa.server.envelope import FaultReplies
from sfa.server.listener import RunningService, start_service
from sfa.server.tls import ServerTLSContext
from sfa.server.xmlrpc import CallContext, CallPool, XmlRpcResource, XmlRpcSite
from tests.server.conftest import client_context, proxy
from tests.server.test_xmlrpc import _tls

LIMITS = LimitsConfig(max_request_bytes=20_000, max_concurrent_calls=2, idle_timeout_seconds=5)
T = TypeVar("T")
ALICE = "urn:publicid:IDN+srvtest:site+user+alice"
MALLORY = "urn:publicid:IDN+elsewhere+user+mallory"


def _whoami(call: CallContext, params: tuple[Any, ...]) -> dict[str, Any]:
    peer = call.peer
    return {"urn": peer.urn if peer else "", "chain": len(peer.chain) if peer else -1}


HANDLERS = {
    "GetVersion": lambda call, params: {"interface": "peer-test"},
    "WhoAmI": _whoami,
    "Counters": lambda call, params: {"bytes": 2**40, "list": [2**31 - 1, -(2**31) - 1]},
}


def _serving(reactor: Any, test_pki: dict, limits: LimitsConfig) -> Iterator[RunningService]:
    identity = test_pki["service"]
    running = blockingCallFromThread(
        reactor,
        lambda: start_service(
            reactor, name="peer-test", handlers=HANDLERS, replies=FaultReplies(),
            gid=identity.gid, key=identity.key, host="127.0.0.1", port=0, limits=limits,
        ),
    )
    yield running
    blockingCallFromThread(reactor, running.stop)


@pytest.fixture(scope="module")
def service(reactor: Any, test_pki: dict) -> Iterator[RunningService]:
    yield from _serving(reactor, test_pki, LIMITS)


def _value(body: bytes) -> Any:
    """The one value of an XML-RPC reply."""
    return xmlrpc.client.loads(body)[0][0]


def test_interleaved_clients_each_see_their_own_certificate(service: RunningService,
                                                             test_pki: dict):
    root = test_pki["root"].cert_file
    alice = proxy(service.url, root, test_pki["user"])
    mallory = proxy(service.url, root, test_pki["stranger"])
    anonymous = proxy(service.url, root)
    for _ in range(3):
        assert alice.WhoAmI() == {"urn": ALICE, "chain": 2}
        assert mallory.WhoAmI() == {"urn": MALLORY, "chain": 0}
        with pytest.raises(xmlrpc.client.Fault) as caught:
            anonymous.WhoAmI()
        assert caught.value.faultCode == GeniCode.FORBIDDEN
        assert anonymous.GetVersion() == {"interface": "peer-test"}


def test_certificates_are_read_once_per_connection(service: RunningService, test_pki: dict,
                                                   monkeypatch: pytest.MonkeyPatch):
    reads: list[Any] = []
    real = xmlrpc_module.peer_certificates

    def counting(transport: Any) -> tuple[x509.Certificate, ...]:
        reads.append(transport)
        return real(transport)

    monkeypatch.setattr(xmlrpc_module, "peer_certificates", counting)
    root = test_pki["root"].cert_file
    first = proxy(service.url, root, test_pki["user"])
    for _ in range(4):
        assert first.WhoAmI()["urn"] == ALICE
    assert len(reads) == 1
    second = proxy(service.url, root, test_pki["stranger"])
    assert second.WhoAmI()["urn"] == MALLORY
    assert first.WhoAmI()["urn"] == ALICE
    assert len(reads) == 2 and reads[0] is not reads[1]


def _patiently(connection: SSL.Connection, step: Callable[[], T]) -> T:
    """step() on a non-blocking connection, waiting for the socket up to 10 s."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return step()
        except (SSL.WantReadError, SSL.WantWriteError):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the server did not answer within 10 s") from None
            select.select([connection], [connection], [], min(left, 0.5))


def _tls12_client(url: str, test_pki: dict) -> SSL.Connection:
    host, port = url.removeprefix("https://").rstrip("/").split(":")
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_max_proto_version(SSL.TLS1_2_VERSION)
    context.use_certificate_chain_file(str(test_pki["user"].cert_file))
    context.use_privatekey_file(str(test_pki["user"].key_file))
    raw = socket.create_connection((host, int(port)), timeout=10)
    raw.setblocking(False)
    connection = SSL.Connection(context, raw)
    connection.set_connect_state()
    _patiently(connection, connection.do_handshake)
    return connection


def _call(connection: SSL.Connection, method: str) -> bytes:
    body = xmlrpc.client.dumps((), method).encode()
    request = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
               + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    _patiently(connection, lambda: connection.sendall(request))
    reply = b""
    while b"</methodResponse>" not in reply:
        reply += _patiently(connection, lambda: connection.recv(65536))
    return reply.split(b"\r\n\r\n", 1)[1]


def test_tls12_renegotiation_is_refused_and_the_identity_stays(service: RunningService,
                                                                test_pki: dict):
    """The certificates a connection presented are kept for its life; a client cannot swap
    them by renegotiating (TLS 1.3 has no renegotiation at all)."""
    connection = _tls12_client(service.url, test_pki)
    try:
        assert _value(_call(connection, "WhoAmI"))["urn"] == ALICE
        assert connection.renegotiate()
        with pytest.raises(SSL.Error):
            _patiently(connection, connection.do_handshake)
            _call(connection, "WhoAmI")
    finally:
        connection.close()
    assert proxy(service.url, test_pki["root"].cert_file, test_pki["user"]).WhoAmI()["urn"] \
        == ALICE  # the server goes on


def test_integers_past_32_bits_reach_the_client_as_doubles(service: RunningService,
                                                           test_pki: dict):
    client = proxy(service.url, test_pki["root"].cert_file, test_pki["user"])
    reply = client.Counters()
    assert reply == {"bytes": float(2**40), "list": [2**31 - 1, float(-(2**31) - 1)]}
    assert isinstance(reply["bytes"], float) and isinstance(reply["list"][0], int)


def test_a_chain_rebuilt_from_der_names_the_same_gid(test_pki: dict):
    """Worker processes rebuild the certificates from DER on every call: the GID (and what
    its parsing cached) is shared by the exact bytes, and other chains get their own."""
    def chain(name: str) -> tuple[x509.Certificate, ...]:
        gid = test_pki[name].gid
        return tuple(x509.load_der_x509_certificate(cert.public_bytes(Encoding.DER))
                     for cert in (gid.certificate, *gid.chain))

    alice, caller = peer_of(chain("user"))
    assert alice is not None and caller == ALICE and len(alice.chain) == 2
    assert peer_of(chain("user"))[0] is alice
    assert peer_of(chain("user")[:1])[0] is not alice  # the leaf alone is another chain
    assert peer_of(chain("stranger"))[1] == "self-signed"
    assert peer_of(()) == (None, "-")


def _raw(url: str, test_pki: dict, request: bytes) -> tuple[bytes, bytes]:
    """(status line and headers, body) of one request on its own TLS connection."""
    host, port = url.removeprefix("https://").rstrip("/").split(":")
    context = client_context(test_pki["root"].cert_file, test_pki["user"])
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(request)
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return head, body


def _post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def test_replies_carry_a_date_and_no_server_banner(service: RunningService, test_pki: dict):
    head, body = _raw(service.url, test_pki, _post("/", xmlrpc.client.dumps((), "WhoAmI").encode()))
    lines = head.lower().split(b"\r\n")
    assert lines[0] == b"http/1.1 200 ok"
    assert not [line for line in lines if line.startswith(b"server:")]
    assert [line for line in lines if line.startswith(b"date:")]
    assert _value(body)["urn"] == ALICE


def test_every_path_is_the_endpoint_and_get_is_not_allowed(service: RunningService,
                                                           test_pki: dict):
    call = xmlrpc.client.dumps((), "WhoAmI").encode()
    assert _value(_raw(service.url, test_pki, _post("/RPC2/x", call))[1]) \
        == {"urn": ALICE, "chain": 2}
    head, body = _raw(service.url, test_pki,
                      b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405 ")
    assert b"\r\nallow: post" in head.lower()
    assert b"POST XML-RPC calls here" in body


def test_one_log_line_per_call_and_no_access_log(service: RunningService, test_pki: dict):
    events: list[dict[str, Any]] = []
    observer: Any = events.append
    globalLogPublisher.addObserver(observer)
    try:
        client = proxy(service.url, test_pki["root"].cert_file, test_pki["user"])
        assert client.WhoAmI()["urn"] == ALICE
    finally:
        globalLogPublisher.removeObserver(observer)
    texts = [formatEvent(event) for event in events]
    calls = [text for text in texts if text.startswith("peer-test WhoAmI")]
    assert len(calls) == 1 and f"caller={ALICE} code=0" in calls[0]
    assert not [text for text in texts if '"POST / HTTP/1.1"' in text]


def test_constant_replies_are_kept_by_the_exact_body(reactor: Any, test_pki: dict):
    """A method whose reply never changes (the AM's GetVersion) runs once per distinct request
    body; other methods, and other bodies, still reach their handlers."""
    runs: list[str] = []

    def version(call: CallContext, params: tuple[Any, ...]) -> dict[str, Any]:
        runs.append("GetVersion")
        return {"api": 3, "params": list(params)}

    def whoami(call: CallContext, params: tuple[Any, ...]) -> dict[str, Any]:
        runs.append("WhoAmI")
        return _whoami(call, params)

    identity = test_pki["service"]

    def listen() -> Any:
        pool = CallPool(reactor, 2, name="constant-test")
        root = XmlRpcResource(service="constant-test", replies=FaultReplies(), pool=pool,
                              handlers={"GetVersion": version, "WhoAmI": whoami},
                              constant_methods=frozenset({"GetVersion"}))
        site = XmlRpcSite(root, max_request_bytes=20_000, idle_timeout=5)
        return pool, site, reactor.listenSSL(
            0, site, ServerTLSContext(identity.gid, identity.key), interface="127.0.0.1")

    pool, site, port = blockingCallFromThread(reactor, listen)
    try:
        client = proxy(f"https://127.0.0.1:{port.getHost().port}/", test_pki["root"].cert_file,
                       test_pki["user"])
        assert client.GetVersion() == client.GetVersion() == {"api": 3, "params": []}
        assert client.GetVersion({"x": 1}) == {"api": 3, "params": [{"x": 1}]}
        assert client.GetVersion({"x": 1})["params"] == [{"x": 1}]
        assert client.WhoAmI()["urn"] == client.WhoAmI()["urn"] == ALICE
        assert runs == ["GetVersion", "GetVersion", "WhoAmI", "WhoAmI"]
    finally:
        blockingCallFromThread(reactor, port.stopListening)
        blockingCallFromThread(reactor, pool.stop)
        blockingCallFromThread(reactor, site.close_connections)


@pytest.fixture(scope="module")
def deadline_service(reactor: Any, test_pki: dict) -> Iterator[RunningService]:
    """The test service with a long idle timeout and a 1 s header deadline."""
    yield from _serving(reactor, test_pki,
                        LimitsConfig(idle_timeout_seconds=60, header_timeout_seconds=1))


def _reply(tls: ssl.SSLSocket) -> bytes:
    reply = b""
    while b"</methodResponse>" not in reply:
        chunk = tls.recv(65536)
        assert chunk, "the server closed the connection"
        reply += chunk
    return reply


def _closed_within(tls: ssl.SSLSocket, seconds: float) -> float | None:
    """Seconds until the server closed the connection, None if it stayed open that long."""
    started = time.monotonic()
    tls.settimeout(seconds)
    try:
        data = tls.recv(1024)
    except TimeoutError:
        return None
    except (ConnectionResetError, ssl.SSLError):
        return time.monotonic() - started
    assert data == b"", data
    return time.monotonic() - started


WHOAMI = xmlrpc.client.dumps((), "WhoAmI").encode()
HEAD = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
        + f"Content-Length: {len(WHOAMI)}\r\n".encode())


def test_a_head_in_two_reads_within_the_deadline_is_served(deadline_service: RunningService,
                                                            test_pki: dict):
    with _tls(deadline_service.url, test_pki) as tls:
        tls.sendall(HEAD[:20])
        assert _closed_within(tls, 0.4) is None
        tls.settimeout(10)
        tls.sendall(HEAD[20:] + b"\r\n" + WHOAMI)
        assert ALICE.encode() in _reply(tls)


def test_a_head_left_unfinished_after_a_served_call_hits_the_deadline(
        deadline_service: RunningService, test_pki: dict):
    """A whole request and the start of the next in one write: the second head, never
    finished, is cut off by the deadline (1 s), long before the idle timeout (60 s)."""
    with _tls(deadline_service.url, test_pki) as tls:
        tls.sendall(HEAD + b"\r\n" + WHOAMI + HEAD[:30])
        assert ALICE.encode() in _reply(tls)
        closed_after = _closed_within(tls, 20)
    assert closed_after is not None and closed_after < 20
    assert proxy(deadline_service.url, test_pki["root"].cert_file, test_pki["user"]).WhoAmI()[
        "urn"] == ALICE
