"""The aggregate on the wire: AM API v3 at /am/3 (and /), v2 at /am/2, on one TLS port.

Every reply is the {code, value, output} envelope, never a fault. Handlers run in the call
pool; driver coroutines run as asyncio tasks on the reactor's event loop (Twisted's asyncio
reactor), the rest of the call in the pool thread. A timer reaps expired slivers whether or not
anyone calls; another asks the driver for its health.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web import pages, resource, server

from sfa.aggregate.api_v2 import AggregateManagerV2
from sfa.aggregate.api_v3 import AggregateManagerV3
from sfa.aggregate.context import (
    AggregateContext,
    AggregateSettings,
    loop_runner,
    run_coroutine,
)
from sfa.aggregate.driver import Driver, DriverContext, HealthReport, ReconcileReport
from sfa.aggregate.driver_host import start_driver
from sfa.aggregate.driver_loader import DriverError, build_driver
from sfa.aggregate.lifetimes import LifetimePolicy
from sfa.aggregate.reaper import Reaper
from sfa.aggregate.store import AggregateStore
from sfa.deploy.config import AggregateConfig, LimitsConfig, service_url
from sfa.deploy.layout import Deployment
from sfa.errors import SfaError
from sfa.server.envelope import Envelope, EnvelopeReplies
from sfa.server.expiry_timer import ExpiryTimer
from sfa.server.listener import RunningService
from sfa.server.omf_aggregate import OmfEdge, omf_v3_handlers, start_omf_edge
from sfa.server.reactor import as_deferred, event_loop
from sfa.server.registry_api import trust_policy
from sfa.server.tls import ServerTLSContext
from sfa.server.wire_args import (
    as_is,
    call_args,
    credential_list,
    declare,
    options_struct,
    rspec_text,
    trusted_certs_handler,
)
from sfa.server.xmlrpc import CallContext, CallPool, Handler, XmlRpcResource, XmlRpcSite
from sfa.trust.gid import GID

log = Logger(namespace="sfa.aggregate")

AGGREGATE_DB = "aggregate.sqlite"
V3_PATHS = (b"", b"/am/3")
V2_PATH = b"/am/2"
REAP_CEILING = timedelta(seconds=30)


CREDS, OPTIONS = credential_list, options_struct


def v3_handlers(am: AggregateManagerV3) -> dict[str, Handler]:
    """AM API v3 method name -> handler, each declared with its argument list."""
    return {
        "GetVersion": _get_version(am.get_version),
        "ListResources": declare(am.list_resources, CREDS, OPTIONS, least=1),
        "Describe": declare(am.describe, as_is, CREDS, OPTIONS, least=2),
        "Allocate": declare(am.allocate, as_is, CREDS, rspec_text, OPTIONS, least=3),
        "Provision": declare(am.provision, as_is, CREDS, OPTIONS, least=2),
        "Status": declare(am.status, as_is, CREDS, OPTIONS, least=2),
        "PerformOperationalAction": declare(am.perform_operational_action, as_is, CREDS, as_is,
                                            OPTIONS, least=3),
        "Renew": declare(am.renew, as_is, CREDS, as_is, OPTIONS, least=3),
        "Delete": declare(am.delete, as_is, CREDS, OPTIONS, least=2),
        "Shutdown": declare(am.shutdown, as_is, CREDS, OPTIONS, least=2),
    }


def v2_handlers(am: AggregateManagerV2) -> dict[str, Handler]:
    """AM API v2 method name -> handler, each declared with its argument list."""
    return {
        "GetVersion": _get_version(am.get_version),
        "ListResources": declare(am.list_resources, CREDS, OPTIONS, least=1),
        "CreateSliver": declare(am.create_sliver, as_is, CREDS, rspec_text, as_is, OPTIONS,
                                least=4),
        "SliverStatus": declare(am.sliver_status, as_is, CREDS, OPTIONS, least=2),
        "RenewSliver": declare(am.renew_sliver, as_is, CREDS, as_is, OPTIONS, least=3),
        "DeleteSliver": declare(am.delete_sliver, as_is, CREDS, OPTIONS, least=2),
        "Shutdown": declare(am.shutdown, as_is, CREDS, OPTIONS, least=2),
    }


def _get_version(get_version: Callable[[Any], dict[str, Any]]) -> Handler:
    """GetVersion, with geni_api repeated at the top level of the envelope."""

    def handler(call: CallContext, params: tuple[Any, ...]) -> Any:
        (options,) = call_args(call, params, 0, 1)
        value = get_version(options_struct(options))
        return Envelope(value=value, extra={"geni_api": value["geni_api"]})

    return handler


class VersionRouter(resource.Resource):
    """Sends /am/2 to the v2 resource, / and /am/3 to v3; anything else is 404."""

    isLeaf = True

    def __init__(self, routes: Mapping[bytes, resource.Resource]) -> None:
        super().__init__()
        self.routes = dict(routes)

    def render(self, request: server.Request) -> Any:
        path = (request.path or b"/").rstrip(b"/")
        target = self.routes.get(path)
        if target is None:
            page: Any = pages.notFound("No AM API here", "Use /am/3 or /am/2.")
            return page.render(request)
        return target.render(request)


class ReapTimer(ExpiryTimer):
    """Wakes when the next sliver expires (or every REAP_CEILING) and reaps in a thread."""

    what = "reaping expired slivers"

    def __init__(self, reactor: Any, reaper: Reaper, ceiling: timedelta = REAP_CEILING):
        super().__init__(reactor, ceiling)
        self.reaper = reaper

    def work(self) -> float:
        self.reaper.tick()
        return self.reaper.delay_until_next(self.ceiling) + 0.05


class HealthTimer:
    """Asks the driver to check its nodes every `interval` seconds (`check_health`)."""

    def __init__(self, reactor: Any, driver: Driver, interval: float) -> None:
        self.reactor = reactor
        self.driver = driver
        self.interval = interval
        self.loop = LoopingCall(self.check)
        self.loop.clock = reactor
        self.last: HealthReport | None = None

    def start(self) -> None:
        self.loop.start(self.interval, now=True)

    def check(self) -> Deferred[Any]:
        deferred = as_deferred(self.reactor, self.driver.check_health())
        deferred.addCallback(self._checked)
        deferred.addErrback(lambda f: log.failure("node health check failed", f))
        return deferred

    def _checked(self, report: HealthReport) -> None:
        self.last = report
        if report.changed:
            log.info("node health: {up} up, {down} down", up=len(report.up),
                     down=len(report.down))

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()


class ReconcileTimer:
    """Asks the driver to reconcile at start and every `interval` seconds (for the
    node-manager driver: revocations a node missed while down); a pass still running when the
    next is due is not overlapped."""

    def __init__(self, reactor: Any, driver: Driver, interval: float, *,
                 name: str = "") -> None:
        self.reactor = reactor
        self.driver = driver
        self.name = name
        self.loop = LoopingCall(self.run)
        self.loop.clock = reactor
        self.interval = interval
        self.running: Deferred[Any] | None = None
        self.last: ReconcileReport | None = None

    def start(self) -> None:
        self.loop.start(self.interval, now=True)

    def run(self) -> Deferred[Any] | None:
        if self.running is not None:
            return None
        self.running = as_deferred(self.reactor, self.driver.reconcile())
        self.running.addCallback(self._done)
        self.running.addErrback(lambda f: log.failure(
            "reconciling with the testbed (driver {name}) failed", f, name=self.name))
        self.running.addBoth(self._idle)
        return None  # the loop never waits: a slow node must not stop the timer

    def _done(self, report: ReconcileReport) -> None:
        first, self.last = self.last is None, report
        if first or report.changed:
            log.info("reconciled with the testbed (driver {name}): {summary}", name=self.name,
                     summary=report.summary())

    def _idle(self, _: Any) -> None:
        self.running = None

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()


@dataclass
class AggregateService:
    """The listening aggregate, its reap timer and (when started with its driver) the
    driver's health timer; stopping it stops the driver last."""

    running: RunningService
    timer: ReapTimer
    health: HealthTimer | None = None
    omf: OmfEdge | None = None
    reconcile: ReconcileTimer | None = None
    driver: Driver | None = None
    reactor: Any = None

    @property
    def url(self) -> str:
        return self.running.url

    def stop(self) -> Deferred[Any]:
        self.timer.stop()
        if self.health is not None:
            self.health.stop()
        if self.omf is not None:
            self.omf.stop()
        if self.reconcile is not None:
            self.reconcile.stop()
        stopping = maybeDeferred(self.running.stop)
        if self.driver is not None:
            driver, reactor = self.driver, self.reactor
            stopping.addBoth(lambda result: as_deferred(reactor, driver.stop()).addBoth(
                lambda _: result))
        return stopping


