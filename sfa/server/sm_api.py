"""The slice manager on the wire: AM API v3 (at / and /am/3) in the envelope, and its links to
the aggregates (XML-RPC over TLS with the slice manager's own GID as client certificate).

The aggregates it reaches are the deployment's own and every peer's in DIR/peers.toml (read per
call, so `sfa admin DIR peer add` takes effect at once). Outgoing TLS trusts exactly the
deployment's trusted roots, rebuilt when they change (`trust remove` cuts a peer off at once).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred

from sfa.deploy.config import service_url
from sfa.deploy.layout import Deployment
from sfa.deploy.peers import Peers, deployment_peers
from sfa.rpc.transport import AmEndpoint, TlsIdentity, client_context
from sfa.server.envelope import Envelope, EnvelopeReplies
from sfa.server.listener import RunningService, start_service
from sfa.server.registry_api import trust_policy
from sfa.server.wire_args import (
    as_is,
    call_args,
    credential_list,
    declare,
    options_struct,
    rspec_text,
    trusted_certs_handler,
)
from sfa.server.xmlrpc import CallContext, Handler
from sfa.slicemgr.fanout import AggregateLink, FanOut
from sfa.slicemgr.holders import SliceHolders
from sfa.slicemgr.manager import SliceManager, SmReply
from sfa.trust.roots import TrustedRoots
from sfa.xrn import hrn_to_urn

SLICEMGR_DB = "slicemgr.sqlite"
DEFAULT_CALL_TIMEOUT = 60.0


class OutgoingTls:
    """The client TLS context for calls to aggregates; rebuilt when the trusted roots change."""

    def __init__(self, roots: TrustedRoots, identity: TlsIdentity) -> None:
        self.roots = roots
        self.identity = identity
        self._lock = threading.Lock()
        self._built: tuple[int, ssl.SSLContext] | None = None

    def context(self) -> ssl.SSLContext:
        self.roots.reload_if_changed()
        with self._lock:
            version = self.roots.version
            if self._built is None or self._built[0] != version:
                pem = "".join(gid.to_pem(include_chain=False) for gid in self.roots.roots)
                self._built = (version, client_context(pem, self.identity))
            return self._built[1]


@dataclass(frozen=True)
class XmlRpcAggregate:
    """One aggregate reached over XML-RPC/TLS (an AggregateLink)."""

    urn: str
    url: str
    tls: OutgoingTls
    timeout: float

    def call(self, method: str, *params: Any) -> Any:
        return AmEndpoint(self.url, self.tls.context(), self.timeout).call(method, *params)


def aggregate_directory(own_hrn: str, own_url: str | None, peers: Peers, tls: OutgoingTls,
                        timeout: float) -> Callable[[], Sequence[AggregateLink]]:
    """The aggregates as of now: ours (when it has a URL) and each peer's."""

    def current() -> list[AggregateLink]:
        urls = {own_hrn: own_url} if own_url else {}
        urls.update(peers.aggregates())
        return [XmlRpcAggregate(hrn_to_urn(hrn, "authority+am"), url, tls, timeout)
                for hrn, url in urls.items() if url]

    return current


def sm_handlers(sm: SliceManager) -> dict[str, Handler]:
    """AM API v3 method name -> handler; replies carry `sfa_aggregates` at the top level."""

    def get_version(call: CallContext, params: tuple[Any, ...]) -> Any:
        (options,) = call_args(call, params, 0, 1)
        value = sm.get_version(options_struct(options))
        return Envelope(value=value, extra={"geni_api": 3})

    creds, options = credential_list, options_struct
    return {
        "GetVersion": get_version,
        "ListResources": declare(sm.list_resources, creds, options, least=1, reply=_envelope),
        "Allocate": declare(sm.allocate, as_is, creds, rspec_text, options, least=3,
                            reply=_envelope),
        "Describe": declare(sm.describe, as_is, creds, options, least=2, reply=_envelope),
        "Provision": declare(sm.provision, as_is, creds, options, least=2, reply=_envelope),
        "Status": declare(sm.status, as_is, creds, options, least=2, reply=_envelope),
        "PerformOperationalAction": declare(sm.perform_operational_action, as_is, creds, as_is,
                                            options, least=3, reply=_envelope),
        "Renew": declare(sm.renew, as_is, creds, as_is, options, least=3, reply=_envelope),
        "Delete": declare(sm.delete, as_is, creds, options, least=2, reply=_envelope),
        "Shutdown": declare(sm.shutdown, as_is, creds, options, least=2, reply=_envelope),
        "get_trusted_certs": trusted_certs_handler(sm.gid, sm.policy),
    }


def _envelope(reply: SmReply) -> Envelope:
    return Envelope(value=reply.value, geni_code=reply.code, output=reply.output,
                    extra={"sfa_aggregates": reply.aggregates})


@dataclass
class SliceManagerService:
    """The listening slice manager."""

    running: RunningService
    manager: SliceManager

    @property
    def url(self) -> str:
        return self.running.url

    def stop(self) -> Deferred[Any]:
        deferred = maybeDeferred(self.running.stop)

        def close(result: Any) -> Any:
            self.manager.fanout.close()
            self.manager.holders.close()
            return result

        return deferred.addBoth(close)


def open_slicemgr(deployment: Deployment, *, aggregate_url: str | None = None,
                  call_timeout: float = DEFAULT_CALL_TIMEOUT) -> SliceManager:
    """The deployment's slice manager: its service GID, DIR/db/slicemgr.sqlite, the live peers.

    `aggregate_url` is our own aggregate's URL (default: from [aggregate] port when enabled
    and not 0)."""
    config = deployment.config
    identity = deployment.service_identity("slicemgr")
    policy = trust_policy(deployment)
    tls = OutgoingTls(policy.roots, TlsIdentity(deployment.services_dir / "slicemgr.gid",
                                                deployment.services_dir / "slicemgr.pkey"))
    if aggregate_url is None and config.aggregate.enabled and config.aggregate.port:
        aggregate_url = service_url(config.server.host, config.aggregate.port)
    directory = aggregate_directory(deployment.authority_hrn, aggregate_url,
                                    deployment_peers(deployment), tls, call_timeout)
    return SliceManager(gid=identity.gid, policy=policy, aggregates=directory,
                        holders=SliceHolders(deployment.db_dir / SLICEMGR_DB),
                        fanout=FanOut(timeout=call_timeout))


def start_deployment_slicemgr(reactor: Any, deployment: Deployment, *,
                              aggregate_url: str | None = None,
                              call_timeout: float = DEFAULT_CALL_TIMEOUT
                              ) -> SliceManagerService:
    """Open and start the deployment's slice manager on [slicemgr] port (`sfa serve` then
    prints `ready slicemgr URL`)."""
    manager = open_slicemgr(deployment, aggregate_url=aggregate_url, call_timeout=call_timeout)
    identity = deployment.service_identity("slicemgr")
    running = start_service(
        reactor, name="slicemgr", handlers=sm_handlers(manager), replies=EnvelopeReplies(),
        gid=identity.gid, key=identity.key, host=deployment.config.server.host,
        port=deployment.config.slicemgr.port, limits=deployment.config.limits,
    )
    base = running.url.rstrip("/")
    manager.api_urls = {"3": f"{base}/am/3"}
    return SliceManagerService(running, manager)
