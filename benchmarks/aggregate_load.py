"""Aggregate load: a 10,000-node aggregate (in-memory driver) served over real TLS.

Measures, in one run: ListResources of the cached advertisement (plain and geni_compressed),
GetVersion calls per second with 8 concurrent clients, and Allocate+Provision of a 100-node
slice; medians and p99s. Also times the server-side handler alone (no TLS, no XML-RPC) so that
the cost of the transport is visible.

    .venv/bin/python benchmarks/aggregate_load.py [--nodes 10000] [--clients 8]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sfa.aggregate.inventory import generate_nodes  # noqa: E402
from sfa.aggregate.memory_driver import MemoryDriver  # noqa: E402
from sfa.aggregate.store import AggregateStore  # noqa: E402
from sfa.cli.admin import open_admin  # noqa: E402
from sfa.deploy.layout import Deployment, init_deployment  # noqa: E402
from sfa.server.am_api import AGGREGATE_DB, open_aggregate, start_aggregate_service  # noqa: E402
from sfa.server.envelope import FaultReplies  # noqa: E402
from sfa.server.listener import start_service  # noqa: E402
from sfa.server.reactor import install_asyncio_reactor  # noqa: E402
from sfa.server.registry_api import registry_handlers  # noqa: E402
from sfa.trust.gid import GID  # noqa: E402
from sfa.trust.keys import generate_private_key, private_key_to_pem, public_key_to_openssh  # noqa: E402
from tests.server.conftest import client_context  # noqa: E402

GENI3 = {"type": "GENI", "version": "3"}
SLICE = "urn:publicid:IDN+plc+slice+bench"


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1000:8.2f} ms   p99 {p99 * 1000:8.2f} ms"


def timed(call: Callable[[], Any], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    base, deployment, user = prepare(args.nodes)
    parent_end, child_end = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(deployment.directory, child_end),
                                     daemon=True)
    server.start()
    try:
        measure(args, base, deployment, user, parent_end.recv())
    finally:
        server.terminate()
        server.join(10)


def prepare(nodes: int) -> tuple[Path, Deployment, GID]:
    """A deployment with a user, a slice and `nodes` nodes in the aggregate's inventory."""
    base = Path(tempfile.mkdtemp(prefix="sfa-bench-"))
    deployment = init_deployment(base / "plc", authority="plc", registry_port=0, am_port=0)
    key = generate_private_key()
    admin = open_admin(deployment)
    user = GID.from_pem(admin.admin_add_user("plc.bench", pubkey=public_key_to_openssh(key))
                        .record.gid or "")
    admin.admin_add_slice("plc.bench", ["plc.bench"])
    admin.close()
    (base / "u.gid").write_text(user.to_pem())
    (base / "u.pkey").write_bytes(private_key_to_pem(key))
    store = AggregateStore(deployment.db_dir / AGGREGATE_DB)
    started = time.perf_counter()
    store.upsert_nodes(generate_nodes("plc", nodes, sites=20))
    store.close()
    print(f"inventory of {nodes} nodes written in {time.perf_counter() - started:.2f} s")
    return base, deployment, user


def measure(args: Any, base: Path, deployment: Deployment, user: GID,
            started: tuple[str, str, float]) -> None:
    """Every figure, against the server process at `started` (aggregate URL, registry URL)."""
    am_url, reg_url, build_seconds = started
    print(f"first advertisement build in the server (plain + compressed): {build_seconds:.2f} s")
    v3 = open_aggregate(deployment, None, driver=MemoryDriver())
    root = deployment.trusted_roots_dir / "plc.gid"
    context = client_context(root)
    context.load_cert_chain(str(base / "u.gid"), str(base / "u.pkey"))

    def client(url: str) -> Any:
        return xmlrpc.client.ServerProxy(url, context=context, allow_none=True)

    registry = client(reg_url)
    user_cred = registry.GetSelfCredential(user.to_pem(), "plc.bench", "user")
    slice_cred = registry.GetCredential([user_cred], "plc.bench", "slice")
    creds = [{"geni_type": "geni_sfa", "geni_version": "3", "geni_value": slice_cred}]
    url = am_url + "am/3"
    v3.ctx.ads.get()
    proxy = client(url)
    list_resources(v3, proxy, user, creds)
    get_version(url, base, args.clients, args.seconds)
    allocate_provision(proxy, creds)


