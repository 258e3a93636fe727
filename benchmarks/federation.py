"""Federation: one 300-node slice over three authorities (100 nodes each), through plc's slice
manager versus aggregate by aggregate.

Each authority (registry + aggregate; plc also runs the slice manager) is served over real TLS
from its own process, beside its node managers: `--node-processes` more processes per
authority, each node manager on its own TLS port with its own sliver directories and SQLite
file, the aggregate on the node-manager driver (`--driver memory`: no node managers, the
in-memory driver, as in the first version of this benchmark). The authorities trust each
other's roots and are peered the way `sfa admin` does it. A plc user gets a slice credential
from plc's registry and takes the slice to ready (Allocate, Provision, PerformOperationalAction
geni_start, Status until every sliver is geni_ready): once through the slice manager (one call
per step, fanned out in parallel), once aggregate by aggregate in sequence, and once aggregate
by aggregate from client threads (what sfi does); the slice is deleted between runs (untimed),
and an untimed run through the slice manager comes first (`--warm-up 0` to leave it out).
Prints medians over --rounds, the ratios, the CPU seconds of every process per path and the
load average.

    .venv/bin/python benchmarks/federation.py [--nodes 100] [--rounds 3]
        [--driver nodemanager|memory] [--node-processes 1] [--warm-up 1]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from twisted.internet.defer import maybeDeferred  # noqa: E402

from sfa.aggregate.inventory import generate_nodes  # noqa: E402
from sfa.aggregate.nm_book import NodeManagerBook, NodeManagerEntry  # noqa: E402
from sfa.aggregate.store import AggregateStore  # noqa: E402
from sfa.cli.admin import open_admin  # noqa: E402
from sfa.cli.trust_admin import add_root  # noqa: E402
from sfa.deploy.config import render_config  # noqa: E402
from sfa.deploy.layout import Deployment, init_deployment  # noqa: E402
from sfa.deploy.peers import Peer, add_peer, peers_path  # noqa: E402
from sfa.rpc.transport import AmEndpoint, RpcEndpoint, TlsIdentity, client_context  # noqa: E402
from sfa.rspecs.builder import Request  # noqa: E402
from sfa.rspecs.reader import read_rspec  # noqa: E402
from sfa.server.am_api import AGGREGATE_DB, start_deployment_aggregate  # noqa: E402
from sfa.server.envelope import FaultReplies  # noqa: E402
from sfa.server.listener import start_service  # noqa: E402
from sfa.server.reactor import install_asyncio_reactor  # noqa: E402
from sfa.server.registry_api import registry_handlers  # noqa: E402
from sfa.server.sm_api import start_deployment_slicemgr  # noqa: E402
from sfa.trust.credential import delegate_credential, parse_credential  # noqa: E402
from sfa.trust.gid import GID  # noqa: E402
from sfa.trust.keys import generate_private_key, private_key_to_pem, public_key_to_openssh  # noqa: E402
from sfa.xrn import hrn_to_urn  # noqa: E402

AUTHORITIES = ("plc", "ple", "ppk")
GENI3 = {"type": "GENI", "version": "3"}
SLICES = 40  # plc.bench1.. : a fresh slice per timed run


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_child(conn: Connection, start: Callable[[Any], Any]) -> None:
    """A child's reactor: `start(reactor)` returns what to send the parent once listening;
    then each "cpu" from the parent is answered with this process's CPU seconds, and anything
    else (or the parent's end) stops the reactor."""
    reactor = install_asyncio_reactor()

    def answer_parent() -> None:
        try:
            while conn.recv() == "cpu":
                conn.send(_cpu_seconds())
        except EOFError:
            pass
        reactor.callFromThread(reactor.stop)

    threading.Thread(target=answer_parent, daemon=True).start()
    reactor.callWhenRunning(lambda: maybeDeferred(start, reactor).addCallback(conn.send))
    reactor.run(installSignalHandlers=False)


def serve_authority(directory: str, with_sm: bool, conn: Connection) -> None:
    """A child process: the deployment's registry and aggregate (and slice manager)."""
    deployment = Deployment.load(directory)

    async def start(reactor: Any) -> dict[str, str]:
        limits, host = deployment.config.limits, "127.0.0.1"
        registry_id = deployment.service_identity("registry")
        registry = start_service(reactor, name="registry",
                                 handlers=registry_handlers(deployment),
                                 replies=FaultReplies(), gid=registry_id.gid,
                                 key=registry_id.key, host=host, port=0, limits=limits)
        aggregate = await start_deployment_aggregate(reactor, deployment)
        urls = {"registry": registry.url, "aggregate": aggregate.url}
        if with_sm:
            urls["slicemgr"] = start_deployment_slicemgr(
                reactor, deployment, aggregate_url=aggregate.url).url
        return urls

    _run_child(conn, start)


def serve_nodes(directory: str, index: int, count: int, conn: Connection) -> None:
    """A child process: every count-th node manager of the deployment from `index`, each on its
    own TLS port, sharing one call pool; sends (urn, url, gid pem) of each."""
    from sfa.deploy.layout import node_dirs  # noqa: PLC0415
    from sfa.nodemanager.nodedir import load_node_config, open_node  # noqa: PLC0415
    from sfa.server.nm_api import start_node_manager  # noqa: PLC0415
    from sfa.server.xmlrpc import CallPool  # noqa: PLC0415

    deployment = Deployment.load(directory)

    def start(reactor: Any) -> list[tuple[str, str, str]]:
        limits = deployment.config.limits
        pool = CallPool(reactor, limits.max_concurrent_calls * 2, name="sfa-nodemanagers")
        entries = []
        for nodedir in node_dirs(deployment)[index::count]:
            nm = open_node(nodedir, config=load_node_config(nodedir))
            nm.recover()
            service = start_node_manager(reactor, nm, host="127.0.0.1", port=0, limits=limits,
                                         pool=pool)
            entries.append((nm.urn, service.url, nm.node.gid.to_pem()))
        return entries

    _run_child(conn, start)


@dataclass
class Children:
    """The child processes and the pipes to them."""

    spawn: Any = field(default_factory=lambda: multiprocessing.get_context("spawn"))
    running: list[tuple[Any, Connection]] = field(default_factory=list)

    def start(self, target: Callable[..., None], *args: Any) -> Any:
        """Start `target(*args, pipe)` in a new process; what it sends once listening."""
        parent_end, child_end = self.spawn.Pipe()
        process = self.spawn.Process(target=target, args=(*args, child_end), daemon=True)
        process.start()
        self.running.append((process, parent_end))
        return parent_end.recv()

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by every child."""
        for _, conn in self.running:
            conn.send("cpu")
        return sum(conn.recv() for _, conn in self.running)

    def stop(self) -> None:
        for process, conn in self.running:
            conn.send("stop")
            process.join(30)


def deploy(base: Path, hrn: str, nodes: int, user_key: Any, *, memory: bool) -> Deployment:
    """One authority; node directories and inventory from `init --nodes` (or, with the
    in-memory driver, generated inventory only)."""
    deployment = init_deployment(base / hrn, authority=hrn, registry_port=0, am_port=0,
                                 sm_port=0, nm_base_port=0, nodes=0 if memory else nodes)
    if hrn == "plc":
        admin = open_admin(deployment)
        try:
            admin.admin_add_user("plc.alice", pubkey=public_key_to_openssh(user_key))
            for index in range(1, SLICES):
                admin.admin_add_slice(f"plc.bench{index}", ["plc.alice"])
        finally:
            admin.close()
    if memory:
        store = AggregateStore(deployment.db_dir / AGGREGATE_DB)
        store.upsert_nodes(generate_nodes(hrn, nodes, sites=4, capacity=4))
        store.close()
        config = deployment.config
        config = replace(config, aggregate=replace(config.aggregate, driver="memory"))
        (deployment.directory / "sfa.toml").write_text(render_config(config))
    return deployment


def start_nodes(children: Children, deployment: Deployment, processes: int) -> int:
    """The authority's node managers in `processes` processes, entered in its aggregate's
    book (the aggregate, started after, then uses the node-manager driver)."""
    entries = []
    for index in range(processes):
        sent = children.start(serve_nodes, str(deployment.directory), index, processes)
        entries += [NodeManagerEntry(urn, url, pem) for urn, url, pem in sent]
    store = AggregateStore(deployment.db_dir / AGGREGATE_DB)
    try:
        NodeManagerBook(store.database).set_managers(entries)
    finally:
        store.close()
    return len(entries)


def start_federation(base: Path, args: argparse.Namespace, user_key: Any, children: Children
                     ) -> tuple[dict[str, Deployment], dict[str, dict[str, str]]]:
    """Deploy the three authorities, make them trust each other's roots, start each one's node
    managers and then its services, and peer them."""
    memory = args.driver == "memory"
    started = time.perf_counter()
    deployments = {hrn: deploy(base, hrn, args.nodes, user_key, memory=memory)
                   for hrn in AUTHORITIES}
    print(f"  init of three authorities: {time.perf_counter() - started:.1f} s", flush=True)
    for hrn, deployment in deployments.items():
        for other, other_dep in deployments.items():
            if other != hrn:
                add_root(deployment, other_dep.trusted_roots_dir / f"{other}.gid")
    started = time.perf_counter()
    urls = {}
    for hrn, deployment in deployments.items():
        if not memory:
            start_nodes(children, deployment, args.node_processes)
        urls[hrn] = children.start(serve_authority, str(deployment.directory), hrn == "plc")
    print(f"  {len(children.running)} processes listening after "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    for hrn, deployment in deployments.items():
        for other in deployments:
            if other != hrn:
                add_peer(peers_path(deployment), Peer(other, urls[other]["registry"],
                                                      urls[other]["aggregate"]), own_hrn=hrn)
    return deployments, urls


class Alice:
    """plc.alice calling over TLS."""

    def __init__(self, base: Path, deployment: Deployment, key: Any, roots: str) -> None:
        admin = open_admin(deployment)
        try:
            self.gid = GID.from_pem(admin.admin_show("plc.alice", "user")[0].gid or "")
        finally:
            admin.close()
        self.key = key
        (base / "alice.gid").write_text(self.gid.to_pem())
        (base / "alice.pkey").write_bytes(private_key_to_pem(key))
        self.context = client_context(roots, TlsIdentity(base / "alice.gid", base / "alice.pkey"))

    def registry(self, url: str) -> RpcEndpoint:
        return RpcEndpoint(url, self.context, 300)

    def am(self, url: str) -> AmEndpoint:
        return AmEndpoint(url, self.context, 300)

    def slice_credential(self, registry_url: str, slice_hrn: str) -> Any:
        endpoint = self.registry(registry_url)
        own = endpoint.call("GetSelfCredential", self.gid.to_pem(), self.gid.urn, "user")
        xml = endpoint.call("GetCredential", [own], hrn_to_urn(slice_hrn, "slice"), "slice")
        return parse_credential(xml)


def wrap(xml: str) -> dict[str, str]:
    return {"geni_type": "geni_sfa", "geni_version": "3", "geni_value": xml}


STEPS: dict[str, list[float]] = {}


def step(name: str, call: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    value = call()
    STEPS.setdefault(name, []).append(time.perf_counter() - started)
    return value


def to_ready(endpoint: AmEndpoint, slice_urn: str, creds: list[Any], rspec: str,
             users: list[dict[str, Any]], *, label: str = "") -> int:
    """Allocate, Provision, start, Status until ready; the number of slivers."""
    step(f"{label} Allocate", lambda: endpoint.call("Allocate", slice_urn, creds, rspec, {}))
    provisioned = step(f"{label} Provision", lambda: endpoint.call(
        "Provision", [slice_urn], creds, {"geni_rspec_version": GENI3, "geni_users": users}))
    _refuse_errors("Provision", provisioned.get("geni_slivers", []))
    step(f"{label} start", lambda: endpoint.call(
        "PerformOperationalAction", [slice_urn], creds, "geni_start", {}))
    while True:
        slivers = step(f"{label} Status", lambda: endpoint.call(
            "Status", [slice_urn], creds, {}))["geni_slivers"]
        _refuse_errors("Status", slivers)
        if all(s["geni_operational_status"] == "geni_ready" for s in slivers):
            return len(slivers)


def _refuse_errors(call: str, slivers: list[dict[str, Any]]) -> None:
    errors = [s["geni_error"] for s in slivers if s.get("geni_error")]
    if errors:
        raise SystemExit(f"{call}: {len(errors)} slivers failed, e.g. {errors[0]}")


@dataclass
class Sample:
    """One timed run: wall seconds, CPU seconds of every process, load average after."""

    seconds: float
    cpu: float
    load: float


def measure(action: Callable[[], int], children: Children, total: int, name: str) -> Sample:
    cpu = children.cpu_seconds() + _cpu_seconds()
    started = time.perf_counter()
    count = action()
    seconds = time.perf_counter() - started
    cpu = children.cpu_seconds() + _cpu_seconds() - cpu
    if count != total:
        raise SystemExit(f"{name}: {count} slivers ready, expected {total}")
    return Sample(seconds, cpu, os.getloadavg()[0])


def split_request(ad_xml: str) -> tuple[Request, dict[str, Request], int]:
    """A request for every advertised node, whole and per component manager; the count."""
    ad = read_rspec(ad_xml, expected_type="advertisement")
    parts: dict[str, Request] = {}
    whole = Request()
    for index, node in enumerate(ad.nodes):
        cm = node.component_manager_id or ""
        for request in (whole, parts.setdefault(cm, Request())):
            request.node(f"n{index}", component_id=node.component_id, component_manager_id=cm)
    return whole, parts, len(ad.nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100, help="nodes per authority")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--driver", choices=("nodemanager", "memory"), default="nodemanager")
    parser.add_argument("--node-processes", type=int, default=1,
                        help="node-manager processes per authority")
    parser.add_argument("--warm-up", type=int, choices=(0, 1), default=1,
                        help="one untimed run through the slice manager first")
    args = parser.parse_args()
    if args.rounds * 3 + 1 >= SLICES:
        parser.error(f"--rounds must be below {SLICES // 3}")
    base = Path(tempfile.mkdtemp(prefix="sfa-federation-"))
    base.chmod(0o711)  # slivers may run under their own uids (as root): let them traverse
    print(f"load average at the start: {os.getloadavg()[0]:.2f}", flush=True)
    user_key = generate_private_key()
    children = Children()
    try:
        run(base, args, user_key, children)
    finally:
        children.stop()


def run(base: Path, args: argparse.Namespace, user_key: Any, children: Children) -> None:
    deployments, urls = start_federation(base, args, user_key, children)
    roots = "".join((d.trusted_roots_dir / f"{h}.gid").read_text()
                    for h, d in deployments.items())
    alice = Alice(base, deployments["plc"], user_key, roots)
    sm_gid = deployments["plc"].service_identity("slicemgr").gid
    sm = alice.am(urls["plc"]["slicemgr"])
    users = [{"urn": alice.gid.urn, "keys": [public_key_to_openssh(user_key)]}]
    whole, parts, total = split_request(_text(sm.call("ListResources", [],
                                                      {"geni_rspec_version": GENI3})))
    driver = ("node managers: " + f"{args.node_processes} process(es) per authority"
              if args.driver == "nodemanager" else "in-memory driver")
    print(f"three authorities x {args.nodes} nodes; one slice of {total} nodes to geni_ready "
          f"({driver}), {args.rounds} rounds; {os.cpu_count()} cores", flush=True)

    counter = iter(range(1, SLICES))
    made: list[tuple[str, Any]] = []

    def next_slice() -> tuple[str, Any]:
        hrn = f"plc.bench{next(counter)}"
        made.append((hrn_to_urn(hrn, "slice"),
                     alice.slice_credential(urls["plc"]["registry"], hrn)))
        return made[-1]

    def delegated(cred: Any) -> list[dict[str, str]]:
        return [wrap(delegate_credential(cred, to=sm_gid, signer_key=user_key,
                                         signer=alice.gid).xml)]

    def clean_up() -> None:
        """Delete the last slice through the slice manager (untimed): nodes are exclusive."""
        slice_urn, cred = made[-1]
        sm.call("Delete", [slice_urn], delegated(cred), {"geni_best_effort": True})

    def via_sm() -> int:
        slice_urn, cred = next_slice()
        return to_ready(sm, slice_urn, delegated(cred), whole.to_xml(), users, label="sm")

    def one_by_one() -> int:
        slice_urn, cred = next_slice()
        return sum(to_ready(alice.am(_am_url(urls, cm)), slice_urn, [wrap(cred.xml)],
                            part.to_xml(), users, label="one aggregate")
                   for cm, part in parts.items())

    def client_threads() -> int:
        slice_urn, cred = next_slice()
        with ThreadPoolExecutor(len(parts)) as pool:
            done = pool.map(lambda item: to_ready(alice.am(_am_url(urls, item[0])), slice_urn,
                                                  [wrap(cred.xml)], item[1].to_xml(), users),
                            parts.items())
            return sum(done)

    paths = (("slice manager", via_sm), ("aggregate by aggregate", one_by_one),
             ("client threads", client_threads))
    if args.warm_up:  # the aggregates' start-up reconciliation with their nodes, first calls
        measure(via_sm, children, total, "warm-up")
        clean_up()
        STEPS.clear()
    results: dict[str, list[Sample]] = {name: [] for name, _ in paths}
    for number in range(1, args.rounds + 1):
        for name, action in paths:
            sample = measure(action, children, total, name)
            results[name].append(sample)
            print(f"  round {number}, {name}: {sample.seconds:.2f} s, CPU {sample.cpu:.1f} s, "
                  f"load {sample.load:.2f}", flush=True)
            clean_up()
    report(results)


def report(results: dict[str, list[Sample]]) -> None:
    cores = os.cpu_count() or 1
    medians = {name: statistics.median(s.seconds for s in samples)
               for name, samples in results.items()}
    for name, samples in results.items():
        cpu = statistics.median(s.cpu for s in samples)
        print(f"  {name:24s} median {medians[name]:7.2f} s  CPU {cpu:6.1f} s "
              f"({cpu / (cores * medians[name]):.0%} of {cores} cores)  "
              f"(runs: {', '.join(f'{s.seconds:.2f}' for s in samples)}; "
              f"load {', '.join(f'{s.load:.1f}' for s in samples)})")
    print(f"  ratio aggregate-by-aggregate / slice manager: "
          f"{medians['aggregate by aggregate'] / medians['slice manager']:.2f}x")
    print(f"  ratio client threads / slice manager:         "
          f"{medians['client threads'] / medians['slice manager']:.2f}x")
    print("  per step (median ms; 'one aggregate' is one of the three sequential calls):")
    for name, times in STEPS.items():
        if not name.startswith(" "):
            print(f"    {name:26s} {statistics.median(times) * 1000:8.1f}")


def _am_url(urls: dict[str, dict[str, str]], component_manager: str) -> str:
    hrn = component_manager.split("+")[1]
    return urls[hrn]["aggregate"]


def _text(value: Any) -> str:
    return value.data.decode() if hasattr(value, "data") else str(value)


if __name__ == "__main__":
    main()
