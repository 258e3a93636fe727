"""Every refusal of the issue against a real `sfa rc` over a real Prosody: an unsigned command,
one signed by another user, a replayed one, a credential for another slice, and an RC of slice
A publishing into slice B. Each is refused and logged and runs nothing; the RC still serves
alice afterwards."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sfa.deploy.xmpp import AGGREGATE_ACCOUNT
from sfa.errors import Forbidden
from sfa.omf.ec import UserIdentity
from sfa.omf.messages import HELLO, Message, SequenceNumbers, sign_message
from sfa.omf.provision import create_experiment_groups, create_slice_tree, remove_slice_tree
from sfa.omf.rc import ResourceController
from sfa.omf.tree import group_node, rc_account, resource_node
from sfa.omf.xmpp import PubsubClient
from sfa.timeutil import utcnow
from tests.omf.conftest import ROOT, Pki, RcProcess, Xmpp, await_ready, close_loop, start_rc

SA, SB = f"{ROOT}.sa", f"{ROOT}.sb"
NODE_A, NODE_B = f"{ROOT}.node5", f"{ROOT}.node6"
EXP = "attack"


@dataclass
class Stage:
    xmpp: Xmpp
    pki: Pki
    rc_a: RcProcess
    rc_b: RcProcess
    loop: asyncio.AbstractEventLoop
    clients: dict[str, PubsubClient]
    seq: SequenceNumbers

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

    def message(self, kind: str, topic: str, body: dict[str, Any], *, user: UserIdentity,
                sender: str | None = None, hello: bool = False) -> Message:
        return Message(kind=kind, sender=sender or user.urn, slice_hrn=SA, topic=topic,
                       seq=self.seq.next(), issued=utcnow(), body=body,
                       chain=user.chain if hello else "",
                       credential=user.credential if hello else "")

    def exec_body(self, marker: str) -> dict[str, Any]:
        return {"app": marker, "command": ["touch", marker], "env": {}}

    def refused(self, rc: RcProcess, count: int, reason: str) -> None:
        """`count` refusals now in the RC's log, the last one saying `reason`."""
        log = rc.wait_log(reason)
        assert log.count("refused a message") >= count, log


