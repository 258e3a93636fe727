"""OMF fan-out: an experiment on N slivers through a real Prosody on 127.0.0.1.

One process holds the EC and N resource controllers (each its own XMPP session over TLS,
its own signature checks, its applications real processes); Prosody runs as a child. Timed:

  * start-up: from the EC's start (groups created as the aggregate creates them, login,
    hello with chain + credential to every RC, joins) to every RC having started the
    first application (`true`), as `sfi exp run` does after its two XML-RPC calls;
  * fan-out latency: for each of K further commands published once on the group node, the
    time from the EC's publish to each RC receiving it (N x K samples): p50, p99, max.

    .venv/bin/python benchmarks/omf_fanout.py [--slivers 100] [--commands 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sfa.deploy.xmpp import (  # noqa: E402
    AGGREGATE_ACCOUNT,
    account_password,
    create_account,
    free_port,
    write_prosody,
)
from sfa.omf.config import XmppLogin, XmppServer  # noqa: E402
from sfa.omf.ec import ExperimentController, UserIdentity  # noqa: E402
from sfa.omf.experiment import parse_experiment  # noqa: E402
from sfa.omf.messages import SenderBook, parse_message  # noqa: E402
from sfa.omf.provision import create_experiment_groups, create_slice_tree  # noqa: E402
from sfa.omf.rc import ResourceController  # noqa: E402
from sfa.omf.tree import ec_account, rc_account  # noqa: E402
from sfa.omf.xmpp import PubsubClient  # noqa: E402
from sfa.server.prosody import ProsodyProcess  # noqa: E402
from sfa.trust.credential import create_credential  # noqa: E402
from sfa.trust.hierarchy import AuthorityStore  # noqa: E402
from sfa.trust.keys import generate_private_key  # noqa: E402
from sfa.trust.roots import TrustedRoots  # noqa: E402
from sfa.trust.verify import TrustPolicy  # noqa: E402

ROOT, SLICE, EXP = "bench", "bench.fanout", "fanout-1"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def description(nodes: list[str], commands: int) -> str:
    members = ", ".join(f'"{n}"' for n in nodes)
    steps = "".join(f'[[step]]\ngroup = "all"\napp = "cmd{i}"\ncommand = ["true"]\n'
                    f'wait = "{"started" if i == 0 else "exit"}"\n\n'
                    for i in range(commands + 1))
    return (f'[experiment]\nslice = "{SLICE}"\nname = "fanout"\ntimeout_seconds = 600\n\n'
            f"[groups]\nall = [{members}]\n\n{steps}")


def pki(base: Path) -> tuple[Any, Path, UserIdentity, str]:
    """Root `bench`, user alice with a credential for the slice: (authority, roots dir,
    alice's identity, the slice URN)."""
    authority = AuthorityStore(base / "authorities").create_root(ROOT)
    roots = base / "roots"
    roots.mkdir()
    TrustedRoots(roots).write(authority.gid, f"{ROOT}.gid")
    user_gid, user_key = authority.issue_gid(f"{ROOT}.alice", "user")
    slice_gid, _ = authority.issue_gid(SLICE, "slice", generate_private_key().public_key())
    credential = create_credential(owner=user_gid, target=slice_gid, privileges="*",
                                   expires=datetime.now(UTC) + timedelta(hours=1),
                                   signer_key=authority.key, signer=authority.gid).xml
    assert user_key is not None
    user = UserIdentity(user_gid.urn, user_key, user_gid.to_pem(include_chain=True), credential)
    return authority, roots, user, slice_gid.urn


async def run(slivers: int, commands: int, base: Path) -> dict[str, Any]:
    authority, roots, user, slice_urn = pki(base)
    server = XmppServer("127.0.0.1", free_port("127.0.0.1"), "localhost", "pubsub.localhost")
    paths = write_prosody(base / "xmpp", server, authority, [AGGREGATE_ACCOUNT],
                          admins=[server.jid(AGGREGATE_ACCOUNT)])
    ca = roots / f"{ROOT}.gid"
    prosody = ProsodyProcess(paths, server)
    prosody.start()
    nodes = [f"{ROOT}.node{i}" for i in range(1, slivers + 1)]
    sliver_key = generate_private_key()
    policy = TrustPolicy(TrustedRoots(roots))
    arrivals: dict[int, list[float]] = {}
    try:
        def login(account: str) -> XmppLogin:
            create_account(paths, server.domain, account)
            return XmppLogin(server, ca, account, account_password(paths, account))

        admin = PubsubClient(XmppLogin(server, ca, AGGREGATE_ACCOUNT,
                                       account_password(paths, AGGREGATE_ACCOUNT)))
        await admin.connect()
        ec_login = login(ec_account(f"{ROOT}.alice", SLICE))
        await create_slice_tree(admin, SLICE, nodes, domain=server.domain,
                                ec_jids=[ec_login.jid])
        rcs = []
        for node in nodes:
            client = PubsubClient(login(rc_account(SLICE, node)))
            rc = ResourceController(
                SLICE, node, senders=SenderBook(policy, SLICE, slice_urn), key=sliver_key,
                pubsub=client, workdir=base)
            client.on_item = _timed(rc, arrivals)
            rcs.append((client, rc))
        await asyncio.gather(*(client.connect() for client, _ in rcs))
        await asyncio.gather(*(rc.start() for _, rc in rcs))
        experiment = parse_experiment(description(nodes, commands))
        published: dict[int, float] = {}
        ec_client = PubsubClient(ec_login)
        ec = ExperimentController(experiment, EXP, user, pubsub=_Recorder(ec_client, published),
                                  rc_keys={n: sliver_key.public_key() for n in nodes})
        ec_client.on_item = ec.on_item
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        await create_experiment_groups(admin, SLICE, EXP, ["all"], [ec_login.jid])
        await ec_client.connect()
        first_started: list[float] = []

        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "started" and event.get("app") == "cmd0":
                first_started.append(time.monotonic())

        ec.on_event = on_event
        result = await ec.run()
        finished = time.monotonic()
        assert len(first_started) == slivers, len(first_started)
        exec_seqs = [seq for seq, t in sorted(published.items(), key=lambda kv: kv[1])
                     if seq in arrivals]
        latencies = [arrival - published[seq] for seq in exec_seqs[1:]
                     for arrival in arrivals[seq]]
        for client, rc in rcs:
            await rc.stop()
            await client.close()
        await ec_client.close()
        await admin.close()
        return {
            "slivers": slivers, "commands": commands,
            "start_to_all_started_s": max(first_started) - started,
            "whole_run_s": finished - started,
            "fanout_samples": len(latencies),
            "fanout_p50_ms": 1000 * statistics.median(latencies),
            "fanout_p99_ms": 1000 * percentile(latencies, 0.99),
            "fanout_max_ms": 1000 * max(latencies),
            "apps_ok": result.succeeded,
            "load_before": load_before, "load_after": os.getloadavg()[0],
        }
    finally:
        prosody.stop()


def _timed(rc: ResourceController, arrivals: dict[int, list[float]]) -> Any:
    """The RC's item handler, noting when each exec command arrives."""
    async def on_item(topic: str, text: str) -> None:
        now = time.monotonic()
        message = parse_message(text).message
        if message.kind == "exec":
            arrivals.setdefault(message.seq, []).append(now)
        await rc.on_item(topic, text)

    return on_item


class _Recorder:
    """The EC's pubsub, noting when each exec is published (after the server accepted it is
    too late: that is the round trip; the time before the publish call is what we want)."""

    def __init__(self, client: PubsubClient, published: dict[int, float]) -> None:
        self.client, self.published = client, published

    async def subscribe(self, node: str) -> None:
        await self.client.subscribe(node)

    async def unsubscribe(self, node: str) -> None:
        await self.client.unsubscribe(node)

    async def publish(self, node: str, text: str) -> None:
        message = parse_message(text).message
        if message.kind == "exec":
            self.published[message.seq] = time.monotonic()
        await self.client.publish(node, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slivers", type=int, default=100)
    parser.add_argument("--commands", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="omf-fanout-") as base:
        figures = asyncio.run(run(args.slivers, args.commands, Path(base)))
    for key, value in figures.items():
        print(f"{key:24} {value:.3f}" if isinstance(value, float) else f"{key:24} {value}")


if __name__ == "__main__":
    main()