def list_resources(v3: Any, proxy: Any, peer: GID, creds: list[Any]) -> None:
    plain = proxy.ListResources(creds, {"geni_rspec_version": GENI3})["value"]
    packed = proxy.ListResources(creds, {"geni_rspec_version": GENI3,
                                         "geni_compressed": True})["value"]
    print(f"advertisement: {len(plain) / 1e6:.2f} MB plain, {len(packed) / 1e6:.2f} MB "
          "compressed")
    for label, options in (("plain", {}), ("compressed", {"geni_compressed": True})):
        opts = {"geni_rspec_version": GENI3, **options}
        handler = timed(lambda o=opts: v3.list_resources(peer, creds, o), 50)  # type: ignore[misc]
        wire = timed(lambda o=opts: proxy.ListResources(creds, o), 30)  # type: ignore[misc]
        print(f"ListResources cached {label:10s} handler only: {percentiles(handler)}")
        print(f"ListResources cached {label:10s} over TLS:     {percentiles(wire)}")
        empty = timed(lambda o=opts: proxy.ListResources([], o), 30)  # type: ignore[misc]
        print(f"ListResources cached {label:10s} no creds TLS: {percentiles(empty)}")



def get_version(url: str, base: Path, clients: int, seconds: float) -> None:
    with multiprocessing.Pool(clients) as pool:
        results = pool.starmap(hammer, [(url, str(base), seconds)] * clients)
    total = sum(count for count, _ in results)
    print(f"GetVersion with {clients} client processes: {total / seconds:8.0f} "
          f"calls/s   {percentiles([x for _, lat in results for x in lat])}")


def allocate_provision(proxy: Any, creds: list[Any]) -> None:
    rspec = ('<rspec xmlns="http://www.geni.net/resources/rspec/3" type="request">'
             + "".join(f'<node client_id="n{i}"/>' for i in range(100)) + "</rspec>")
    allocs, provs = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        reply = proxy.Allocate(SLICE, creds, rspec, {})
        assert reply["code"]["geni_code"] == 0, reply["output"]
        t1 = time.perf_counter()
        reply = proxy.Provision([SLICE], creds, {"geni_rspec_version": GENI3})
        assert reply["code"]["geni_code"] == 0, reply["output"]
        t2 = time.perf_counter()
        allocs.append(t1 - t0)
        provs.append(t2 - t1)
        proxy.Delete([SLICE], creds, {})
    print(f"Allocate of 100 nodes over TLS:   {percentiles(allocs)}")
    print(f"Provision of 100 nodes over TLS:  {percentiles(provs)}")


def serve(directory: Path, conn: Any) -> None:
    """The server process: registry and aggregate on one reactor until terminated."""
    reactor = install_asyncio_reactor()
    deployment = Deployment.load(directory)

    def start() -> None:
        identity = deployment.service_identity("aggregate")
        v3 = open_aggregate(deployment, reactor, driver=MemoryDriver())
        am = start_aggregate_service(reactor, v3, gid=identity.gid, key=identity.key,
                                     host="127.0.0.1", port=0, limits=deployment.config.limits)
        reg_id = deployment.service_identity("registry")
        reg = start_service(reactor, name="registry", handlers=registry_handlers(deployment),
                            replies=FaultReplies(), gid=reg_id.gid, key=reg_id.key,
                            host="127.0.0.1", port=0, limits=deployment.config.limits)
        started = time.perf_counter()
        v3.ctx.ads.get()
        v3.ctx.ads.get(compressed=True)
        conn.send((am.url, reg.url, time.perf_counter() - started))

    reactor.callWhenRunning(start)
    reactor.run()


def hammer(url: str, base: str, seconds: float) -> tuple[int, list[float]]:
    """One client process calling GetVersion as fast as it can for `seconds`."""
    context = client_context(Path(base) / "plc" / "trusted_roots" / "plc.gid")
    context.load_cert_chain(str(Path(base) / "u.gid"), str(Path(base) / "u.pkey"))
    proxy = xmlrpc.client.ServerProxy(url, context=context, allow_none=True)
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        proxy.GetVersion()
        latencies.append(time.perf_counter() - started)
    return len(latencies), latencies


if __name__ == "__main__":
    main()
