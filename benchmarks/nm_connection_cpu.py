"""CPU of the aggregate and of a node manager per call, over a connection kept alive, a new
connection resuming the TLS session, and a new connection with a full handshake.

One node manager in a child process on 127.0.0.1, the aggregate's node client in this process;
each call is GetVersion. CPU is this process's rusage and the child's, divided by the calls.
The three modes hand each call to the reactor thread and wait for it (that hand-off is in the
aggregate's figure); "all calls in the reactor" runs them one after another in one coroutine
there, as the driver's fan-out does, so its figure is the node client's alone.

    .venv/bin/python benchmarks/nm_connection_cpu.py [--calls 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from twisted.internet import defer  # noqa: E402
from twisted.internet.threads import blockingCallFromThread  # noqa: E402

from benchmarks.slice_scale import (  # noqa: E402
    cpu_seconds,
    node_usage,
    start_nodes,
    stop_nodes,
    twisted_reactor,
)
from sfa.aggregate.nm_client import NodeCall  # noqa: E402
from sfa.deploy.layout import init_deployment  # noqa: E402
from sfa.server.am_api import open_aggregate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    reactor = twisted_reactor()
    threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                     daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="nm-connection-cpu-") as tmp:
        deployment = init_deployment(Path(tmp) / "plc", authority="plc", registry_port=0,
                                     am_port=0, nm_base_port=0, nodes=1)
        children = start_nodes(deployment, 1, "")
        try:
            am = blockingCallFromThread(reactor, open_aggregate, deployment, reactor)
            client: Any = am.ctx.driver.client
            ((urn, entry),) = am.ctx.driver.book.managers().items()
            call = NodeCall(urn, entry.url, "GetVersion", ())

            def once(before: Callable[[], Any]) -> Callable[[], defer.Deferred[Any]]:
                def run() -> defer.Deferred[Any]:
                    before()
                    return defer.Deferred.fromCoroutine(client.call(call))
                return run

            def reconnect() -> None:
                client.close()

            def full() -> None:
                client.close()
                client.forget_sessions()

            modes = {"kept alive": once(lambda: None), "new, resumed": once(reconnect),
                     "new, full handshake": once(full)}
            async def in_reactor(count: int) -> None:
                for _ in range(count):
                    assert (await client.call(call)).ok

            def all_in_reactor() -> Any:  # a Deferred; the stubs type it badly
                return defer.Deferred.fromCoroutine(in_reactor(args.calls))

            print(f"load {os.getloadavg()[0]:.2f}", flush=True)
            for _ in range(args.rounds):
                blockingCallFromThread(reactor, once(lambda: None))
                mine, theirs = cpu_seconds(), node_usage(children)[0]
                blockingCallFromThread(reactor, all_in_reactor)
                mine, theirs = cpu_seconds() - mine, node_usage(children)[0] - theirs
                print(f"kept alive, all calls in the reactor: aggregate "
                      f"{1000 * mine / args.calls:.2f} ms, node "
                      f"{1000 * theirs / args.calls:.2f} ms CPU per call", flush=True)
                for label, run in modes.items():
                    blockingCallFromThread(reactor, once(lambda: None))  # a session to resume
                    mine, theirs = cpu_seconds(), node_usage(children)[0]
                    for _ in range(args.calls):
                        assert blockingCallFromThread(reactor, run).ok
                    mine, theirs = cpu_seconds() - mine, node_usage(children)[0] - theirs
                    print(f"{label}: aggregate {1000 * mine / args.calls:.2f} ms, node "
                          f"{1000 * theirs / args.calls:.2f} ms CPU per call", flush=True)
            print(f"load {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            stop_nodes(children)
            reactor.callFromThread(reactor.stop)


if __name__ == "__main__":
    main()
