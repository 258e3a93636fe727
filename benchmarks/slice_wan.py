"""Slice creation over an emulated wide-area network: one slice on N node managers that sit
behind links with a round-trip delay, jitter and loss (`benchmarks/wan.py`).

The node managers run in `--sites` site namespaces (`--processes-per-site` processes each,
nodes spread over them); the aggregate (node-manager driver) runs in this process, moved into
the hub namespace. Timed, for parallelism `--parallelism` (the configured default) and then 1:
Allocate, Provision (tickets signed and redeemed) and geni_start, i.e. the slice ready. Printed
per mode: the times, the aggregate's own CPU (this process's rusage) in all and per node,
the node processes' CPU, the delay line's CPU, and the load average.

Before the modes the aggregate checks every node's health once, untimed, as its health timer
does in a deployment. `--connections` says what each mode starts from: `resumed` (default)
closes the aggregate's connections first, so each node costs a new connection that resumes the
health check's TLS session; `full` also forgets the sessions (a full handshake per node);
`kept` leaves the health check's connections open, as in a deployment whose health timer
(every 30 s) keeps them alive within the nodes' idle timeout (60 s).

    .venv/bin/python benchmarks/slice_wan.py [--nodes 100] [--rtt 80] [--jitter 10]
        [--loss 0.01] [--sites 4] [--processes-per-site 1] [--parallelism 32]
        [--no-sequential] [--connections resumed|full|kept] [--profile DIR]

Needs root (network namespaces, TUN devices). Everything it makes is removed at its end.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from twisted.internet.threads import blockingCallFromThread  # noqa: E402

from benchmarks.slice_scale import (  # noqa: E402
    ThreadProfiles,
    make_deployment,
    run_once,
    start_nodes,
    stop_nodes,
    twisted_reactor,
)
from benchmarks.wan import EmulatedWan, LinkShape, missing_mechanism  # noqa: E402
from sfa.aggregate.context import loop_runner  # noqa: E402
from sfa.aggregate.nm_driver import NodeManagerDriver  # noqa: E402
from sfa.server.am_api import open_aggregate  # noqa: E402
from sfa.server.reactor import event_loop  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--rtt", type=float, default=80.0, help="round trip, ms")
    parser.add_argument("--jitter", type=float, default=10.0, help="± ms on the round trip")
    parser.add_argument("--loss", type=float, default=0.01, help="per packet and direction")
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--processes-per-site", type=int, default=1)
    parser.add_argument("--parallelism", type=int, default=0,
                        help="the parallel mode's limit (default: the aggregate's setting)")
    parser.add_argument("--no-sequential", action="store_true",
                        help="skip the parallelism 1 mode")
    parser.add_argument("--connections", choices=("resumed", "full", "kept"),
                        default="resumed", help="what each mode starts from (see above)")
    parser.add_argument("--profile", default="",
                        help="write cProfile stats (thread CPU) of every process to DIR")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    why = missing_mechanism()
    if why:
        sys.exit(f"slice_wan: {why}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    shape = LinkShape(rtt_ms=args.rtt, jitter_ms=args.jitter, loss=args.loss)
    print(f"{args.nodes} nodes behind {args.sites} sites: RTT {args.rtt:g} ms "
          f"± {args.jitter:g} ms, loss {args.loss:.1%} per direction; connections "
          f"{args.connections}; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="slice-wan-") as tmp, \
            EmulatedWan(args.sites, shape) as wan:
        deployment, user, slice_urn, cred = make_deployment(Path(tmp), args.nodes)
        processes = args.sites * args.processes_per_site

        def launch(index: int, argv: list[str], **options: Any) -> subprocess.Popen[str]:
            return wan.popen(wan.site_namespace(index % args.sites), argv, **options)

        started = time.perf_counter()
        hosts = [wan.site_address(site) for site in range(args.sites)]
        profile = os.path.abspath(args.profile) if args.profile else ""
        if profile:
            os.makedirs(profile, exist_ok=True)
        children = start_nodes(deployment, processes, profile, launch, hosts)
        print(f"  {processes} node processes listening after "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        wan.enter_hub()
        profiles = ThreadProfiles(profile, "aggregate")
        try:
            measure(args, wan, deployment, (user, slice_urn, cred), children)
        finally:
            stop_nodes(children)
            profiles.save()


def measure(args: argparse.Namespace, wan: EmulatedWan, deployment: Any,
            slice_args: tuple[Any, str, str], children: list[subprocess.Popen[str]]) -> None:
    reactor = twisted_reactor()
    thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                              daemon=True)
    thread.start()
    try:
        am = blockingCallFromThread(reactor, open_aggregate, deployment, reactor)
        driver = am.ctx.driver
        assert isinstance(driver, NodeManagerDriver)
        client: Any = driver.client  # TwistedNodeClient
        parallelism = args.parallelism or client.parallelism
        client.parallelism = parallelism
        started = time.perf_counter()
        health = loop_runner(event_loop(reactor))(driver.check_health())
        print(f"  health check (untimed): {len(health.up)} up, {len(health.down)} down in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        modes = [(f"parallel {parallelism}", parallelism)]
        if not args.no_sequential:
            modes.append(("parallelism 1", 1))
        totals = {}
        for label, limit in modes:
            client.parallelism = limit
            if args.connections != "kept":
                blockingCallFromThread(reactor, client.close)
            if args.connections == "full":
                client.forget_sessions()
            network_cpu = wan.delay_line_cpu()
            times = run_once(am, *slice_args, args.nodes, children=children)
            times["delay line cpu"] = wan.delay_line_cpu() - network_cpu
            totals[label] = times["total"]
            shown = ", ".join(f"{k} {v:.0%}" if k == "cpu use" else f"{k} {v:.2f} s"
                              for k, v in times.items())
            print(f"  {label}: {shown}", flush=True)
            per_node = {k: 1000 * times[f"am cpu{k}"] / args.nodes
                        for k in ("", " allocate", " provision")}
            print(f"  {label}: aggregate CPU per node {per_node['']:.2f} ms (allocate "
                  f"{per_node[' allocate']:.2f}, provision {per_node[' provision']:.2f}); "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
        if len(totals) == 2:
            ratio = totals["parallelism 1"] / totals[modes[0][0]]
            print(f"  parallel is {ratio:.1f}x parallelism 1", flush=True)
    finally:
        reactor.callFromThread(reactor.stop)
        thread.join(30)


if __name__ == "__main__":
    main()
