"""End to end over a real Prosody: the /OMF tree for a 4-node slice, four real `sfa rc`
processes subscribed, a senders/receivers experiment on loopback run by the EC, outputs
collected, and the tree removed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sfa.demo_omf import experiment_description, free_loopback_port
from sfa.deploy.xmpp import AGGREGATE_ACCOUNT
from sfa.omf.ec import ExperimentController
from sfa.omf.experiment import parse_experiment
from sfa.omf.provision import create_experiment_groups, create_slice_tree, remove_slice_tree
from sfa.omf.tree import resource_node
from sfa.omf.xmpp import PubsubClient
from tests.omf.conftest import ROOT, Pki, RcProcess, Xmpp, await_ready, start_rc

NODES = ["node1", "node2", "node3", "node4"]



def experiment_text(port: int) -> str:
    """The demo's senders/receivers description on slice sa: node1, node2 receive what node3,
    node4 send."""
    return experiment_description(port, f"{ROOT}.sa", [f"{ROOT}.node1", f"{ROOT}.node2"],
                                  [f"{ROOT}.node3", f"{ROOT}.node4"])


def test_two_group_experiment_end_to_end(xmpp: Xmpp, pki: Pki, tmp_path: Path):
    slice_hrn = f"{ROOT}.sa"
    node_hrns = [f"{ROOT}.{n}" for n in NODES]
    experiment = parse_experiment(experiment_text(free_loopback_port()))
    alice_ec = xmpp.ec_login("alice", "sa")
    rcs: list[RcProcess] = []

    async def scenario() -> None:
        admin = PubsubClient(xmpp.login(AGGREGATE_ACCOUNT))
        await admin.connect()
        made = await create_slice_tree(admin, slice_hrn, node_hrns, domain=xmpp.server.domain,
                                       ec_jids=[alice_ec.jid])
        assert set(made) <= set(await admin.list_nodes())
        rcs.extend(start_rc(xmpp, pki, "sa", n, tmp_path / n) for n in NODES)
        await asyncio.to_thread(await_ready, rcs)
        await create_experiment_groups(admin, slice_hrn, "pingpong-1", experiment.groups,
                                       [alice_ec.jid])
        events: list[dict] = []
        ec_client = PubsubClient(alice_ec)
        ec = ExperimentController(
            experiment, "pingpong-1", pki.identity("alice", "sa"), pubsub=ec_client,
            rc_keys={rc.node_hrn: rc.key.public_key() for rc in rcs}, on_event=events.append)
        ec_client.on_item = ec.on_item
        await ec_client.connect()
        run = await ec.run()
        await ec_client.close()
        results = run.results()
        for index, receiver in enumerate(node_hrns[:2]):
            listen = results[receiver]["listen"]
            assert listen["exit_code"] == 0, listen
            assert f"received: hello from {node_hrns[2 + index]}" in listen["stdout"]
        for sender in node_hrns[2:]:
            assert results[sender]["send"]["exit_code"] == 0, results[sender]
        assert run.succeeded and not run.refused
        kinds = [e["event"] for e in events]
        assert kinds.count("hello") == 4 and kinds.count("joined") == 4
        assert kinds.count("started") == 4 and kinds.count("exited") == 4
        removed = await remove_slice_tree(admin, slice_hrn)
        assert resource_node(slice_hrn, node_hrns[0]) in removed
        assert "/OMF/w13o.sa/pingpong-1/senders" in removed
        left = await admin.list_nodes()
        assert not [n for n in left if n.startswith(f"/OMF/{slice_hrn}")], left
        await admin.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        for rc in rcs:
            rc.stop()
