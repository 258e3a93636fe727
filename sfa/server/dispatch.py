"""One XML-RPC call from request bytes to reply bytes: parse, admit, run the handler, marshal.

Pure Python with no Twisted: it runs in a pool thread or in a worker process, never on the
reactor thread.
"""

from __future__ import annotations

import functools
import xmlrpc.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from twisted.logger import Logger

from sfa.errors import BadArgs, Forbidden, ServerError, SfaError, Unsupported
from sfa.rpc.xmlrpc_decode import loads
from sfa.rpc.xmlrpc_encode import method_response
from sfa.server.envelope import GENERIC_SERVER_ERROR, Envelope, ReplyStyle
from sfa.server.tls import gid_from_certificates
from sfa.trust.gid import GID

log = Logger(namespace="sfa.server")

ANONYMOUS_METHODS = frozenset({"GetVersion"})
# Arrays and structs in one call nest at most this deep; handlers recurse over them.
MAX_PARAM_DEPTH = 32
# The site bounds a request's size ([limits] max_request_bytes) before it gets here.
MAX_CALL_BYTES = 1 << 31
# distinct client certificate chains whose GID and log name are kept (a few per peer)
PEER_CACHE_SIZE = 256


@dataclass(frozen=True)
class CallContext:
    """What a handler knows about its call: the method and the TLS client certificate.

    `peer` is the certificate as presented (with the chain the client sent) and is NOT yet
    verified: a handler that needs an identity passes it to `sfa.trust.verify.verify_caller`.
    A handler that verified who called appends that URN to `identified` for the call log.
    """

    method: str
    peer: GID | None
    client_address: str
    identified: list[str] = field(default_factory=list, compare=False)


Handler = Callable[[CallContext, tuple[Any, ...]], Any]


@dataclass(frozen=True)
class CallOutcome:
    """The marshalled reply and what the call log needs."""

    body: bytes
    code: int
    caller: str = "-"
    method: str = "?"


class Dispatcher:
    """Routes calls of one service to its handlers and puts the replies in its style."""

    def __init__(
        self,
        *,
        service: str,
        handlers: Mapping[str, Handler],
        replies: ReplyStyle,
        anonymous_methods: frozenset[str] = ANONYMOUS_METHODS,
    ) -> None:
        self.service = service
        self.handlers = dict(handlers)
        self.replies = replies
        self.anonymous_methods = anonymous_methods

    def handle(
        self, data: bytes, certificates: tuple[x509.Certificate, ...], address: str
    ) -> CallOutcome:
        """The reply to one request body from a client that sent `certificates`."""
        method, caller = "?", "-"
        try:
            params, method = parse_call(data)
            self._admit(method, certificates)
            peer, caller = peer_of(certificates)
            context = CallContext(method, peer, address)
            try:
                result = self.handlers[method](context, params)
            finally:
                caller = context.identified[-1] if context.identified else caller
            reply, code = self.replies.ok(result), _code_of(result)
        except SfaError as error:
            reply, code = self.replies.error(error), int(error.code)
        except Exception:
            log.failure("{service} {method}: unexpected error", service=self.service, method=method)
            reply, code = self.replies.error(ServerError(GENERIC_SERVER_ERROR)), ServerError.code
        body, marshal_code = self._marshal(reply)
        return CallOutcome(body, marshal_code or int(code), caller, method)

    def refusal(self, error: SfaError) -> CallOutcome:
        """The reply for a call refused before dispatch (too big, too busy)."""
        body, code = self._marshal(self.replies.error(error))
        return CallOutcome(body, code or int(error.code))

    def _admit(self, method: str, certificates: tuple[x509.Certificate, ...]) -> None:
        if method not in self.handlers:
            known = ", ".join(sorted(self.handlers))
            raise Unsupported(f"{self.service} has no method {method!r}; it offers: {known}")
        if not certificates and method not in self.anonymous_methods:
            raise Forbidden(
                f"{method} needs a client certificate: connect over TLS with your GID and "
                f"private key (only {', '.join(sorted(self.anonymous_methods))} works without)"
            )

    def _marshal(self, reply: Any) -> tuple[bytes, int]:
        """(body, fault code or 0); integers past 32 bits go as doubles (`widen`)."""
        try:
            if isinstance(reply, xmlrpc.client.Fault):
                return xmlrpc.client.dumps(reply).encode(), reply.faultCode
            return method_response(reply), 0
        except (TypeError, OverflowError, ValueError):
            log.failure("{service}: cannot marshal a reply", service=self.service)
            return self._marshal(self.replies.error(ServerError(GENERIC_SERVER_ERROR)))


def parse_call(data: bytes) -> tuple[tuple[Any, ...], str]:
    """(params, method) of an XML-RPC call, base64 values as bytes; BADARGS for anything else
    (DTDs in any encoding, arrays and structs nested deeper than MAX_PARAM_DEPTH)."""
    try:
        params, method = loads(data, use_builtin_types=False, what="the XML-RPC request",
                               max_depth=MAX_PARAM_DEPTH, max_bytes=MAX_CALL_BYTES)
    except xmlrpc.client.Fault:
        method = None
    if not method:
        raise BadArgs("the request is an XML-RPC response, not a call")
    return tuple(_unwrap_binary(param) for param in params), method


def _unwrap_binary(value: Any) -> Any:
    """XML-RPC base64 values as plain bytes, in lists and structs too: the libraries below
    the edge know nothing of `xmlrpc.client.Binary`."""
    if isinstance(value, xmlrpc.client.Binary):
        return value.data
    if isinstance(value, list):
        return [_unwrap_binary(item) for item in value]
    if isinstance(value, dict):
        return {key: _unwrap_binary(item) for key, item in value.items()}
    return value


@functools.lru_cache(maxsize=PEER_CACHE_SIZE)
def peer_of(certificates: tuple[x509.Certificate, ...]) -> tuple[GID | None, str]:
    """The (unverified) GID of a client's certificate chain and its name for the call log,
    kept by the chain's exact DER bytes: a client sends the same chain on every call, and the
    GID's parsed names and fingerprints are then computed once. Whether the chain is trusted
    now (validity, revocation) is still decided per call by the handler."""
    peer = gid_from_certificates(certificates)
    return peer, _urn_of(peer)


def _urn_of(peer: GID | None) -> str:
    """The caller for the log: a self-signed certificate names whoever its maker chose, so
    only a handler that matched its key to a record (`identified`) may name it."""
    if peer is None:
        return "-"
    try:
        return "self-signed" if peer.is_self_signed else str(peer.urn)
    except Exception:  # the certificate carries no usable URN; the door will say why
        return "?"


def _code_of(result: Any) -> int:
    return int(result.geni_code) if isinstance(result, Envelope) else 0
