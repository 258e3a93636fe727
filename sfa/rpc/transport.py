"""XML-RPC over TLS for sfi and the slice manager: our GID as client certificate, the server
verified against the trusted roots (never an unverified connection), a timeout per call,
parallel fan-out."""

from __future__ import annotations

import http.client
import socket
import ssl
import xmlrpc.client
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit
from xml.parsers.expat import ExpatError

from cryptography import x509

from sfa.errors import (
    BadArgs,
    RpcError,
    SfaError,
    TimedOut,
    Unavailable,
    error_for_code,
)
from sfa.safexml import xml_text
from sfa.trust.gid import GID

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class TlsIdentity:
    """The certificate chain file (GID PEM) and private key file presented to servers."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class CallSettings:
    """Seconds per call and how many calls run at once."""

    timeout: float = 60.0
    parallel: int = 16


def client_context(roots_pem: str, identity: TlsIdentity | None, *,
                   check_hostname: bool = True) -> ssl.SSLContext:
    """A TLS client context that trusts exactly `roots_pem` and checks host names (node GIDs
    carry none: for node managers the chain is verified and the caller checks the GID)."""
    if not roots_pem.strip():
        raise BadArgs("no trusted roots: add your authority's root GID with "
                      "`sfi config --trusted-root FILE`")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=roots_pem)
    if identity is not None:
        context.load_cert_chain(str(identity.cert_file), str(identity.key_file))
    return context


class _TimedTransport(xmlrpc.client.SafeTransport):
    """SafeTransport whose HTTPS connections carry a timeout."""

    def __init__(self, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(context=context)
        self.tls_context = context
        self.timeout = timeout

    def parse_response(self, response: Any) -> Any:
        """The reply through the one hardened XML path first: a server (a peer's registry
        reached by a referral) may send a DTD in any encoding."""
        data = response.read()
        if response.getheader("Content-Encoding", "") == "gzip":
            data = xmlrpc.client.gzip_decode(data)
        parser, unmarshaller = self.getparser()
        parser.feed(xml_text(data, what="the server's reply"))
        parser.close()
        return unmarshaller.close()

    def make_connection(self, host: Any) -> http.client.HTTPSConnection:
        chost, self._extra_headers, _ = self.get_host_info(host)
        connection = http.client.HTTPSConnection(chost, timeout=self.timeout,
                                                 context=self.tls_context)
        self._connection = host, connection
        return connection


class RpcEndpoint:
    """One XML-RPC server; `call` raises the sfa.errors exception for any failure."""

    def __init__(self, url: str, context: ssl.SSLContext, timeout: float) -> None:
        check_url(url)
        self.url = url
        self.context = context
        self.timeout = timeout

    def _proxy(self) -> xmlrpc.client.ServerProxy:
        return xmlrpc.client.ServerProxy(
            self.url, transport=_TimedTransport(self.context, self.timeout), allow_none=True
        )

    def call(self, method: str, *params: Any) -> Any:
        try:
            return getattr(self._proxy(), method)(*params)
        except xmlrpc.client.Fault as fault:
            raise error_for_code(fault.faultCode, str(fault.faultString)) from None
        except Exception as exc:
            raise transport_error(self.url, exc) from None


class AmEndpoint(RpcEndpoint):
    """An aggregate (or slice manager): replies come in the {code, value, output} envelope."""

    def call(self, method: str, *params: Any) -> Any:
        reply = super().call(method, *params)
        return unwrap_envelope(reply, self.url, method)


def unwrap_envelope(reply: Any, url: str, method: str) -> Any:
    """The envelope's value, or the exception its GENI code names."""
    if not isinstance(reply, dict) or not isinstance(reply.get("code"), dict):
        raise RpcError(f"{url} answered {method} without the AM API envelope")
    code = reply["code"].get("geni_code", 2)
    if code != 0:
        raise error_for_code(int(code), str(reply.get("output") or f"{method} failed"))
    return reply.get("value")


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise BadArgs(f"not an https URL: {url!r:.80} (sfi never talks without TLS)")


def transport_error(url: str, exc: BaseException) -> SfaError:
    """A user-readable sfa.errors exception for a failed connection or reply."""
    if isinstance(exc, SfaError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return RpcError(
            f"{url}: the server's certificate is not trusted ({exc.verify_message}); "
            "add its authority's root with `sfi config --trusted-root FILE`"
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return TimedOut(f"{url} did not answer in time (raise it with -t SECONDS)")
    if isinstance(exc, ConnectionRefusedError):
        return Unavailable(f"{url} refused the connection; is the service running?")
    if isinstance(exc, ssl.SSLError):
        return RpcError(f"{url}: TLS failed: {getattr(exc, 'reason', None) or exc}")
    if isinstance(exc, xmlrpc.client.ProtocolError):
        return RpcError(f"{url}: HTTP {exc.errcode} {exc.errmsg}")
    if isinstance(exc, ExpatError | xmlrpc.client.ResponseError):
        return RpcError(f"{url}: the reply is not XML-RPC ({exc})")
    if isinstance(exc, OSError):
        return Unavailable(f"{url}: {exc.strerror or exc}")
    return RpcError(f"{url}: {type(exc).__name__}: {exc}")


def server_gid(url: str, context: ssl.SSLContext, timeout: float) -> GID:
    """The GID a server presents, after TLS verified it against the trusted roots."""
    check_url(url)
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    except Exception as exc:
        raise transport_error(url, exc) from None
    if not der:
        raise RpcError(f"{url} presented no certificate")
    return GID.from_certificate(x509.load_der_x509_certificate(der))


@dataclass(frozen=True)
class Outcome(Generic[T, R]):
    """One item of a fan-out: its result, or the error it raised."""

    item: T
    value: R | None = None
    error: SfaError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def fan_out(
    function: Callable[[T], R], items: Iterable[T], workers: int,
    on_done: Callable[[Outcome[T, R]], None] | None = None,
) -> list[Outcome[T, R]]:
    """Run `function` on every item, at most `workers` at once; outcomes in item order."""
    todo: Sequence[T] = list(items)

    def one(item: T) -> Outcome[T, R]:
        try:
            outcome: Outcome[T, R] = Outcome(item, value=function(item))
        except SfaError as exc:
            outcome = Outcome(item, error=exc)
        if on_done is not None:
            on_done(outcome)
        return outcome

    if len(todo) <= 1:
        return [one(item) for item in todo]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
        return list(pool.map(one, todo))
