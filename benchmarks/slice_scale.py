"""Slice scale: one slice on N node managers over real TLS, end to end.

The node managers run in one child process (`sfa serve`'s start_node_managers: each node its
own TLS port, slivers as real directories); the aggregate (node-manager driver, parallelism 32
then 1) runs in this process. Timed: Allocate (tickets signed), Provision (tickets redeemed,
slivers created) and geni_start, for 10, 100 and 1,000 nodes.

    .venv/bin/python benchmarks/slice_scale.py [--sizes 10 100 1000] [--sequential-up-to 100]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from twisted.internet.threads import blockingCallFromThread  # noqa: E402

from sfa.aggregate.nm_driver import NodeManagerDriver  # noqa: E402
from sfa.server.am_api import open_aggregate  # noqa: E402
from sfa.server.cli_admin import open_admin  # noqa: E402
from sfa.server.deployment import Deployment, init_deployment  # noqa: E402
from sfa.timeutil import utcnow  # noqa: E402
from sfa.trust.credential import create_credential  # noqa: E402
from sfa.trust.gid import GID  # noqa: E402
from sfa.trust.keys import generate_private_key, public_key_to_openssh  # noqa: E402

GENI3 = {"type": "GENI", "version": "3"}
NODES_CHILD = """
import sys
from twisted.internet import reactor
from sfa.server.app import start_node_managers
from sfa.server.deployment import Deployment
def start():
    start_node_managers(reactor, Deployment.load(sys.argv[1]), lambda line: None)
    print("ready", flush=True)
reactor.callWhenRunning(start)
reactor.run()
"""


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


def timed(label: str, function: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def run_once(am: Any, user: GID, slice_urn: str, cred: str, count: int) -> dict[str, float]:
    users = {"geni_users": [{"urn": user.urn, "keys": ["ssh-rsa AAAAB3Nza bench@lab"]}],
             "geni_rspec_version": GENI3}
    times: dict[str, float] = {}
    times["allocate"], allocated = timed("allocate", am.allocate, user, slice_urn, [cred],
                                         request(count), {})
    assert len(allocated["geni_slivers"]) == count
    times["provision"], provisioned = timed("provision", am.provision, user, [slice_urn],
                                            [cred], users)
    errors = [s["geni_error"] for s in provisioned["geni_slivers"] if s.get("geni_error")]
    assert not errors, errors[:3]
    times["start"], started = timed("start", am.perform_operational_action, user, [slice_urn],
                                    [cred], "geni_start", {})
    assert {s["geni_operational_status"] for s in started} == {"geni_ready"}
    times["total"] = times["allocate"] + times["provision"] + times["start"]
    times["delete"], _ = timed("delete", am.delete, user, [slice_urn], [cred], {})
    return times


def measure(count: int, sequential: bool) -> None:
    from twisted.internet import reactor  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="slice-scale-") as tmp:
        deployment, user, slice_urn, cred = make_deployment(Path(tmp), count)
        child = subprocess.Popen([sys.executable, "-c", NODES_CHILD, str(deployment.directory)],
                                 stdout=subprocess.PIPE, text=True, cwd=REPO)
        try:
            assert child.stdout is not None
            started = time.perf_counter()
            assert child.stdout.readline().strip() == "ready"
            print(f"  {count} node managers listening after "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            am = blockingCallFromThread(reactor, open_aggregate, deployment, reactor)
            driver = am.ctx.driver
            assert isinstance(driver, NodeManagerDriver)
            modes = [("parallel 32", 32)] + ([("sequential", 1)] if sequential else [])
            results = {}
            for label, parallelism in modes:
                driver.client.parallelism = parallelism
                blockingCallFromThread(reactor, driver.client.close)  # cold connections
                results[label] = run_once(am, user, slice_urn, cred, count)
                shown = ", ".join(f"{k} {v:.2f} s" for k, v in results[label].items())
                print(f"  {count} nodes, {label}: {shown}", flush=True)
            if sequential:
                ratio = results["sequential"]["total"] / results["parallel 32"]["total"]
                print(f"  {count} nodes: parallel is {ratio:.1f}x sequential", flush=True)
        finally:
            child.terminate()
            child.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--sequential-up-to", type=int, default=1000)
    args = parser.parse_args()
    from twisted.internet import reactor  # noqa: PLC0415

    thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                              daemon=True)
    thread.start()
    for count in args.sizes:
        print(f"{count} nodes:", flush=True)
        measure(count, count <= args.sequential_up_to)
    reactor.callFromThread(reactor.stop)


if __name__ == "__main__":
    main()
