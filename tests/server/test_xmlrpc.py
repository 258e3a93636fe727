"""The generic XML-RPC-over-TLS resource, served for real on 127.0.0.1 with a tiny service."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.threads import blockingCallFromThread

from sfa.deploy.config import LimitsConfig
from sfa.errors import GeniCode, SearchFailed
from sfa.server.envelope import EnvelopeReplies, FaultReplies
from sfa.server.listener import RunningService, start_service
from sfa.server.xmlrpc import CallContext
from tests.server.conftest import client_context, proxy

RELEASE = threading.Event()
LIMITS = LimitsConfig(max_request_bytes=20_000, max_concurrent_calls=4, idle_timeout_seconds=1)


def _echo(call: CallContext, params: tuple[Any, ...]) -> dict[str, Any]:
    peer = call.peer
    return {
        "caller": peer.urn if peer else "",
        "chain": len(peer.chain) if peer else -1,
        "params": list(params),
        "address": call.client_address,
    }


def _boom(call: CallContext, params: tuple[Any, ...]) -> None:
    raise RuntimeError("secret internal detail /etc/sfa/db")


def _missing(call: CallContext, params: tuple[Any, ...]) -> None:
    raise SearchFailed("no record plc.nobody; check the name with `sfi list plc`")


def _wait(call: CallContext, params: tuple[Any, ...]) -> bool:
    return RELEASE.wait(10)


HANDLERS = {
    "GetVersion": lambda call, params: {"interface": "tiny", "params": list(params)},
    "Echo": _echo,
    "Boom": _boom,
    "Missing": _missing,
    "Wait": _wait,
}


def _start(reactor: Any, test_pki: dict, replies: Any) -> RunningService:
    service = test_pki["service"]
    return blockingCallFromThread(
        reactor,
        lambda: start_service(
            reactor, name="tiny", handlers=HANDLERS, replies=replies, gid=service.gid,
            key=service.key, host="127.0.0.1", port=0, limits=LIMITS,
        ),
    )


@pytest.fixture(scope="module")
def tiny(reactor: Any, test_pki: dict) -> Iterator[RunningService]:
    running = _start(reactor, test_pki, FaultReplies())
    yield running
    blockingCallFromThread(reactor, running.stop)


@pytest.fixture(scope="module")
def tiny_am(reactor: Any, test_pki: dict) -> Iterator[RunningService]:
    running = _start(reactor, test_pki, EnvelopeReplies())
    yield running
    blockingCallFromThread(reactor, running.stop)


def _fault(call: Any) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as caught:
        call()
    return caught.value


def test_stock_client_verifies_server_by_ip_and_by_name(tiny: RunningService, test_pki: dict):
    root = test_pki["root"].cert_file
    assert proxy(tiny.url, root).GetVersion({}) == {"interface": "tiny", "params": [{}]}
    by_name = tiny.url.replace("127.0.0.1", "localhost")
    assert proxy(by_name, root).GetVersion({})["interface"] == "tiny"


def test_client_trusting_another_root_refuses_server(tiny: RunningService, test_pki: dict):
    with pytest.raises(ssl.SSLCertVerificationError):
        proxy(tiny.url, test_pki["stranger"].cert_file).GetVersion({})


def test_call_without_certificate_is_forbidden(tiny: RunningService, test_pki: dict):
    fault = _fault(lambda: proxy(tiny.url, test_pki["root"].cert_file).Echo(1))
    assert fault.faultCode == GeniCode.FORBIDDEN
    assert "client certificate" in fault.faultString


def test_handler_sees_client_gid_with_its_chain(tiny: RunningService, test_pki: dict):
    client = proxy(tiny.url, test_pki["root"].cert_file, test_pki["user"])
    reply = client.Echo("x", xmlrpc.client.Binary(b"\x00\x01"), None)
    assert reply["caller"] == "urn:publicid:IDN+srvtest:site+user+alice"
    assert reply["chain"] == 2  # the sub-authority and the root, as the client sent them
    assert reply["params"] == ["x", xmlrpc.client.Binary(b"\x00\x01"), None]


def test_self_signed_client_certificate_reaches_the_handler(tiny: RunningService, test_pki):
    client = proxy(tiny.url, test_pki["root"].cert_file, test_pki["stranger"])
    assert client.Echo()["caller"] == "urn:publicid:IDN+elsewhere+user+mallory"


def test_calls_on_one_proxy_reuse_the_connection(tiny: RunningService, test_pki: dict):
    client = proxy(tiny.url, test_pki["root"].cert_file, test_pki["user"])
    addresses = {client.Echo()["address"] for _ in range(5)}
    assert len(addresses) == 1


def test_sfa_error_becomes_fault_with_geni_code(tiny: RunningService, test_pki: dict):
    client = proxy(tiny.url, test_pki["root"].cert_file, test_pki["user"])
    fault = _fault(client.Missing)
    assert fault.faultCode == GeniCode.SEARCHFAILED
    assert "sfi list plc" in fault.faultString


def test_unexpected_error_is_generic_servererror(tiny: RunningService, test_pki: dict):
    client = proxy(tiny.url, test_pki["root"].cert_file, test_pki["user"])
    fault = _fault(client.Boom)
    assert fault.faultCode == GeniCode.SERVERERROR
    assert "secret" not in fault.faultString and "Traceback" not in fault.faultString
    assert client.Echo(1)["params"] == [1]


def test_unknown_method_is_unsupported(tiny: RunningService, test_pki: dict):
    client = proxy(tiny.url, test_pki["root"].cert_file, test_pki["user"])
    fault = _fault(client.DropTables)
    assert fault.faultCode == GeniCode.UNSUPPORTED
    assert "Echo" in fault.faultString


def test_too_big_request_is_refused_and_server_goes_on(tiny: RunningService, test_pki: dict):
    client = proxy(tiny.url, test_pki["root"].cert_file, test_pki["user"])
    fault = _fault(lambda: client.Echo("x" * 50_000))
    assert fault.faultCode == GeniCode.TOOBIG
    assert "20000 bytes" in fault.faultString
    assert client.Echo("small")["params"] == ["small"]


def _post(url: str, test_pki: dict, body: bytes) -> bytes:
    host, port = url.removeprefix("https://").rstrip("/").split(":")
    context = client_context(test_pki["root"].cert_file, test_pki["user"])
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        head = f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        tls.sendall(head.encode() + body)
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    return reply.split(b"\r\n\r\n", 1)[1]


def test_doctype_and_garbage_are_badargs(tiny: RunningService, test_pki: dict):
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
        b"<methodCall><methodName>Echo</methodName><params><param><value>&a;</value>"
        b"</param></params></methodCall>"
    )
    for body in (bomb, b"<methodCall><methodName>Echo", b"not xml at all"):
        with pytest.raises(xmlrpc.client.Fault) as caught:
            xmlrpc.client.loads(_post(tiny.url, test_pki, body))
        assert caught.value.faultCode == GeniCode.BADARGS


def test_envelope_style_reports_errors_in_the_envelope(tiny_am: RunningService, test_pki):
    client = proxy(tiny_am.url, test_pki["root"].cert_file, test_pki["user"])
    missing = client.Missing()
    assert missing["code"] == {"geni_code": 12, "am_type": "sfa", "am_code": 12}
    assert missing["value"] == "" and "sfi list plc" in missing["output"]
    boom = client.Boom()
    assert boom["code"]["geni_code"] == GeniCode.SERVERERROR and "secret" not in boom["output"]
    assert client.Echo(7)["value"]["params"] == [7]
    anonymous = proxy(tiny_am.url, test_pki["root"].cert_file).Echo()
    assert anonymous["code"]["geni_code"] == GeniCode.FORBIDDEN


def test_slow_call_does_not_block_others(tiny: RunningService, test_pki: dict):
    RELEASE.clear()
    slow_result: list[bool] = []
    slow = threading.Thread(
        target=lambda: slow_result.append(
            proxy(tiny.url, test_pki["root"].cert_file, test_pki["user"]).Wait()
        )
    )
    slow.start()
    try:
        started = time.perf_counter()
        assert proxy(tiny.url, test_pki["root"].cert_file).GetVersion()["interface"] == "tiny"
        assert time.perf_counter() - started < 1.0
    finally:
        RELEASE.set()
        slow.join(10)
    assert slow_result == [True]


def test_half_open_connections_do_not_block_and_time_out(tiny: RunningService, test_pki):
    host, port = tiny.url.removeprefix("https://").rstrip("/").split(":")
    stalled = []
    for index in range(8):
        raw = socket.create_connection((host, int(port)), timeout=10)
        if index % 2:
            raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a partial ClientHello
        stalled.append(raw)
    try:
        started = time.perf_counter()
        client = proxy(tiny.url, test_pki["root"].cert_file, test_pki["user"])
        assert client.Echo("through")["params"] == ["through"]
        assert time.perf_counter() - started < 1.0
        for raw in stalled:  # the idle timeout (1 s here) closes each of them
            try:
                assert raw.recv(1024) == b""
            except ConnectionResetError:
                pass
    finally:
        for raw in stalled:
            raw.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_12_and_13_clients_with_certificates(tiny: RunningService, test_pki, version):
    context = client_context(test_pki["root"].cert_file, test_pki["user"])
    context.minimum_version = context.maximum_version = version
    client: Any = xmlrpc.client.ServerProxy(tiny.url, context=context)
    assert client.Echo()["caller"] == "urn:publicid:IDN+srvtest:site+user+alice"


def test_tls_below_12_is_refused(tiny: RunningService, test_pki: dict):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(test_pki["root"].cert_file))
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with pytest.warns(DeprecationWarning):
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError) as caught:
        xmlrpc.client.ServerProxy(tiny.url, context=context).GetVersion()
    assert "PROTOCOL_VERSION" in str(caught.value)  # the server's alert, not a local refusal


@pytest.fixture(scope="module")
def tiny_deadline(reactor: Any, test_pki: dict) -> Iterator[RunningService]:
    """The tiny service with a long idle timeout and a 1 s header deadline."""
    service = test_pki["service"]
    limits = LimitsConfig(idle_timeout_seconds=60, header_timeout_seconds=1)
    running = blockingCallFromThread(
        reactor,
        lambda: start_service(
            reactor, name="tiny", handlers=HANDLERS, replies=FaultReplies(), gid=service.gid,
            key=service.key, host="127.0.0.1", port=0, limits=limits,
        ),
    )
    yield running
    blockingCallFromThread(reactor, running.stop)


def _tls(url: str, test_pki: dict) -> ssl.SSLSocket:
    host, port = url.removeprefix("https://").rstrip("/").split(":")
    context = client_context(test_pki["root"].cert_file, test_pki["user"])
    raw = socket.create_connection((host, int(port)), timeout=10)
    return context.wrap_socket(raw, server_hostname=host)


def _closed_by_server(tls: ssl.SSLSocket) -> bool:
    try:
        return tls.recv(1024) == b""
    except TimeoutError:
        return False
    except (ConnectionResetError, ssl.SSLError):
        return True


def test_31_trickled_headers_hit_the_header_deadline(tiny_deadline: RunningService,
                                                     test_pki: dict):
    """A header line every 0.2 s keeps the idle timeout (60 s) from ever firing; the header
    deadline (1 s here, 10 s by default) closes the connection all the same."""
    with _tls(tiny_deadline.url, test_pki) as tls:
        tls.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        started = time.perf_counter()
        tls.settimeout(0.2)
        closed = False
        while not closed and time.perf_counter() - started < 20:
            try:
                tls.sendall(b"X-Trickle: 1\r\n")
            except OSError:
                break  # the server already closed it
            closed = _closed_by_server(tls)
        elapsed = time.perf_counter() - started
    assert elapsed < 20, "the connection was held open"
    assert elapsed >= 0.9  # the deadline, not something sooner, closed it
    client = proxy(tiny_deadline.url, test_pki["root"].cert_file, test_pki["user"])
    assert client.Echo("next")["params"] == ["next"]


def test_31_the_header_deadline_spares_idle_kept_alive_connections(
        tiny_deadline: RunningService, test_pki: dict):
    """The deadline starts at a request's first byte: a kept-alive connection silent for longer
    than it (not longer than the idle timeout) still serves its next call."""
    body = xmlrpc.client.dumps(("again",), "Echo").encode()
    request = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
               + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    with _tls(tiny_deadline.url, test_pki) as tls:
        tls.sendall(request)
        assert b"again" in tls.recv(65536)
        tls.settimeout(1.5)  # silent for longer than the 1 s header deadline
        assert not _closed_by_server(tls)
        tls.settimeout(10)
        tls.sendall(request)
        assert b"again" in tls.recv(65536)
