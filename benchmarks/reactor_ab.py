"""Reactor A/B: the registry over real TLS on Twisted's default (epoll) reactor and on the
asyncio reactor that `sfa serve` now installs (drivers run as asyncio tasks on its loop).

One run alternates the two servers (each `start_registry_in_threads` in a process of its own,
calls in a thread pool) for `--rounds` rounds; each round measures GetVersion calls per second
of `--clients` kept-alive client threads for `--seconds`. Prints each round, the medians and
the ratio asyncio / epoll.

    .venv/bin/python benchmarks/reactor_ab.py [--rounds 3] [--seconds 3] [--clients 8]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.registry_load import Target, drive, kept_alive, prepare  # noqa: E402

REACTORS = ("epoll", "asyncio")


def serve(kind: str, directory: str) -> None:
    """The child: the deployment's registry on reactor `kind`; prints its URL."""
    if kind == "asyncio":
        from sfa.server.reactor import install_asyncio_reactor  # noqa: PLC0415

        reactor: Any = install_asyncio_reactor()
    else:
        from twisted.internet import epollreactor  # noqa: PLC0415

        epollreactor.install()
        from twisted.internet import reactor  # noqa: PLC0415
    from sfa.deploy.layout import Deployment  # noqa: PLC0415
    from sfa.server.app import start_registry_in_threads  # noqa: PLC0415

    deployment = Deployment.load(directory)

    def start() -> None:
        service = start_registry_in_threads(reactor, deployment, port=0)
        print(service.url, flush=True)

    reactor.callWhenRunning(start)
    reactor.run()


def measure(kind: str, directory: Path, cert: Path, key: Path, *, clients: int,
            seconds: float) -> float:
    """GetVersion calls per second against a fresh server on reactor `kind`."""
    server = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(directory)],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        target = Target(url, directory / "trusted_roots" / "plc.gid", cert, key, "")
        return drive(kind, clients, seconds, kept_alive(target, "GetVersion")).rate
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--serve", nargs=2, metavar=("REACTOR", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    with tempfile.TemporaryDirectory() as tmp:
        directory, cert, key = prepare(Path(tmp), None, 0)
        rates: dict[str, list[float]] = {kind: [] for kind in REACTORS}
        for round_ in range(1, args.rounds + 1):
            for kind in REACTORS:
                rate = measure(kind, directory, cert, key, clients=args.clients,
                               seconds=args.seconds)
                rates[kind].append(rate)
                print(f"round {round_}  {kind:<8} {rate:8.0f} GetVersion/s "
                      f"({args.clients} clients, {args.seconds:g} s)", flush=True)
    medians = {kind: statistics.median(values) for kind, values in rates.items()}
    print(f"median: epoll {medians['epoll']:.0f}/s, asyncio {medians['asyncio']:.0f}/s; "
          f"asyncio / epoll = {medians['asyncio'] / medians['epoll']:.2f}")


if __name__ == "__main__":
    main()
