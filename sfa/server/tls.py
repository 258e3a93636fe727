"""TLS for every service: the service GID as server certificate, client certificates requested.

The TLS layer asks for a client certificate but neither requires nor judges it: any
certificate (even self-signed, for the GetSelfCredential bootstrap) is accepted here, and the
trust door (`sfa.trust.verify.verify_caller`) verifies its chain on every call.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from zope.interface import implementer

from sfa.trust.gid import GID

# Forward secrecy and AEAD only for TLS 1.2; TLS 1.3 suites are OpenSSL's defaults.
_TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM"


def _accept_any_certificate(
    connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
) -> bool:
    return True


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLSContext:
    """Twisted's TLS connection creator for one service identity (one shared SSL context)."""

    def __init__(self, gid: GID, key: RSAPrivateKey, *, session_name: str = "sfa") -> None:
        self.gid = gid
        self._context = _make_context(gid, key, session_name)

    def getContext(self) -> SSL.Context:
        return self._context

    def serverConnectionForTLS(self, tls_protocol: Any) -> SSL.Connection:
        return SSL.Connection(self._context, None)


def _make_context(gid: GID, key: RSAPrivateKey, session_name: str) -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    # No renegotiation: a connection's client certificate is the one of its handshake
    # (`XmlRpcResource` reads it once per connection).
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE
                        | SSL.OP_NO_RENEGOTIATION)
    context.set_cipher_list(_TLS12_CIPHERS)
    context.use_certificate(gid.certificate)
    for issuer in gid.chain:
        context.add_extra_chain_cert(issuer)
    context.use_privatekey(key)
    context.check_privatekey()
    context.set_verify(SSL.VERIFY_PEER, _accept_any_certificate)
    # Required for session resumption once client certificates are requested.
    context.set_session_id(hashlib.sha256(session_name.encode()).digest()[:32])
    return context


def peer_certificates(transport: Any) -> tuple[x509.Certificate, ...]:
    """The client's certificate then the issuers it sent (empty when it sent none)."""
    get_handle = getattr(transport, "getHandle", None)
    handle = get_handle() if get_handle is not None else None
    if not isinstance(handle, SSL.Connection):
        return ()
    leaf_cert = handle.get_peer_certificate(as_cryptography=True)
    if leaf_cert is None:
        return ()
    sent = handle.get_peer_cert_chain(as_cryptography=True) or []
    # On the server side OpenSSL leaves the leaf out of the chain; some builds keep it.
    issuers = tuple(cert for cert in sent if cert != leaf_cert)
    return (leaf_cert, *issuers)


def gid_from_certificates(certificates: tuple[x509.Certificate, ...]) -> GID | None:
    """The client's certificates as an (unverified) GID with the chain it sent, or None."""
    if not certificates:
        return None
    return GID.from_certificate(certificates[0], chain=certificates[1:])