def start_aggregate_service(
    reactor: Any, v3: AggregateManagerV3, *, gid: GID, key: Any, host: str, port: int,
    limits: LimitsConfig, name: str = "aggregate", reap_ceiling: timedelta = REAP_CEILING,
    extra_handlers: Callable[[Mapping[str, Handler]], Mapping[str, Handler]] | None = None,
) -> AggregateService:
    """Listen for the AM API v3 and v2 on one port; start the reap timer.

    GetVersion's geni_api_versions are filled in from the real port once listening.
    """
    pool = CallPool(reactor, limits.max_concurrent_calls, name=f"sfa-{name}")
    replies = EnvelopeReplies()
    constant = frozenset({"GetVersion"})
    trusted = {"get_trusted_certs": trusted_certs_handler(gid, v3.ctx.policy)}
    handlers = v3_handlers(v3) | trusted
    if extra_handlers is not None:
        handlers.update(extra_handlers(handlers))
    v3_resource = XmlRpcResource(service=name, handlers=handlers, replies=replies,
                                 pool=pool, constant_methods=constant)
    v2_resource = XmlRpcResource(service=f"{name}-v2",
                                 handlers=v2_handlers(AggregateManagerV2(v3)) | trusted,
                                 replies=replies, pool=pool, constant_methods=constant)
    routes: dict[bytes, resource.Resource] = {p: v3_resource for p in V3_PATHS}
    routes[V2_PATH] = v2_resource
    site = XmlRpcSite(VersionRouter(routes), max_request_bytes=limits.max_request_bytes,
                      idle_timeout=limits.idle_timeout_seconds,
                      header_timeout=limits.header_timeout_seconds)
    context = ServerTLSContext(gid, key, session_name=f"sfa-{name}")
    listening = reactor.listenSSL(port, site, context, interface=host)
    url = service_url(host, listening.getHost().port)
    v3.ctx.settings = replace(v3.ctx.settings, api_urls=api_urls(url))
    timer = ReapTimer(reactor, v3.ctx.reaper, reap_ceiling)
    timer.start()
    return AggregateService(RunningService(name, url, listening, pool, site), timer)


