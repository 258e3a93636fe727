"""Run one part of a deployment in this process, for tests that kill and restart parts:

    python -m tests.server.serve_parts nodes DIR       # every node manager of DIR/nodes
    python -m tests.server.serve_parts aggregate DIR   # the registry and the aggregate

Each prints `ready NAME URL` lines as `sfa serve` does, then `ready all`; logs go to stderr.
SIGTERM stops it cleanly; SIGKILL is what the crash tests send.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import globalLogBeginner, textFileLogObserver

from sfa.deploy.layout import Deployment
from sfa.server.am_api import start_deployment_aggregate
from sfa.server.app import Served, start_node_managers, start_registry_in_threads
from sfa.server.reactor import install_asyncio_reactor


def announce(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def start_part(reactor: Any, part: str, deployment: Deployment) -> dict[str, Served]:
    """Start `part` ("nodes" or "aggregate") of `deployment` on `reactor`."""
    if part == "nodes":
        return start_node_managers(reactor, deployment, announce)
    registry = start_registry_in_threads(reactor, deployment)
    announce(f"ready registry {registry.url}")
    aggregate = await start_deployment_aggregate(reactor, deployment)
    announce(f"ready aggregate {aggregate.url}")
    return {"registry": registry, "aggregate": aggregate}


def main(part: str, directory: str) -> None:
    reactor = install_asyncio_reactor()
    deployment = Deployment.load(directory)
    observer: Any = textFileLogObserver(sys.stderr)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    running: dict[str, Served] = {}

    async def start() -> None:
        running.update(await start_part(reactor, part, deployment))
        announce("ready all")

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(start()))
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: gatherResults([s.stop() for s in running.values()]))
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
