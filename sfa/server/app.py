"""Assemble the services of a deployment, start them on one reactor, and run until signalled."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver
from twisted.python.failure import Failure

from sfa.aggregate.nm_book import NodeManagerBook, NodeManagerEntry
from sfa.aggregate.store import AggregateStore
from sfa.deploy.layout import Deployment, ServiceIdentity, node_dirs
from sfa.errors import SfaError, Unavailable
from sfa.nodemanager.nodedir import load_node_config, open_node
from sfa.server.am_api import AGGREGATE_DB, start_deployment_aggregate
from sfa.server.envelope import FaultReplies, ReplyStyle
from sfa.server.listener import RunningService, start_service
from sfa.server.nm_api import start_node_manager
from sfa.server.omf_node import OmfControllers
from sfa.server.prosody import start_deployment_prosody
from sfa.server.reactor import install_asyncio_reactor
from sfa.server.registry_api import registry_handlers
from sfa.server.sm_api import start_deployment_slicemgr
from sfa.server.workers import ProcessCallPool
from sfa.server.xmlrpc import CallPool, Handler

log = Logger(namespace="sfa.server")


@dataclass(frozen=True)
class ServicePlan:
    """What to serve for one service; `on_listening(url)` learns the real URL (port 0)."""

    name: str
    port: int
    handlers: Mapping[str, Handler]
    replies: ReplyStyle
    identity: ServiceIdentity
    on_listening: Callable[[str], None] | None = None
    # worker processes (0 = threads), each building its Dispatcher with factory(*args)
    workers: int = 0
    worker_factory: tuple[str, tuple[Any, ...]] = ("", ())


def plan_services(deployment: Deployment) -> list[ServicePlan]:
    """The enabled services built from handlers here (the aggregate starts on its own)."""
    config = deployment.config
    plans = []
    if config.registry.enabled:
        workers = config.registry.worker_processes
        plans.append(
            ServicePlan(
                name="registry",
                port=config.registry.port,
                handlers={} if workers else registry_handlers(deployment),
                replies=FaultReplies(),
                identity=deployment.service_identity("registry"),
                workers=workers,
                worker_factory=(
                    "sfa.server.registry_api:registry_dispatcher", (str(deployment.directory),)
                ),
            )
        )
    return plans


class Served(Protocol):
    """A started service: where it listens and how to stop it."""

    @property
    def url(self) -> str: ...

    def stop(self) -> Deferred[Any]: ...


def start_deployment(
    reactor: Any, deployment: Deployment, announce: Callable[[str], None]
) -> Deferred[dict[str, Served]]:
    """Listen for every enabled service; `announce("ready NAME URL")` as each one listens.
    Fires once all listen (the aggregate after its driver started)."""
    return Deferred.fromCoroutine(_start_all(reactor, deployment, announce))


async def _start_all(reactor: Any, deployment: Deployment, announce: Callable[[str], None]
                     ) -> dict[str, Served]:
    running: dict[str, Served] = {}
    for plan in plan_services(deployment):
        pool = None
        if plan.workers:
            factory, args = plan.worker_factory
            pool = ProcessCallPool(reactor, plan.workers, factory, args)
            pool.warm()
        service = start_service(
            reactor,
            name=plan.name,
            handlers=plan.handlers,
            replies=plan.replies,
            gid=plan.identity.gid,
            key=plan.identity.key,
            host=deployment.config.server.host,
            port=plan.port,
            limits=deployment.config.limits,
            pool=pool,
        )
        if plan.on_listening is not None:
            plan.on_listening(service.url)
        running[plan.name] = service
        announce(f"ready {plan.name} {service.url}")
    running.update(start_node_managers(reactor, deployment, announce))
    if deployment.config.aggregate.enabled:
        aggregate = await start_deployment_aggregate(reactor, deployment)
        running["aggregate"] = aggregate
        announce(f"ready aggregate {aggregate.url}")
    if deployment.config.slicemgr.enabled:
        local = running.get("aggregate")
        slicemgr = start_deployment_slicemgr(
            reactor, deployment, aggregate_url=local.url if local is not None else None
        )
        running["slicemgr"] = slicemgr
        announce(f"ready slicemgr {slicemgr.url}")
    return running


def start_registry_in_threads(reactor: Any, deployment: Deployment, *, host: str | None = None,
                              port: int | None = None) -> RunningService:
    """The deployment's registry with its calls in threads of this process (no worker
    processes), on [server] host and [registry] port unless `host`/`port` are given."""
    identity = deployment.service_identity("registry")
    config = deployment.config
    return start_service(
        reactor, name="registry", handlers=registry_handlers(deployment),
        replies=FaultReplies(), gid=identity.gid, key=identity.key,
        host=config.server.host if host is None else host,
        port=config.registry.port if port is None else port,
        limits=config.limits)


def start_node_managers(
    reactor: Any, deployment: Deployment, announce: Callable[[str], None]
) -> dict[str, Served]:
    """Every node manager of DIR/nodes in this process, each on its own port, sharing one call
    pool; the aggregate's inventory learns their real URLs (port 0 = any free port)."""
    directories = node_dirs(deployment)
    if not directories:
        return {}
    limits = deployment.config.limits
    pool = CallPool(reactor, limits.max_concurrent_calls * 2, name="sfa-nodemanagers")
    running: dict[str, Served] = {}
    urls: list[NodeManagerEntry] = []
    reported: set[str] = set()
    for nodedir in directories:
        config = load_node_config(nodedir)
        nm = open_node(nodedir, config=config)
        nm.omf = OmfControllers(nodedir, nodedir / "slivers", config.urn,
                                config.roots_dir(nodedir))
        nm.recover()
        summary = nm.enforcement.summary()
        if summary not in reported:  # once, not once per node of the same kind
            reported.add(summary)
            log.info("{summary}", summary=summary)
        service = start_node_manager(
            reactor, nm, host=deployment.config.server.host, port=config.port,
            local_port=config.local_port or None, limits=limits, pool=pool)
        running[f"nodemanager {nm.urn}"] = service
        urls.append(NodeManagerEntry(nm.urn, service.url, nm.node.gid.to_pem()))
        announce(f"ready nodemanager {nm.urn} {service.url}")
    store = AggregateStore(deployment.db_dir / AGGREGATE_DB)
    try:
        NodeManagerBook(store.database).set_managers(urls)
    finally:
        store.close()
    return running


