"""The node manager on the wire: its remote API over TLS (the node's GID as server certificate,
every reply the {code, value, output} envelope) and its local API on the loopback interface
(plain XML-RPC, read-only). A timer reaps expired leases whether or not anyone calls.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import Logger

from sfa.deploy.config import LimitsConfig, service_url
from sfa.errors import BadArgs
from sfa.nodemanager.localapi import LocalApi
from sfa.nodemanager.manager import NodeManager
from sfa.nodemanager.revocation import revocations_from_wire
from sfa.nodemanager.terms import users_from_wire
from sfa.server.envelope import Envelope, EnvelopeReplies, FaultReplies
from sfa.server.expiry_timer import ExpiryTimer
from sfa.server.listener import RunningService, start_service
from sfa.server.wire_args import as_is, call_args, credential_list, declare, options_struct
from sfa.server.xmlrpc import (
    CallContext,
    CallPool,
    Handler,
    Pool,
    XmlRpcResource,
    XmlRpcSite,
)
from sfa.timeutil import utcnow
from sfa.trust.gid import GID

log = Logger(namespace="sfa.nodemanager")

REAP_CEILING = timedelta(seconds=30)
LOCAL_METHODS = frozenset({"GetKeys", "GetSliverInfo"})


def remote_handlers(nm: NodeManager, on_change: Any = None) -> dict[str, Handler]:
    """Method name -> handler for the node manager's remote API (spec/nodemanager.md)."""

    def changed(expires: datetime) -> None:
        if on_change is not None:
            on_change(expires)

    def get_version(_peer: GID | None, _options: dict[str, Any]) -> Any:
        return Envelope(value=nm.version())

    def redeem(_peer: GID | None, ticket: Any, options: dict[str, Any]) -> Any:
        redemption = nm.redeem(ticket, slice_key=options.get("slice_key"))
        changed(redemption.expires)
        return redemption.to_wire()

    def action(name: str) -> Handler:
        method = getattr(nm, name)
        return declare(lambda peer, urn, creds: method(urn, peer, creds).to_wire(),
                       as_is, credential_list, least=1)

    def renew(_peer: GID | None, urn: Any, renewal: Any) -> Any:
        redemption = nm.renew(urn, renewal)
        changed(redemption.expires)
        return redemption.to_wire()

    def delete(peer: GID | None, urn: Any, creds: list[Any]) -> bool:
        nm.delete(urn, peer, creds)
        return True

    def update_keys(peer: GID | None, urn: Any, users: Any, creds: list[Any]) -> Any:
        return nm.update_keys(urn, users_from_wire(users), peer, creds).to_wire()

    def enable_omf(peer: GID | None, urn: Any, creds: list[Any], options: dict[str, Any]) -> Any:
        return nm.enable_omf(urn, peer, creds, options).to_wire()

    def revoke(peer: GID | None, revocations: Any) -> Any:
        return nm.revoke(revocations_from_wire(revocations), peer)

    def list_slivers(peer: GID | None, _credentials: list[Any]) -> Any:
        return [info.to_wire() for info in nm.list_slivers(peer)]  # decided by the TLS caller

    return {
        "GetVersion": declare(get_version, options_struct, least=0),
        "RedeemTicket": declare(redeem, as_is, options_struct, least=1),
        "StartSliver": action("start"),
        "StopSliver": action("stop"),
        "RestartSliver": action("restart"),
        "SliverStatus": action("status"),
        "RenewLease": declare(renew, as_is, as_is, least=2),
        "DeleteSliver": declare(delete, as_is, credential_list, least=1),
        "UpdateKeys": declare(update_keys, as_is, as_is, credential_list, least=2),
        "ListSlivers": declare(list_slivers, credential_list, least=0),
        "EnableOmf": declare(enable_omf, as_is, credential_list, options_struct, least=3),
        "RevokeTickets": declare(revoke, as_is, least=1),
    }