@pytest.fixture(scope="module")
def stage(xmpp: Xmpp, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """Slice sa (alice, RC on node5) and sb (bob, RC on node6); alice joined group g of sa.
    Bob's EC may publish in sa too (as if the server were misconfigured), so that the RC's own
    checks are what refuse him."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # slixmpp clients bind to the current loop when made
    alice_ec, bob_ec = xmpp.ec_login("alice", "sa"), xmpp.ec_login("bob", "sb")
    clients = {"admin": PubsubClient(xmpp.login(AGGREGATE_ACCOUNT)),
               "alice": PubsubClient(alice_ec), "bob": PubsubClient(bob_ec),
               "rc_a": PubsubClient(xmpp.login(rc_account(SA, NODE_A)))}
    loop.run_until_complete(asyncio.gather(*(c.connect() for c in clients.values())))
    admin = clients["admin"]
    loop.run_until_complete(create_slice_tree(admin, SA, [NODE_A], domain=xmpp.server.domain,
                                              ec_jids=[alice_ec.jid, bob_ec.jid]))
    loop.run_until_complete(create_slice_tree(admin, SB, [NODE_B], domain=xmpp.server.domain,
                                              ec_jids=[bob_ec.jid]))
    loop.run_until_complete(create_experiment_groups(admin, SA, EXP, ["g"],
                                                     [alice_ec.jid, bob_ec.jid]))
    base = tmp_path_factory.mktemp("refusals")
    rc_a = start_rc(xmpp, pki, "sa", "node5", base / "a")
    rc_b = start_rc(xmpp, pki, "sb", "node6", base / "b")
    made = Stage(xmpp, pki, rc_a, rc_b, loop, clients, SequenceNumbers())
    try:
        await_ready([rc_a, rc_b])
        alice = pki.identity("alice", "sa")
        topic = resource_node(SA, NODE_A)
        made.run(clients["alice"].publish(topic, sign_message(
            made.message(HELLO, topic, {}, user=alice, hello=True), alice.key)))
        made.run(clients["alice"].publish(topic, sign_message(
            made.message("join", topic, {"experiment": EXP, "group": "g"}, user=alice),
            alice.key)))
        rc_a.wait_log(f"joined {group_node(SA, EXP, 'g')}")
        yield made
    finally:
        rc_a.stop()
        rc_b.stop()
        loop.run_until_complete(remove_slice_tree(admin, SA))
        loop.run_until_complete(remove_slice_tree(admin, SB))
        for client in clients.values():
            loop.run_until_complete(client.close())
        close_loop(loop, clients)


def _alice_exec_works(stage: Stage, marker: str) -> None:
    """Survival: the RC still runs what alice asks."""
    alice = stage.pki.identity("alice", "sa")
    topic = group_node(SA, EXP, "g")
    text = sign_message(stage.message("exec", topic, stage.exec_body(marker), user=alice),
                        alice.key)
    stage.run(stage.clients["alice"].publish(topic, text))
    path = stage.rc_a.workdir / marker
    stage.rc_a.wait_log(f"starting {marker}")
    assert stage.rc_a.wait_log(f"starting {marker}") and _appears(path)


def _appears(path: Path, timeout: float = 20.0) -> bool:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_unsigned_command_refused(stage: Stage):
    alice = stage.pki.identity("alice", "sa")
    topic = group_node(SA, EXP, "g")
    signed = json.loads(sign_message(stage.message("exec", topic, stage.exec_body("unsigned"),
                                                   user=alice), alice.key))
    del signed["sig"]
    stage.run(stage.clients["alice"].publish(topic, json.dumps(signed)))
    stage.refused(stage.rc_a, 1, "unsigned OMF message refused")
    _alice_exec_works(stage, "after-unsigned")
    assert not (stage.rc_a.workdir / "unsigned").exists()


def test_command_signed_by_another_user_refused(stage: Stage):
    alice, bob = stage.pki.identity("alice", "sa"), stage.pki.identity("bob", "sb")
    topic = group_node(SA, EXP, "g")
    forged = stage.message("exec", topic, stage.exec_body("forged"), user=alice)
    stage.run(stage.clients["bob"].publish(topic, sign_message(forged, bob.key)))
    stage.refused(stage.rc_a, 1, "is not signed by the key it claims")
    _alice_exec_works(stage, "after-forged")
    assert not (stage.rc_a.workdir / "forged").exists()


def test_replayed_command_refused(stage: Stage):
    alice = stage.pki.identity("alice", "sa")
    topic = group_node(SA, EXP, "g")
    text = sign_message(stage.message("exec", topic, stage.exec_body("once"), user=alice),
                        alice.key)
    stage.run(stage.clients["alice"].publish(topic, text))
    assert _appears(stage.rc_a.workdir / "once")
    (stage.rc_a.workdir / "once").unlink()
    stage.run(stage.clients["alice"].publish(topic, text))
    stage.refused(stage.rc_a, 1, "replayed exec message")
    _alice_exec_works(stage, "after-replay")
    assert not (stage.rc_a.workdir / "once").exists()


def test_credential_for_another_slice_refused(stage: Stage):
    bob = stage.pki.identity("bob", "sb")  # a valid credential, for slice sb
    topic = resource_node(SA, NODE_A)
    hello = stage.message(HELLO, topic, {}, user=bob, hello=True)
    stage.run(stage.clients["bob"].publish(topic, sign_message(hello, bob.key)))
    stage.refused(stage.rc_a, 1, "urn:publicid:IDN+w13o+slice+sa")
    group = group_node(SA, EXP, "g")
    after = stage.message("exec", group, stage.exec_body("bobs"), user=bob)
    stage.run(stage.clients["bob"].publish(group, sign_message(after, bob.key)))
    stage.refused(stage.rc_a, 1, "has not introduced itself with a verified hello")
    _alice_exec_works(stage, "after-bob")
    assert not (stage.rc_a.workdir / "bobs").exists()


def test_rc_of_slice_a_cannot_publish_into_slice_b(stage: Stage):
    alice = stage.pki.identity("alice", "sa")
    topic_b = resource_node(SB, NODE_B)
    text = sign_message(Message(kind="exec", sender=alice.urn, slice_hrn=SB, topic=topic_b,
                                seq=stage.seq.next(), issued=utcnow(),
                                body=stage.exec_body("cross")), alice.key)
    with pytest.raises(Forbidden, match="forbidden"):
        stage.run(stage.clients["rc_a"].publish(topic_b, text))
    # and slice sb's RC never saw a command: nothing refused there, nothing run
    assert "refused" not in stage.rc_b.log and "starting" not in stage.rc_b.log
    assert not (stage.rc_b.workdir / "cross").exists()


def test_rc_logic_refuses_messages_meant_for_another_slice(stage: Stage, tmp_path: Path):
    """Without the server's help too: a message for slice sb reaching sa's RC is refused."""
    from sfa.omf.messages import SenderBook  # noqa: PLC0415
    from sfa.trust.roots import TrustedRoots  # noqa: PLC0415
    from sfa.trust.verify import TrustPolicy  # noqa: PLC0415

    published: list[str] = []

    class Recorder:
        async def subscribe(self, node: str) -> None: ...

        async def unsubscribe(self, node: str) -> None: ...

        async def publish(self, node: str, text: str) -> None:
            published.append(text)

    book = SenderBook(TrustPolicy(TrustedRoots(stage.pki.roots_dir)), SA,
                      "urn:publicid:IDN+w13o+slice+sa")
    rc = ResourceController(SA, NODE_A, senders=book, key=stage.rc_a.key, pubsub=Recorder(),
                            workdir=tmp_path)
    bob = stage.pki.identity("bob", "sb")
    topic = resource_node(SA, NODE_A)
    hello = Message(kind=HELLO, sender=bob.urn, slice_hrn=SB, topic=topic, seq=1,
                    issued=utcnow(), chain=bob.chain, credential=bob.credential)
    stage.run(rc.on_item(topic, sign_message(hello, bob.key)))
    assert rc.refusals and "reached slice w13o.sa" in rc.refusals[0]
    assert published == []
