"""One listening XML-RPC-over-TLS service: site, TLS context, call pool and port together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from twisted.internet.defer import Deferred, maybeDeferred

from sfa.deploy.config import LimitsConfig, service_url
from sfa.server.envelope import ReplyStyle
from sfa.server.tls import ServerTLSContext
from sfa.server.xmlrpc import CallPool, Handler, Pool, XmlRpcResource, XmlRpcSite
from sfa.trust.gid import GID


@dataclass
class RunningService:
    """A service that listens; `url` carries the real port (also when 0 was asked)."""

    name: str
    url: str
    port: Any  # twisted IListeningPort
    pool: Pool
    site: XmlRpcSite

    def stop(self) -> Deferred[Any]:
        """Stop listening, let the calls in progress finish and stop the pool, then close
        every connection with a TLS close_notify once its last response is written."""
        deferred = maybeDeferred(self.port.stopListening)
        deferred.addCallback(lambda _: self.pool.stop())
        deferred.addCallback(lambda _: self.site.close_connections())
        return deferred


def start_service(
    reactor: Any,
    *,
    name: str,
    handlers: Mapping[str, Handler],
    replies: ReplyStyle,
    gid: GID,
    key: RSAPrivateKey,
    host: str,
    port: int,
    limits: LimitsConfig,
    pool: Pool | None = None,
) -> RunningService:
    """Listen on host:port (0 = any free port) with the service GID as TLS certificate.

    Calls run in `pool` (default: a thread pool of [limits] max_concurrent_calls).
    """
    pool = pool or CallPool(reactor, limits.max_concurrent_calls, name=f"sfa-{name}")
    root = XmlRpcResource(service=name, handlers=handlers, replies=replies, pool=pool)
    site = XmlRpcSite(
        root,
        max_request_bytes=limits.max_request_bytes,
        idle_timeout=limits.idle_timeout_seconds,
        header_timeout=limits.header_timeout_seconds,
    )
    context = ServerTLSContext(gid, key, session_name=f"sfa-{name}")
    listening = reactor.listenSSL(port, site, context, interface=host)
    real_port = listening.getHost().port
    return RunningService(name, service_url(host, real_port), listening, pool, site)

