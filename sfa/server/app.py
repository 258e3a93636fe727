"""Assemble the services of a deployment, start them on one reactor, and run until signalled."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from twisted.internet.defer import gatherResults
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

from sfa.errors import Unavailable
from sfa.server.deployment import Deployment, ServiceIdentity
from sfa.server.envelope import FaultReplies, ReplyStyle
from sfa.server.registry_api import registry_handlers
from sfa.server.service import RunningService, start_service
from sfa.server.xmlrpc import Handler

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


def plan_services(deployment: Deployment) -> list[ServicePlan]:
    """Every enabled service the code base can run today (the registry, for now)."""
    config = deployment.config
    plans = []
    if config.registry.enabled:
        plans.append(
            ServicePlan(
                name="registry",
                port=config.registry.port,
                handlers=registry_handlers(deployment),
                replies=FaultReplies(),
                identity=deployment.service_identity("registry"),
            )
        )
    return plans


def start_deployment(
    reactor: Any, deployment: Deployment, announce: Callable[[str], None]
) -> list[RunningService]:
    """Listen for every planned service; `announce("ready NAME URL")` as each one listens."""
    running: list[RunningService] = []
    for plan in plan_services(deployment):
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
        )
        if plan.on_listening is not None:
            plan.on_listening(service.url)
        running.append(service)
        announce(f"ready {plan.name} {service.url}")
    return running


def _announcer(stream: TextIO) -> Callable[[str], None]:
    def announce(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return announce


def serve_deployment(directory: Path | str, *, stdout: TextIO | None = None) -> None:
    """`sfa serve`: run in the foreground; SIGTERM / SIGINT stop the reactor cleanly."""
    from twisted.internet import reactor as _reactor  # noqa: PLC0415 - installs the reactor

    reactor: Any = _reactor

    deployment = Deployment.load(directory)
    observer: Any = textFileLogObserver(sys.stderr)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    announce = _announcer(stdout or sys.stdout)
    services: list[RunningService] = []
    failures: list[str] = []

    def start() -> None:
        try:
            services.extend(start_deployment(reactor, deployment, announce))
        except Exception as exc:
            log.failure("could not start the services of {directory}", directory=directory)
            failures.append(str(exc))
            reactor.stop()

    def stop_services() -> Any:
        return gatherResults([service.stop() for service in services])

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop_services)
    reactor.run()
    if failures:
        raise Unavailable(f"could not start the services of {directory}: {failures[0]}")
    announce("stopped")
