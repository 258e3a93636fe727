"""Batch tickets over TLS (spec/security.md items 1, 3, 4 and 20 for the batch form, issue 16):
a forged or tampered ticket of a signed batch, sent to a real node manager, is refused with
the right code and no traceback, the node still answers, and nothing changes on disk or in any
database (`refused_by_node`). The genuine documents pass the same node's verification, so each
refusal is the tampering's."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta

import pytest
from lxml import etree

from sfa.errors import GeniCode
from sfa.timeutil import utcnow
from sfa.trust.credential import parse_credential
from sfa.trust.ticket import MAX_BATCH, TicketSpec, create_tickets, verify_ticket
from sfa.trust.xmldsig import sign_element
from tests.security.conftest import World, refused_by_node


def batch_of(world: World, serial: str) -> dict[str, str]:
    """A batch signed with the aggregate's own key: node URN -> its ticket, one per node."""
    driver = world.site.driver
    assert driver is not None
    slice_gid = parse_credential(world.creds["exp6"]).target_gid
    nodes = sorted(world.site.nodes)
    specs = [TicketSpec(slice_gid=slice_gid, node_urn=node,
                        sliver_urn=f"urn:publicid:IDN+plc+sliver+{serial}{i}",
                        expires=utcnow() + timedelta(hours=1), serial=f"{serial}-{i}")
             for i, node in enumerate(nodes)]
    documents = create_tickets(specs, signer_key=driver.key, signer=driver.signer)
    return dict(zip(nodes, documents, strict=True))


def edit(xml: str, change: Callable[[etree._Element], object]) -> str:
    root = etree.fromstring(xml.encode())
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()


def accepted_by(world: World, node: str, xml: str) -> None:
    """The node manager's own verification accepts `xml` (nothing is redeemed)."""
    nm = world.site.nodes[node].nm
    verify_ticket(xml, nm.policy, node_urn=nm.urn, trusted_issuers=nm.trusted_issuers)


def redeem_refused(world: World, node: str, xml: str, code: GeniCode) -> str:
    return refused_by_node(world, lambda: world.node(node).RedeemTicket(xml, {}), code)


def test_tampered_batch_tickets_are_refused_at_the_node(world: World) -> None:
    tickets = batch_of(world, "tamper")
    first, second = sorted(tickets)
    for node, xml in tickets.items():
        accepted_by(world, node, xml)
    edited = tickets[first].replace("<memory_mb>0<", "<memory_mb>99999<")
    assert edited != tickets[first]
    assert "not among its batch" in redeem_refused(world, first, edited,
                                                   GeniCode.CREDENTIAL_INVALID)
    # the other node's ticket, relabelled for this node
    relabelled = tickets[second].replace(f">{second}<", f">{first}<")
    assert "not among its batch" in redeem_refused(world, first, relabelled,
                                                   GeniCode.CREDENTIAL_INVALID)
    # a genuine ticket at the other node of its batch
    redeem_refused(world, second, tickets[first], GeniCode.CREDENTIAL_MISMATCH)
    # a genuine ticket moved into another genuine batch's document
    other = batch_of(world, "other")
    moved = edit(other[first], lambda root: root.replace(
        root.find("ticket"), etree.fromstring(tickets[first].encode()).find("ticket")))
    assert "not among its batch" in redeem_refused(world, first, moved,
                                                   GeniCode.CREDENTIAL_INVALID)


def resigned(xml: str, key, certificates) -> str:
    def change(root: etree._Element) -> None:
        root.remove(root.find("signatures"))
        signatures = etree.SubElement(root, "signatures")
        sign_element(root.find("ticket-batch"), signatures, key=key, certificates=certificates)
    return edit(xml, change)


def test_forged_batches_are_refused_at_the_node(world: World) -> None:
    tickets = batch_of(world, "forge")
    node = sorted(tickets)[0]
    alice = world.ids["alice"]
    am = world.site.driver.signer if world.site.driver else None
    assert am is not None
    # alice (a user of this authority) signs a batch of her own: no authority over the node
    slice_gid = parse_credential(world.creds["exp6"]).target_gid
    (own,) = create_tickets([TicketSpec(slice_gid=slice_gid, node_urn=node,
                                        sliver_urn="urn:publicid:IDN+plc+sliver+mine",
                                        expires=utcnow() + timedelta(hours=1))],
                            signer_key=alice.key, signer=alice.gid)
    assert "not an authority" in redeem_refused(world, node, own,
                                                GeniCode.CREDENTIAL_SIGNER_UNTRUSTED)
    # the aggregate's batch re-signed by alice, or by her key behind the aggregate's certificate
    redeem_refused(world, node, resigned(tickets[node], alice.key,
                                         (alice.gid.certificate, *alice.gid.chain)),
                   GeniCode.CREDENTIAL_INVALID)
    assert "does not verify" in redeem_refused(
        world, node, resigned(tickets[node], alice.key, (am.certificate, *am.chain)),
        GeniCode.CREDENTIAL_INVALID)


@pytest.mark.parametrize("shape", ["signature over the ticket", "two batches",
                                   "too many digests"])
def test_malformed_batches_are_refused_at_the_node(world: World, shape: str) -> None:
    tickets = batch_of(world, "shape")
    node = sorted(tickets)[0]
    driver = world.site.driver
    assert driver is not None

    def over_the_ticket(root: etree._Element) -> None:
        root.find("signatures").clear()
        sign_element(root.find("ticket"), root.find("signatures"), key=driver.key,
                     certificates=(driver.signer.certificate, *driver.signer.chain))

    def two_batches(root: etree._Element) -> None:
        root.insert(2, etree.fromstring(etree.tostring(root.find("ticket-batch")).replace(
            b'xml:id="batch0"', b'xml:id="batch1"')))

    def too_many(root: etree._Element) -> None:
        batch = root.find("ticket-batch")
        for i in range(MAX_BATCH):
            etree.SubElement(batch, "ticket-digest").text = base64.b64encode(
                i.to_bytes(32, "big")).decode()

    change = {"signature over the ticket": over_the_ticket, "two batches": two_batches,
              "too many digests": too_many}[shape]
    redeem_refused(world, node, edit(tickets[node], change), GeniCode.CREDENTIAL_INVALID)
