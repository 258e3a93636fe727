"""Federation: one 300-node slice over three authorities (100 nodes each), through plc's slice
manager versus aggregate by aggregate.

Each authority (registry + aggregate, in-memory driver; plc also runs the slice manager) is
served over real TLS from its own process; they trust each other's roots and are peered the way
`sfa admin` does it. A plc user gets a slice credential from plc's registry and takes the slice
to ready (Allocate, Provision, PerformOperationalAction geni_start, Status until every sliver
is geni_ready): once through the slice manager (one call per step, fanned out in parallel),
once aggregate by aggregate in sequence, and once aggregate by aggregate from client threads
(what sfi does). Prints medians over --rounds and the ratios.

    .venv/bin/python benchmarks/federation.py [--nodes 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sfa.aggregate.inventory import generate_nodes  # noqa: E402
from sfa.aggregate.store import AggregateStore  # noqa: E402
from sfa.client.transport import AmEndpoint, RpcEndpoint, TlsIdentity, client_context  # noqa: E402
from sfa.rspecs.builder import Request  # noqa: E402
from sfa.rspecs.reader import read_rspec  # noqa: E402
from sfa.server.am_api import AGGREGATE_DB, open_aggregate, start_aggregate_service  # noqa: E402
from sfa.server.cli_admin import open_admin  # noqa: E402
from sfa.server.cli_trust_admin import add_root  # noqa: E402
from sfa.server.deployment import Deployment, init_deployment  # noqa: E402
from sfa.server.envelope import FaultReplies  # noqa: E402
from sfa.server.peers import Peer, add_peer, peers_path  # noqa: E402
from sfa.server.registry_api import registry_handlers  # noqa: E402
from sfa.server.service import start_service  # noqa: E402
from sfa.server.sm_api import start_deployment_slicemgr  # noqa: E402
from sfa.trust.credential import delegate_credential, parse_credential  # noqa: E402
from sfa.trust.gid import GID  # noqa: E402
from sfa.trust.keys import generate_private_key, private_key_to_pem, public_key_to_openssh  # noqa: E402
from sfa.xrn import hrn_to_urn  # noqa: E402

AUTHORITIES = ("plc", "ple", "ppk")
GENI3 = {"type": "GENI", "version": "3"}


def serve(directory: str, with_sm: bool, conn: Connection) -> None:
    """A child process: the deployment's registry and aggregate (and slice manager)."""
    from twisted.internet import reactor as _reactor  # noqa: PLC0415 - installs the reactor

    reactor: Any = _reactor
    deployment = Deployment.load(directory)

    def start() -> None:
        limits, host = deployment.config.limits, "127.0.0.1"
        registry_id = deployment.service_identity("registry")
        registry = start_service(reactor, name="registry",
                                 handlers=registry_handlers(deployment),
                                 replies=FaultReplies(), gid=registry_id.gid,
                                 key=registry_id.key, host=host, port=0, limits=limits)
        am_id = deployment.service_identity("aggregate")
        aggregate = start_aggregate_service(reactor, open_aggregate(deployment, reactor),
                                            gid=am_id.gid, key=am_id.key, host=host, port=0,
                                            limits=limits)
        urls = {"registry": registry.url, "aggregate": aggregate.url}
        if with_sm:
            urls["slicemgr"] = start_deployment_slicemgr(
                reactor, deployment, aggregate_url=aggregate.url).url
        conn.send(urls)

    def wait_for_parent() -> None:
        try:
            conn.recv()
        except EOFError:
            pass
        reactor.callFromThread(reactor.stop)

    threading.Thread(target=wait_for_parent, daemon=True).start()
    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)


def deploy(base: Path, hrn: str, nodes: int, user_key: Any) -> Deployment:
    deployment = init_deployment(base / hrn, authority=hrn, registry_port=0, am_port=0,
                                 sm_port=0)
    if hrn == "plc":
        admin = open_admin(deployment)
        try:
            admin.admin_add_user("plc.alice", pubkey=public_key_to_openssh(user_key))
            for index in range(1, 40):
                admin.admin_add_slice(f"plc.bench{index}", ["plc.alice"])
        finally:
            admin.close()
    store = AggregateStore(deployment.db_dir / AGGREGATE_DB)
    store.upsert_nodes(generate_nodes(hrn, nodes, sites=4, capacity=4))
    store.close()
    return deployment


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
    step(f"{label} Provision", lambda: endpoint.call(
        "Provision", [slice_urn], creds, {"geni_rspec_version": GENI3, "geni_users": users}))
    step(f"{label} start", lambda: endpoint.call(
        "PerformOperationalAction", [slice_urn], creds, "geni_start", {}))
    while True:
        slivers = step(f"{label} Status", lambda: endpoint.call(
            "Status", [slice_urn], creds, {}))["geni_slivers"]
        if all(s["geni_operational_status"] == "geni_ready" for s in slivers):
            return len(slivers)


