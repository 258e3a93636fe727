"""Slice scale: one slice on N node managers over real TLS, end to end.

The node managers run in `--node-processes` child processes (each node its own TLS port,
slivers as real directories, SQLite per node); the aggregate (node-manager driver, parallelism
32, then 1) runs in this process. Timed: Allocate, Provision (tickets signed and redeemed,
slivers created) and geni_start, for 10, 100 and 1,000 nodes; with the CPU time of this
process and of the node processes, and the load average.

    .venv/bin/python benchmarks/slice_scale.py [--sizes 10 100 1000] [--sequential-up-to N]
        [--node-processes 2] [--profile DIR]

`--profile DIR` writes cProfile statistics (thread CPU time) of every thread of every process
to DIR.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from twisted.internet.threads import blockingCallFromThread  # noqa: E402

from sfa.aggregate.nm_book import NodeManagerBook, NodeManagerEntry  # noqa: E402
from sfa.aggregate.nm_driver import NodeManagerDriver  # noqa: E402
from sfa.aggregate.store import AggregateStore  # noqa: E402
from sfa.cli.admin import open_admin  # noqa: E402
from sfa.deploy.layout import Deployment, init_deployment  # noqa: E402
from sfa.server.am_api import AGGREGATE_DB, open_aggregate  # noqa: E402
from sfa.server.reactor import install_asyncio_reactor  # noqa: E402
from sfa.timeutil import utcnow  # noqa: E402
from sfa.trust.credential import create_credential  # noqa: E402
from sfa.trust.gid import GID  # noqa: E402
from sfa.trust.keys import generate_private_key, public_key_to_openssh  # noqa: E402

GENI3 = {"type": "GENI", "version": "3"}
Launch = Callable[..., "subprocess.Popen[str]"]
# One node-manager process: serves DIR/nodes[index::count] on HOST (default 127.0.0.1) and
# prints "node URN URL" per node, then "ready"; answers each line on stdin with
# "cpu SECONDS DESCRIPTORS"; exits at its end.
NODES_CHILD = """
import os, resource, sys, threading
sys.path.insert(0, {repo!r})
from benchmarks.slice_scale import ThreadProfiles
profiles = ThreadProfiles(os.environ.get("SLICE_SCALE_PROFILE", ""), "nodes" + sys.argv[2])
from twisted.internet import reactor
from sfa.nodemanager.nodedir import load_node_config, open_node
from sfa.deploy.layout import Deployment, node_dirs
from sfa.server.nm_api import start_node_manager
from sfa.server.xmlrpc import CallPool
deployment = Deployment.load(sys.argv[1])
index, count = int(sys.argv[2]), int(sys.argv[3])
host = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"
def start():
    limits = deployment.config.limits
    threads = int(os.environ.get("SLICE_SCALE_THREADS", "0")) or limits.max_concurrent_calls * 2
    pool = CallPool(reactor, threads, name="sfa-nodemanagers")
    for nodedir in node_dirs(deployment)[index::count]:
        config = load_node_config(nodedir)
        nm = open_node(nodedir, config=config)
        nm.recover()
        service = start_node_manager(reactor, nm, host=host, port=0, limits=limits,
                                     pool=pool)
        print("node", nm.urn, service.url)
    print("ready", flush=True)
def wait_for_end():
    for _ in sys.stdin:  # each line asks for CPU seconds and open descriptors
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print("cpu", usage.ru_utime + usage.ru_stime, len(os.listdir("/proc/self/fd")),
              flush=True)
    profiles.save()
    reactor.callFromThread(reactor.stop)