def api_urls(base_url: str) -> dict[str, str]:
    """GetVersion's geni_api_versions for a service at `base_url` (https://host:port/)."""
    base = base_url.rstrip("/")
    return {"2": f"{base}/am/2", "3": f"{base}/am/3"}


def lifetimes_of(config: AggregateConfig) -> LifetimePolicy:
    """The [aggregate] lifetimes as a LifetimePolicy."""
    return LifetimePolicy(allocated=timedelta(minutes=config.allocated_minutes),
                          default_lease=timedelta(days=config.default_lease_days),
                          max_lease=timedelta(days=config.max_lease_days))


def open_aggregate(deployment: Deployment, reactor: Any, *, driver: Driver | None = None,
                   lifetimes: LifetimePolicy | None = None) -> AggregateManagerV3:
    """The deployment's aggregate: DIR/db/aggregate.sqlite, its service GID as identity, and
    `driver` or else the one [aggregate] driver names (DriverError when none or broken).

    Driver coroutines run on the reactor's asyncio loop (`reactor` None: each in its own
    `asyncio.run`, for tools that serve nothing)."""
    store = AggregateStore(deployment.db_dir / AGGREGATE_DB)
    config = deployment.config.aggregate
    identity = deployment.service_identity("aggregate")
    settings = AggregateSettings(
        authority_hrn=deployment.authority_hrn, am_urn=identity.gid.urn,
        hrn=deployment.authority_hrn, lifetimes=lifetimes or lifetimes_of(config),
    )
    if driver is None:
        try:
            driver = build_driver(config.driver, driver_context(deployment, store))
        except BaseException:
            store.close()
            raise
    run = loop_runner(event_loop(reactor)) if reactor is not None else run_coroutine
    context = AggregateContext(store, driver, settings, trust_policy(deployment), run=run)
    return AggregateManagerV3(context)