def timed(action: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    count = action()
    return time.perf_counter() - started, count


def start_federation(base: Path, nodes: int, user_key: Any
                     ) -> tuple[dict[str, Deployment], list[Any], dict[str, dict[str, str]]]:
    """Deploy, serve (one process each) and peer the three authorities."""
    deployments = {hrn: deploy(base, hrn, nodes, user_key) for hrn in AUTHORITIES}
    spawn = multiprocessing.get_context("spawn")
    children, urls = [], {}
    for hrn, deployment in deployments.items():
        parent_end, child_end = spawn.Pipe()
        process = spawn.Process(target=serve, args=(str(deployment.directory), hrn == "plc",
                                                    child_end), daemon=True)
        process.start()
        children.append((process, parent_end))
        urls[hrn] = parent_end.recv()
    for hrn, deployment in deployments.items():  # trust and peer every other authority
        for other, other_dep in deployments.items():
            if other != hrn:
                add_root(deployment, other_dep.trusted_roots_dir / f"{other}.gid")
                add_peer(peers_path(deployment), Peer(other, urls[other]["registry"],
                                                      urls[other]["aggregate"]), own_hrn=hrn)
    return deployments, children, urls


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100, help="nodes per authority")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sfa-federation-"))
    user_key = generate_private_key()
    deployments, children, urls = start_federation(base, args.nodes, user_key)
    roots = "".join((d.trusted_roots_dir / f"{h}.gid").read_text()
                    for h, d in deployments.items())
    alice = Alice(base, deployments["plc"], user_key, roots)
    sm_gid = deployments["plc"].service_identity("slicemgr").gid
    sm = alice.am(urls["plc"]["slicemgr"])
    users = [{"urn": alice.gid.urn, "keys": [public_key_to_openssh(user_key)]}]

    ad = read_rspec(_text(sm.call("ListResources", [], {"geni_rspec_version": GENI3})),
                    expected_type="advertisement")
    parts: dict[str, Request] = {}
    whole = Request()
    for index, node in enumerate(ad.nodes):
        cm = node.component_manager_id or ""
        for request in (whole, parts.setdefault(cm, Request())):
            request.node(f"n{index}", component_id=node.component_id, component_manager_id=cm)
    total = len(ad.nodes)
    print(f"three authorities x {args.nodes} nodes; one slice of {total} nodes to geni_ready "
          f"(in-memory driver), {args.rounds} rounds")

    counter = iter(range(1, 40))
    made: list[tuple[str, Any]] = []

    def next_slice() -> tuple[str, Any]:
        hrn = f"plc.bench{next(counter)}"
        made.append((hrn_to_urn(hrn, "slice"),
                     alice.slice_credential(urls["plc"]["registry"], hrn)))
        return made[-1]

    def clean_up() -> None:
        """Delete the last slice through the slice manager (untimed): nodes are exclusive."""
        slice_urn, cred = made[-1]
        delegated = delegate_credential(cred, to=sm_gid, signer_key=user_key, signer=alice.gid)
        sm.call("Delete", [slice_urn], [wrap(delegated.xml)], {"geni_best_effort": True})

    def via_sm() -> int:
        slice_urn, cred = next_slice()
        delegated = delegate_credential(cred, to=sm_gid, signer_key=user_key, signer=alice.gid)
        return to_ready(sm, slice_urn, [wrap(delegated.xml)], whole.to_xml(), users, label="sm")

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

    results: dict[str, list[float]] = {"slice manager": [], "aggregate by aggregate": [],
                                       "client threads": []}
    for _ in range(args.rounds):
        for name, action in (("slice manager", via_sm), ("aggregate by aggregate", one_by_one),
                             ("client threads", client_threads)):
            seconds, count = timed(action)
            if count != total:
                raise SystemExit(f"{name}: {count} slivers ready, expected {total}")
            results[name].append(seconds)
            clean_up()
    medians = {name: statistics.median(samples) for name, samples in results.items()}
    for name, median in medians.items():
        print(f"  {name:24s} median {median * 1000:8.1f} ms  "
              f"(runs: {', '.join(f'{s * 1000:.0f}' for s in results[name])})")
    print(f"  ratio aggregate-by-aggregate / slice manager: "
          f"{medians['aggregate by aggregate'] / medians['slice manager']:.2f}x")
    print(f"  ratio client threads / slice manager:         "
          f"{medians['client threads'] / medians['slice manager']:.2f}x")
    print_steps()
    stop(children)


def stop(children: list[Any]) -> None:
    for process, conn in children:
        conn.send("stop")
        process.join(10)


def print_steps() -> None:
    print("  per step (median ms; 'one aggregate' is one of the three sequential calls):")
    for name, samples in STEPS.items():
        if not name.startswith(" "):
            print(f"    {name:26s} {statistics.median(samples) * 1000:8.1f}")


def _am_url(urls: dict[str, dict[str, str]], component_manager: str) -> str:
    hrn = component_manager.split("+")[1]
    return urls[hrn]["aggregate"]


def _text(value: Any) -> str:
    return value.data.decode() if hasattr(value, "data") else str(value)


if __name__ == "__main__":
    main()