def local_handlers(local: LocalApi) -> dict[str, Handler]:
    """GetKeys(slice_name) and GetSliverInfo(slice_name)."""

    def get_keys(call: CallContext, params: tuple[Any, ...]) -> Any:
        (name,) = call_args(call, params, 1, 1)
        return local.get_keys(name)

    def get_sliver_info(call: CallContext, params: tuple[Any, ...]) -> Any:
        (name,) = call_args(call, params, 1, 1)
        return local.get_sliver_info(name)

    return {"GetKeys": get_keys, "GetSliverInfo": get_sliver_info}


class LeaseReaper(ExpiryTimer):
    """Wakes when the next lease ends (or every REAP_CEILING) and reaps in a thread."""

    what = "reaping expired leases"

    def __init__(self, reactor: Any, nm: NodeManager, ceiling: timedelta = REAP_CEILING):
        super().__init__(reactor, ceiling)
        self.nm = nm

    def work(self) -> float:
        self.nm.reap_expired()
        upcoming = self.nm.next_expiry()
        ceiling = self.ceiling.total_seconds()
        if upcoming is None:
            return ceiling
        return min(ceiling, max(0.0, (upcoming - utcnow()).total_seconds())) + 0.05


class _Borrowed:
    """A pool shared by several node managers: stopping one of them leaves it running (it
    stops with the reactor)."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def dispatch(self, dispatcher: Any, data: bytes, certificates: Any, address: str) -> Any:
        return self.pool.dispatch(dispatcher, data, certificates, address)

    def stop(self) -> None:
        return None


@dataclass
class NodeManagerService:
    """A listening node manager: remote API, optional local API, reaper."""

    nm: NodeManager
    remote: RunningService
    local: RunningService | None
    reaper: LeaseReaper

    @property
    def url(self) -> str:
        return self.remote.url

    @property
    def local_url(self) -> str:
        return self.local.url if self.local is not None else ""

    def stop(self) -> Deferred[Any]:
        self.reaper.stop()
        stopping = [maybeDeferred(self.remote.stop)]
        if self.local is not None:
            stopping.append(maybeDeferred(self.local.stop))
        return DeferredList(stopping)


def start_node_manager(
    reactor: Any,
    nm: NodeManager,
    *,
    host: str,
    port: int,
    limits: LimitsConfig,
    local_port: int | None = None,
    reap_ceiling: timedelta = REAP_CEILING,
    pool: Pool | None = None,
) -> NodeManagerService:
    """Listen for the remote API on host:port (TLS, the node's GID) and, when `local_port` is
    not None, for the local API on 127.0.0.1:local_port (0 = any free port); start reaping.
    Calls run in `pool` (node managers of one process may share one). Call `nm.recover()`
    first; the node's key is warmed up here."""
    nm.warm_up()
    reaper = LeaseReaper(reactor, nm, reap_ceiling)
    remote = start_service(
        reactor, name="nodemanager", handlers=remote_handlers(nm, reaper.poke),
        replies=EnvelopeReplies(), gid=nm.node.gid, key=nm.node.key, host=host, port=port,
        limits=limits, pool=_Borrowed(pool) if pool is not None else None,
    )
    local = None
    if local_port is not None:
        local = _listen_local(reactor, LocalApi(nm.store, usage=nm.usage), local_port, limits)
    reaper.start()
    return NodeManagerService(nm, remote, local, reaper)


def _listen_local(
    reactor: Any, api: LocalApi, port: int, limits: LimitsConfig, host: str = "127.0.0.1"
) -> RunningService:
    if not ipaddress.ip_address(host).is_loopback:
        raise BadArgs(f"the local API listens on the loopback interface only, not {host}")
    pool = CallPool(reactor, 2, name="sfa-nodemanager-local")
    resource = XmlRpcResource(
        service="nodemanager-local", handlers=local_handlers(api), replies=FaultReplies(),
        pool=pool, anonymous_methods=LOCAL_METHODS,
    )
    site = XmlRpcSite(resource, max_request_bytes=64 * 1024,
                      idle_timeout=limits.idle_timeout_seconds,
                      header_timeout=limits.header_timeout_seconds)
    listening = reactor.listenTCP(port, site, interface=host)
    url = service_url(host, listening.getHost().port).replace("https://", "http://")
    return RunningService("nodemanager-local", url, listening, pool, site)