def _warn(message: str) -> None:
    sys.stderr.write(f"sfa serve: {message}\n")
    sys.stderr.flush()


def _announcer(stream: TextIO) -> Callable[[str], None]:
    def announce(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return announce


def serve_deployment(directory: Path | str, *, stdout: TextIO | None = None) -> None:
    """`sfa serve`: run in the foreground; SIGTERM / SIGINT stop the reactor cleanly."""
    reactor = install_asyncio_reactor()
    deployment = Deployment.load(directory)
    observer: Any = textFileLogObserver(sys.stderr)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    announce = _announcer(stdout or sys.stdout)
    services: dict[str, Served] = {}
    failures: list[str] = []

    def failed(failure: Failure) -> None:
        log.failure("could not start the services of {directory}", failure,
                    directory=directory)
        error = failure.value
        failures.append(error.message if isinstance(error, SfaError) else str(error))
        reactor.stop()

    def start() -> None:
        starting = start_deployment(reactor, deployment, announce)
        starting.addCallbacks(services.update, failed)

    def stop_services() -> Any:
        return gatherResults([service.stop() for service in services.values()])

    prosody = start_deployment_prosody(deployment, announce, _warn)
    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop_services)
    try:
        reactor.run()
    finally:
        if prosody is not None:
            prosody.stop()
    if failures:
        raise Unavailable(f"could not start the services of {directory}: {failures[0]}")
    announce("stopped")