def driver_context(deployment: Deployment, store: AggregateStore) -> DriverContext:
    """What the configured driver's factory gets from this deployment."""
    identity = deployment.service_identity("aggregate")
    config = deployment.config.aggregate
    state_dir = deployment.data_dir / "driver"
    state_dir.mkdir(mode=0o700, exist_ok=True)
    return DriverContext(
        name=config.driver, authority_hrn=deployment.authority_hrn, am_urn=identity.gid.urn,
        store=store, state_dir=state_dir, gid=identity.gid, key=identity.key,
        trusted_roots=tuple(deployment.trusted_roots().roots), nodes=tuple(store.nodes()),
        options=dict(deployment.config.driver), parallelism=config.parallelism,
        timeout_seconds=float(config.node_timeout_seconds),
        log=logging.getLogger(f"sfa.driver.{config.driver.rpartition(':')[2] or 'none'}"))


def start_deployment_aggregate(reactor: Any, deployment: Deployment
                               ) -> Deferred[AggregateService]:
    """Open the deployment's aggregate with its configured driver, start the driver (its
    nodes join the inventory), then listen on [aggregate] port; the health timer runs and a
    reconciliation (a crash may have left the testbed out of step) starts in the background.
    Fires with the listening service; fails when the driver cannot be built or started."""
    am = open_aggregate(deployment, reactor)
    return Deferred.fromCoroutine(_start_with_driver(reactor, deployment, am))


async def _start_with_driver(reactor: Any, deployment: Deployment, am: AggregateManagerV3
                             ) -> AggregateService:
    identity = deployment.service_identity("aggregate")
    config = deployment.config.aggregate
    driver = am.ctx.driver
    try:
        offered = await as_deferred(reactor, start_driver(driver, am.ctx.store))
    except Exception as exc:
        am.ctx.store.close()
        why = exc.message if isinstance(exc, SfaError) else f"{type(exc).__name__}: {exc}"
        raise DriverError(f"[aggregate] driver {config.driver!r} failed to start: "
                          f"{why}") from exc
    log.info("driver {name} started with {count} nodes", name=config.driver, count=offered)
    omf = start_omf_edge(deployment, am)
    try:
        service = start_aggregate_service(
            reactor, am, gid=identity.gid, key=identity.key,
            host=deployment.config.server.host, port=config.port,
            limits=deployment.config.limits,
            reap_ceiling=timedelta(seconds=config.reap_interval_seconds),
            extra_handlers=None if omf is None else partial(omf_v3_handlers, omf),
        )
    except Exception:  # cannot listen (port taken): the OMF edge and the driver stop again
        if omf is not None:
            omf.stop()
        await as_deferred(reactor, driver.stop())
        am.ctx.store.close()
        raise
    service.omf = omf
    service.driver = driver
    service.reactor = reactor
    service.health = HealthTimer(reactor, driver, config.health_interval_seconds)
    service.health.start()
    service.reconcile = ReconcileTimer(reactor, driver, config.reconcile_interval_seconds,
                                       name=config.driver)
    service.reconcile.start()
    return service