threading.Thread(target=wait_for_end, daemon=True).start()
reactor.callWhenRunning(start)
reactor.run()
"""


class ThreadProfiles:
    """cProfile of every thread started from now on (and of the caller), saved per thread."""

    def __init__(self, directory: str, label: str) -> None:
        self.directory, self.label = directory, label
        self.profiles: list[Any] = []
        if directory:
            import cProfile  # noqa: PLC0415

            def start(*_: Any) -> None:
                sys.setprofile(None)
                profile = cProfile.Profile(time.thread_time)  # CPU, not GIL waits
                self.profiles.append(profile)
                profile.enable()

            threading.setprofile(start)
            start()

    def save(self) -> None:
        for number, profile in enumerate(self.profiles):
            profile.disable()
            profile.dump_stats(os.path.join(self.directory, f"{self.label}-{number}.prof"))


def request(count: int) -> str:
    nodes = "".join(f'<node client_id="n{i}" exclusive="false"/>' for i in range(count))
    return f'<rspec xmlns="http://www.geni.net/resources/rspec/3" type="request">{nodes}</rspec>'


def make_deployment(base: Path, count: int) -> tuple[Deployment, GID, str, str]:
    started = time.perf_counter()
    deployment = init_deployment(base / "plc", authority="plc", registry_port=0, am_port=0,
                                 nm_base_port=0, nodes=count)
    admin = open_admin(deployment)
    try:
        user = admin.admin_add_user("plc.alice", pubkey=public_key_to_openssh(
            generate_private_key().public_key()))
        record = admin.admin_add_slice("plc.bench", ["plc.alice"])
    finally:
        admin.close()
    user_gid, slice_gid = GID.from_pem(user.record.gid or ""), GID.from_pem(record.gid or "")
    root = deployment.root_authority()
    cred = create_credential(owner=user_gid, target=slice_gid, privileges="*",
                             expires=utcnow() + timedelta(days=2), signer_key=root.key,
                             signer=root.gid)
    print(f"  init of {count} nodes: {time.perf_counter() - started:.1f} s", flush=True)
    return deployment, user_gid, slice_gid.urn, cred.xml


def twisted_reactor() -> Any:
    return install_asyncio_reactor()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(function: Callable[..., Any], *args: Any, cpu: dict[str, float] | None = None,
          label: str = "") -> tuple[float, Any]:
    """Wall seconds of function(*args) and its result; with `cpu`, this process's CPU
    seconds during the call go into cpu[label]."""
    started, used = time.perf_counter(), cpu_seconds()
    result = function(*args)
    if cpu is not None:
        cpu[label] = cpu_seconds() - used
    return time.perf_counter() - started, result


def run_once(am: Any, user: GID, slice_urn: str, cred: str, count: int, *,
             children: list[subprocess.Popen[str]]) -> dict[str, float]:
    users = {"geni_users": [{"urn": user.urn, "keys": ["ssh-rsa AAAAB3Nza bench@lab"]}],
             "geni_rspec_version": GENI3}
    times: dict[str, float] = {}
    cpu, node_cpu = cpu_seconds(), node_usage(children)[0]
    phases: dict[str, float] = {}
    times["allocate"], allocated = timed(am.allocate, user, slice_urn, [cred], request(count),
                                         {}, cpu=phases, label="allocate")
    assert len(allocated["geni_slivers"]) == count
    times["provision"], provisioned = timed(am.provision, user, [slice_urn], [cred], users,
                                            cpu=phases, label="provision")
    errors = [s["geni_error"] for s in provisioned["geni_slivers"] if s.get("geni_error")]
    assert not errors, errors[:3]
    times["start"], started = timed(am.perform_operational_action, user, [slice_urn], [cred],
                                    "geni_start", {})
    failed = [s for s in started if s["geni_operational_status"] != "geni_ready"]
    assert not failed, failed[:3]
    times["total"] = times["allocate"] + times["provision"] + times["start"]
    times["am cpu"] = cpu_seconds() - cpu
    times["am cpu allocate"], times["am cpu provision"] = phases["allocate"], phases["provision"]
    times["nodes cpu"] = node_usage(children)[0] - node_cpu
    times["cpu use"] = (times["am cpu"] + times["nodes cpu"]) / (2 * times["total"])
    times["delete"], _ = timed(am.delete, user, [slice_urn], [cred], {})
    return times


def start_nodes(deployment: Deployment, processes: int, profile: str,
                launch: Launch | None = None, hosts: Sequence[str] = ("127.0.0.1",)
                ) -> list[subprocess.Popen[str]]:
    """The node-manager processes (process i listens on hosts[i % len(hosts)], started by
    `launch(i, argv, **popen_options)`); their URLs go into the aggregate's inventory."""
    launch = launch or (lambda _, argv, **options: subprocess.Popen(argv, **options))
    code = NODES_CHILD.format(repo=str(REPO))
    env = {**os.environ, "SLICE_SCALE_PROFILE": profile}
    children = [launch(index, [sys.executable, "-c", code, str(deployment.directory), str(index),
                        str(processes), hosts[index % len(hosts)]], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
                for index in range(processes)]
    entries = []
    for child in children:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "ready":
                break
            _, urn, url = line.split()
            entries.append(NodeManagerEntry(urn, url, ""))
    gids = {d.name: d for d in (deployment.directory / "nodes").iterdir()}
    pems = {}
    for nodedir in gids.values():
        gid = GID.from_pem((nodedir / "node.gid").read_bytes())
        pems[gid.urn] = gid.to_pem()
    store = AggregateStore(deployment.db_dir / AGGREGATE_DB)
    try:
        NodeManagerBook(store.database).set_managers(
            [NodeManagerEntry(e.node_urn, e.url, pems[e.node_urn]) for e in entries])
    finally:
        store.close()
    return children


def node_usage(children: list[subprocess.Popen[str]]) -> tuple[float, int]:
    """The node processes' CPU seconds in all, and the most descriptors one holds."""
    total, descriptors = 0.0, 0
    for child in children:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("cpu\n")
        child.stdin.flush()
        _, seconds, count = child.stdout.readline().split()
        total, descriptors = total + float(seconds), max(descriptors, int(count))
    return total, descriptors


def stop_nodes(children: list[subprocess.Popen[str]]) -> None:
    for child in children:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(60)


def measure(count: int, sequential: bool, processes: int, profile: str) -> None:
    reactor = twisted_reactor()

    with tempfile.TemporaryDirectory(prefix="slice-scale-") as tmp:
        deployment, user, slice_urn, cred = make_deployment(Path(tmp), count)
        started = time.perf_counter()
        children = start_nodes(deployment, processes, profile)
        print(f"  {count} node managers in {processes} processes listening after "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        try:
            am = blockingCallFromThread(reactor, open_aggregate, deployment, reactor)
            driver = am.ctx.driver
            assert isinstance(driver, NodeManagerDriver)
            client: Any = driver.client  # TwistedNodeClient
            modes = [("parallel 32", 32)] + ([("sequential", 1)] if sequential else [])
            results = {}
            for label, parallelism in modes:
                client.parallelism = parallelism
                blockingCallFromThread(reactor, client.close)  # cold connections
                results[label] = run_once(am, user, slice_urn, cred, count, children=children)
                shown = ", ".join(f"{k} {v:.0%}" if k == "cpu use" else f"{k} {v:.2f} s"
                                  for k, v in results[label].items())
                print(f"  {count} nodes, {label}: {shown}; load {os.getloadavg()[0]:.2f}",
                      flush=True)
            if sequential:
                ratio = results["sequential"]["total"] / results["parallel 32"]["total"]
                print(f"  {count} nodes: parallel is {ratio:.1f}x sequential", flush=True)
            descriptors = node_usage(children)[1]
            print(f"  open descriptors at the end: {descriptors} in the largest node process",
                  flush=True)
        finally:
            stop_nodes(children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--sequential-up-to", type=int, default=1000)
    parser.add_argument("--node-processes", type=int, default=2)
    parser.add_argument("--profile", default="", help="write cProfile stats to this directory")
    args = parser.parse_args()
    profile = os.path.abspath(args.profile) if args.profile else ""
    if profile:
        os.makedirs(profile, exist_ok=True)
    profiles = ThreadProfiles(profile, "aggregate")
    reactor = twisted_reactor()

    thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                              daemon=True)
    thread.start()
    for count in args.sizes:
        print(f"{count} nodes:", flush=True)
        measure(count, count <= args.sequential_up_to, args.node_processes, profile)
    reactor.callFromThread(reactor.stop)
    profiles.save()


if __name__ == "__main__":
    main()
