"""Registry load: `sfa serve` in its own process, driven over real TLS by 1, 8 and 32 clients.

Measures, in one run, on kept-alive connections: GetVersion and Resolve-with-credential calls
per second with p50/p99 latency; then new TLS connections per second (one GetVersion per
connection). Also probes whether signing/verification stall the reactor: while 8 clients run
Resolve (credential and chain verification in the call pool), a probe sends plain HTTP GETs
that the reactor thread answers itself, and their latency is compared with an idle server.

    .venv/bin/python benchmarks/registry_load.py [--seconds 3] [--clients 1,8,32]
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sfa.cli.admin import open_admin  # noqa: E402
from sfa.deploy.config import render_config  # noqa: E402
from sfa.deploy.layout import init_deployment  # noqa: E402
from sfa.trust.keys import private_key_to_pem  # noqa: E402

GOALS = {"GetVersion": 500.0, "Resolve": 300.0}
P99_GOAL_MS = 50.0


@dataclass
class Run:
    name: str
    clients: int
    calls: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def pct(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000

    def line(self) -> str:
        return (f"{self.name:<16} {self.clients:>3} clients  {self.rate:8.0f} /s   "
                f"p50 {self.pct(0.50):7.2f} ms   p99 {self.pct(0.99):7.2f} ms")


@dataclass(frozen=True)
class Target:
    url: str
    root: Path
    cert: Path
    key: Path
    cred: str

    def context(self, identity: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.root))
        if identity:
            context.load_cert_chain(str(self.cert), str(self.key))
        return context


def drive(name: str, clients: int, seconds: float, make: Callable[[], Callable[[], Any]]) -> Run:
    """`clients` threads each call their own callable (made and warmed first) for `seconds`."""
    ready = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop_at = [0.0]

    def worker(index: int) -> None:
        call = make()
        call()  # warm: TLS handshake and first request outside the measurement
        ready.wait()
        samples = latencies[index]
        while (start := time.perf_counter()) < stop_at[0]:
            call()
            samples.append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + 3600
    ready.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    flat = [s for samples in latencies for s in samples]
    return Run(name, clients, len(flat), elapsed, flat)


def kept_alive(target: Target, method: str) -> Callable[[], Callable[[], Any]]:
    def make() -> Callable[[], Any]:
        proxy = xmlrpc.client.ServerProxy(
            target.url, context=target.context(method != "GetVersion"), allow_none=True
        )
        if method == "GetVersion":
            return lambda: proxy.GetVersion({})
        return lambda: proxy.Resolve("plc.alice", [target.cred], {})

    return make


def new_connections(target: Target) -> Callable[[], Callable[[], Any]]:
    def make() -> Callable[[], Any]:
        context = target.context(identity=True)

        def call() -> Any:
            proxy = xmlrpc.client.ServerProxy(target.url, context=context)
            with proxy:
                return proxy.GetVersion({})

        return call

    return make


def reactor_probe(target: Target, seconds: float, interval: float = 0.01) -> list[float]:
    """Latency of GET / (answered on the reactor thread, never in the pool), one connection."""
    host, port = target.url.removeprefix("https://").rstrip("/").rsplit(":", 1)
    connection = http.client.HTTPSConnection(host, int(port), context=target.context(False))
    samples = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        connection.request("GET", "/")
        connection.getresponse().read()
        samples.append(time.perf_counter() - start)
        time.sleep(interval)
    connection.close()
    return samples


def _ms(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


def prepare(base: Path, threads: int | None, workers: int) -> tuple[Path, Path, Path]:
    deployment = init_deployment(base / "plc", authority="plc", registry_port=0, am_port=0)
    config = deployment.config
    threads = threads or config.limits.max_concurrent_calls
    limits = replace(config.limits, max_concurrent_calls=threads)
    registry = replace(config.registry, worker_processes=workers)
    aggregate = replace(config.aggregate, enabled=False)
    text = render_config(replace(config, limits=limits, registry=registry, aggregate=aggregate))
    (deployment.directory / "sfa.toml").write_text(text)
    admin = open_admin(deployment)
    try:
        user = admin.admin_add_user("plc.alice", email="alice@example.org")
    finally:
        admin.close()
    cert, key = base / "alice.gid", base / "alice.pkey"
    cert.write_text(user.record.gid or "")
    assert user.private_key is not None
    key.write_bytes(private_key_to_pem(user.private_key))
    return deployment.directory, cert, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--threads", type=int, default=None,
                        help="the server's call pool size ([limits] max_concurrent_calls)")
    parser.add_argument("--workers", type=int, default=2,
                        help="registry worker processes ([registry] worker_processes)")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        directory, cert, key = prepare(base, args.threads, args.workers)
        log = (base / "serve.log").open("w")
        server = subprocess.Popen(
            [sys.executable, "-m", "sfa.cli.main", "serve", str(directory)],
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO,
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split()[2]
            root = directory / "trusted_roots" / "plc.gid"
            context = ssl.create_default_context(cafile=str(root))
            context.load_cert_chain(str(cert), str(key))
            bootstrap = xmlrpc.client.ServerProxy(url, context=context)
            cred = bootstrap.GetSelfCredential(cert.read_text(), "plc.alice", "user")
            print(f"registry worker processes: {args.workers or 'none (a thread pool)'}")
            report(Target(url, root, cert, key, cred), counts, args.seconds)
        except Exception:
            log.flush()
            print("server log (tail):", *(base / "serve.log").read_text().splitlines()[-30:],
                  sep="\n", file=sys.stderr)
            raise
        finally:
            server.terminate()
            server.wait(30)
            log.close()


def report(target: Target, counts: list[int], seconds: float) -> None:
    print(f"registry load, {seconds:.0f} s per run, server in its own process "
          f"(`sfa serve`), clients are threads of this process; "
          f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    results: dict[tuple[str, int], Run] = {}
    for method in ("GetVersion", "Resolve"):
        for clients in counts:
            run = drive(method, clients, seconds, kept_alive(target, method))
            results[(method, clients)] = run
            print(run.line())
    for clients in counts:
        run = drive("new TLS conn", clients, seconds, new_connections(target))
        print(run.line())
    idle = reactor_probe(target, 1.0)
    busy: list[float] = []
    probe = threading.Thread(target=lambda: busy.extend(reactor_probe(target, seconds)))
    probe.start()
    loaded = drive("Resolve+probe", 8, seconds, kept_alive(target, "Resolve"))
    probe.join()
    print(loaded.line())
    print(f"reactor probe (GET /, answered on the reactor thread): idle p50 {_ms(idle, .5):.2f} "
          f"p99 {_ms(idle, .99):.2f} ms; under 8 Resolve clients p50 {_ms(busy, .5):.2f} "
          f"p99 {_ms(busy, .99):.2f} ms")
    for method, goal in GOALS.items():
        run = results.get((method, 8))
        if run:
            ok = run.rate >= goal and run.pct(0.99) < P99_GOAL_MS
            print(f"goal {method} with 8 clients >= {goal:.0f}/s, p99 < {P99_GOAL_MS:.0f} ms: "
                  f"{'met' if ok else 'NOT met'} ({run.rate:.0f}/s, p99 {run.pct(0.99):.1f} ms)")


if __name__ == "__main__":
    main()
