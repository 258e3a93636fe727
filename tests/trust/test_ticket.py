"""Tickets (aggregate -> node manager) and leases (node -> aggregate)."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest
from lxml import etree

from sfa.errors import (
    BadArgs,
    CredentialExpired,
    CredentialInvalid,
    CredentialMismatch,
    CredentialSignerUntrusted,
)
from sfa.timeutil import utcnow
from sfa.trust.roots import TrustedRoots
from sfa.trust.ticket import (
    MAX_BATCH,
    TicketResources,
    TicketSpec,
    TicketUser,
    create_lease,
    create_ticket,
    create_tickets,
    parse_lease,
    parse_ticket,
    verify_lease,
    verify_ticket,
)
from sfa.trust.xmldsig import XML_ID, sign_element
from tests.trust._credkit import future, policy

NODE = "urn:publicid:IDN+plc:princeton+node+n1"
SLIVER = "urn:publicid:IDN+plc:princeton+sliver+s1"


@pytest.fixture(scope="module")
def am(plc):
    return plc.issue_service_gid("am", "am.plc.example")


@pytest.fixture(scope="module")
def node(princeton):
    return princeton.issue_gid("plc.princeton.n1", "node")


@pytest.fixture(scope="module")
def ticket_xml(am, exp1_slice) -> str:
    gid, key = am
    return create_ticket(
        slice_gid=exp1_slice.gid, node_urn=NODE, sliver_urn=SLIVER, expires=future(),
        signer_key=key, signer=gid,
        resources=TicketResources(cpu_share=2, memory_mb=512, disk_mb=1024, tasks=100,
                                  bandwidth_kbps=1000),
        users=[TicketUser("urn:publicid:IDN+plc:princeton+user+alice", ("ssh-rsa AAAA a@b",))],
        slice_keypair_public="ssh-rsa BBBB slice", initscript="#!/bin/sh\necho hi\n",
        serial="serial-1",
    )


def test_round_trip(ticket_xml, am, exp1_slice, trusted_roots) -> None:
    ticket = verify_ticket(ticket_xml, policy(trusted_roots), node_urn=NODE)
    assert ticket == parse_ticket(ticket_xml).__class__(**{**parse_ticket(ticket_xml).__dict__,
                                                            "signer": ticket.signer})
    assert ticket.serial == "serial-1" and ticket.issuer_urn == am[0].urn
    assert ticket.slice_urn == exp1_slice.gid.urn and ticket.sliver_urn == SLIVER
    assert ticket.resources.memory_mb == 512 and ticket.resources.bandwidth_kbps == 1000
    assert ticket.users[0].keys == ("ssh-rsa AAAA a@b",)
    assert ticket.initscript == "#!/bin/sh\necho hi"
    assert ticket.signer.urn == am[0].urn


def test_wrong_node(ticket_xml, trusted_roots) -> None:
    with pytest.raises(CredentialMismatch):
        verify_ticket(ticket_xml, policy(trusted_roots), node_urn=NODE.replace("n1", "n2"))


def test_expired_ticket(ticket_xml, trusted_roots) -> None:
    with pytest.raises(CredentialExpired):
        verify_ticket(ticket_xml, policy(trusted_roots), node_urn=NODE, at=future(days=2))


def test_tampered_ticket(ticket_xml, trusted_roots) -> None:
    edited = ticket_xml.replace("<memory_mb>512<", "<memory_mb>99999<")
    with pytest.raises(CredentialInvalid):
        verify_ticket(edited, policy(trusted_roots), node_urn=NODE)


def test_issuer_must_be_authority_over_the_node(ple, exp1_slice, trusted_roots) -> None:
    gid, key = ple.issue_service_gid("am", "am.ple.example")
    xml = create_ticket(slice_gid=exp1_slice.gid, node_urn=NODE, sliver_urn=SLIVER,
                        expires=future(), signer_key=key, signer=gid)
    with pytest.raises(CredentialSignerUntrusted):
        verify_ticket(xml, policy(trusted_roots), node_urn=NODE)
    assert verify_ticket(xml, policy(trusted_roots), node_urn=NODE,
                         trusted_issuers=[gid]).issuer_urn == gid.urn


def test_untrusted_issuer(evil, exp1_slice, trusted_roots) -> None:
    gid, key = evil.issue_service_gid("am", "am.evil.example")
    xml = create_ticket(slice_gid=exp1_slice.gid, node_urn=NODE, sliver_urn=SLIVER,
                        expires=future(), signer_key=key, signer=gid)
    with pytest.raises(CredentialSignerUntrusted):
        verify_ticket(xml, policy(trusted_roots), node_urn=NODE)


def test_malformed_ticket(ticket_xml, trusted_roots) -> None:
    for bad in ("<signed-ticket/>", ticket_xml.replace("<serial>", "<serial>x</serial><serial>"),
                re.sub(r"<expires>[^<]*</expires>", "<expires>soon</expires>", ticket_xml)):
        with pytest.raises(CredentialInvalid):
            verify_ticket(bad, policy(trusted_roots), node_urn=NODE)


def test_lease(node, trusted_roots) -> None:
    gid, key = node
    xml = create_lease(ticket_serial="serial-1", sliver_urn=SLIVER, expires=future(),
                       signer_key=key, signer=gid)
    lease = verify_lease(xml, policy(trusted_roots), node_urn=gid.urn)
    assert lease == parse_lease(xml).__class__(**{**parse_lease(xml).__dict__,
                                                  "signer": lease.signer})
    assert lease.ticket_serial == "serial-1" and lease.node_urn == gid.urn
    with pytest.raises(CredentialMismatch):
        verify_lease(xml, policy(trusted_roots), node_urn=NODE.replace("n1", "n9"))
    with pytest.raises(CredentialExpired):
        verify_lease(xml, policy(trusted_roots), at=utcnow() + timedelta(days=3))


# --- the batch form: one signature over a <ticket-batch> of digests ---------------------------

NODES = [NODE.replace("n1", f"n{i}") for i in (1, 2, 3)]


def specs(exp1_slice, count: int = 3, tag: str = "batch") -> list[TicketSpec]:
    return [TicketSpec(slice_gid=exp1_slice.gid, node_urn=NODES[i % len(NODES)],
                       sliver_urn=SLIVER.replace("s1", f"s{i}"), expires=future(),
                       users=[TicketUser("urn:publicid:IDN+plc:princeton+user+alice",
                                         ("ssh-rsa AAAA a@b",))],
                       serial=f"{tag}-{i}")
            for i in range(count)]


@pytest.fixture(scope="module")
def batch(am, exp1_slice) -> list[str]:
    gid, key = am
    return create_tickets(specs(exp1_slice), signer_key=key, signer=gid)


def edit(xml: str, change) -> str:
    """`xml` parsed, changed in place by `change(root)`, serialized again."""
    root = etree.fromstring(xml.encode())
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()


def resign_batch(xml: str, key, certificates) -> str:
    """The batch signed again with `key`, X509Data holding `certificates`."""
    def change(root) -> None:
        root.remove(root.find("signatures"))
        signatures = etree.SubElement(root, "signatures")
        sign_element(root.find("ticket-batch"), signatures, key=key, certificates=certificates)
    return edit(xml, change)


def test_batch_round_trip_each_ticket_at_its_own_node(batch, am, trusted_roots) -> None:
    assert len(batch) == 3 and {xml.count("<ticket-digest>") for xml in batch} == {3}
    for xml in batch:  # one signature, over the batch, the same in every document
        (signature,) = etree.fromstring(xml.encode()).find("signatures")
        assert signature.find(".//{*}Reference").get("URI") == "#batch0"
        assert etree.tostring(signature) == etree.tostring(
            etree.fromstring(batch[0].encode()).find("signatures")[0])
    for i, xml in enumerate(batch):
        ticket = verify_ticket(xml, policy(trusted_roots), node_urn=NODES[i])
        assert ticket.serial == f"batch-{i}" and ticket.sliver_urn.endswith(f"+s{i}")
        assert ticket.signer.urn == am[0].urn and ticket.issuer_urn == am[0].urn
        assert ticket.batch_size == 3 and ticket.xml == xml
        assert ticket.users[0].keys == ("ssh-rsa AAAA a@b",)
        assert parse_ticket(xml).serial == ticket.serial and parse_ticket(xml).batch_size == 3
        other = NODES[(i + 1) % len(NODES)]
        with pytest.raises(CredentialMismatch):
            verify_ticket(xml, policy(trusted_roots), node_urn=other)


def test_batch_ticket_edited_after_signing_is_refused(batch, trusted_roots) -> None:
    for edited in (batch[0].replace("<memory_mb>0<", "<memory_mb>99999<"),
                   batch[0].replace("<serial>batch-0<", "<serial>batch-9<"),
                   batch[0].replace("+node+n1<", "+node+n2<")):
        assert edited != batch[0]
        with pytest.raises(CredentialInvalid, match="not among its batch"):
            verify_ticket(edited, policy(trusted_roots), node_urn=NODES[0])


def test_ticket_moved_into_another_batch_is_refused(am, exp1_slice, batch,
                                                    trusted_roots) -> None:
    gid, key = am
    other = create_tickets(specs(exp1_slice, 2, tag="other"), signer_key=key, signer=gid)
    assert verify_ticket(other[0], policy(trusted_roots), node_urn=NODES[0])
    ticket = etree.fromstring(batch[0].encode()).find("ticket")

    def swap(root) -> None:
        root.replace(root.find("ticket"), ticket)

    moved = edit(other[0], swap)
    with pytest.raises(CredentialInvalid, match="not among its batch"):
        verify_ticket(moved, policy(trusted_roots), node_urn=NODES[0])


def test_batch_signed_by_no_authority_over_the_node_is_refused(
        alice, ple, exp1_slice, trusted_roots) -> None:
    as_user = create_tickets(specs(exp1_slice, 1), signer_key=alice.key, signer=alice.gid)
    with pytest.raises(CredentialSignerUntrusted, match="not an authority"):
        verify_ticket(as_user[0], policy(trusted_roots), node_urn=NODES[0])
    gid, key = ple.issue_service_gid("am", "am.ple.example")
    foreign = create_tickets(specs(exp1_slice, 1), signer_key=key, signer=gid)
    with pytest.raises(CredentialSignerUntrusted):
        verify_ticket(foreign[0], policy(trusted_roots), node_urn=NODES[0])
    pinned = verify_ticket(foreign[0], policy(trusted_roots), node_urn=NODES[0],
                           trusted_issuers=[gid])
    assert pinned.issuer_urn == gid.urn and pinned.batch_size == 1


def test_batch_signed_again_by_another_key_is_refused(alice, batch, am, trusted_roots) -> None:
    # the aggregate's batch re-signed by alice (chained, but she did not issue it)
    resigned = resign_batch(batch[0], alice.key, (alice.gid.certificate, *alice.gid.chain))
    with pytest.raises(CredentialInvalid, match="names issuer"):
        verify_ticket(resigned, policy(trusted_roots), node_urn=NODES[0])
    # re-signed with another key behind the aggregate's own certificate
    borrowed = resign_batch(batch[0], alice.key, (am[0].certificate, *am[0].chain))
    with pytest.raises(CredentialInvalid, match="does not verify"):
        verify_ticket(borrowed, policy(trusted_roots), node_urn=NODES[0])


def test_batch_from_an_untrusted_root_is_refused(evil, exp1_slice, trusted_roots) -> None:
    gid, key = evil.issue_service_gid("am", "am.evil.example")
    (xml,) = create_tickets(specs(exp1_slice, 1), signer_key=key, signer=gid)
    with pytest.raises(CredentialSignerUntrusted):
        verify_ticket(xml, policy(trusted_roots), node_urn=NODES[0])


def test_batch_of_a_revoked_aggregate_key_is_refused(plc, exp1_slice, tmp_path) -> None:
    (tmp_path / "plc.gid").write_text(plc.gid.to_pem())
    roots = TrustedRoots(tmp_path)
    gid, key = plc.issue_service_gid("am", "am2.plc.example")
    (xml,) = create_tickets(specs(exp1_slice, 1), signer_key=key, signer=gid)
    assert verify_ticket(xml, policy(roots), node_urn=NODES[0]).batch_size == 1
    roots.revoke(gid)
    with pytest.raises(CredentialInvalid, match="revoked"):
        verify_ticket(xml, policy(roots), node_urn=NODES[0])


def _second_signature_over_the_ticket(am):
    def change(root) -> None:
        root.find("ticket").set(XML_ID, "ref0")
        sign_element(root.find("ticket"), root.find("signatures"), key=am[1],
                     certificates=(am[0].certificate, *am[0].chain))
    return change


def _only_a_signature_over_the_ticket(am):
    def change(root) -> None:
        root.find("signatures").clear()
        sign_element(root.find("ticket"), root.find("signatures"), key=am[1],
                     certificates=(am[0].certificate, *am[0].chain))
    return change


def _digests(texts):
    def change(root) -> None:
        batch = root.find("ticket-batch")
        for child in list(batch):
            batch.remove(child)
        for text in texts:
            etree.SubElement(batch, "ticket-digest").text = text
    return change


def _duplicate_ticket(root) -> None:
    root.insert(1, etree.fromstring(etree.tostring(root.find("ticket")).replace(
        b'xml:id="ref0"', b'xml:id="ref9"')))


def _second_batch(root) -> None:
    root.insert(2, etree.fromstring(etree.tostring(root.find("ticket-batch")).replace(
        b'xml:id="batch0"', b'xml:id="batch9"')))


def test_malformed_batches_are_refused(am, batch, trusted_roots) -> None:
    digest = etree.fromstring(batch[0].encode()).find("ticket-batch")[0].text
    cases = {
        "two signatures": (_second_signature_over_the_ticket(am), "exactly one signature"),
        "a signature over the ticket beside a batch": (_only_a_signature_over_the_ticket(am),
                                                       "covering its <ticket-batch>"),
        "two tickets": (_duplicate_ticket, "expected <signed-ticket>"),
        "two batches": (_second_batch, "expected <signed-ticket>"),
        "too many digests": (_digests([digest] + [base64.b64encode(
            i.to_bytes(32, "big")).decode() for i in range(MAX_BATCH)]), "at most 4096"),
        "bad base64": (_digests([digest, "not*base64"]), "not the base64"),
        "a digest of 31 bytes": (_digests([digest, base64.b64encode(bytes(31)).decode()]),
                                 "not the base64"),
        "a digest of 33 bytes": (_digests([digest, base64.b64encode(bytes(33)).decode()]),
                                 "not the base64"),
        "a digest with a line break": (_digests([digest, digest[:20] + "\n" + digest[20:]]),
                                       "not the base64"),
        "the same digest twice": (_digests([digest, digest]), "twice"),
        "no digest": (_digests([]), "no digest"),
        "another element in the batch": (
            lambda r: etree.SubElement(r.find("ticket-batch"), "ticket"), "only <ticket-digest>"),
        "a comment": (lambda r: r.find("ticket/serial").append(etree.Comment("x")), "comments"),
        "a namespace": (lambda r: r.replace(r.find("ticket"), etree.fromstring(
            etree.tostring(r.find("ticket")).replace(b"<ticket ", b'<ticket xmlns:x="u" ')
        )), "namespace"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(CredentialInvalid, match=message):
            verify_ticket(edit(batch[0], change), policy(trusted_roots), node_urn=NODES[0])
            pytest.fail(name)
        with pytest.raises(CredentialInvalid):
            parse_ticket(edit(batch[0], change))


def test_batch_size_is_bounded_when_signing(am, exp1_slice) -> None:
    gid, key = am
    assert create_tickets([], signer_key=key, signer=gid) == []
    spec = specs(exp1_slice, 1)[0]
    with pytest.raises(BadArgs, match="at most 4096"):
        create_tickets([spec] * (MAX_BATCH + 1), signer_key=key, signer=gid)


def test_single_form_still_verifies_and_a_comment_cannot_shorten_a_field(
        ticket_xml, trusted_roots) -> None:
    ticket = verify_ticket(ticket_xml, policy(trusted_roots), node_urn=NODE)
    assert ticket.batch_size == 0 and parse_ticket(ticket_xml).batch_size == 0
    # C14N drops comments, so the signature still verifies, but the text read would stop at
    # the comment: n1<!---->0 would be read as n1 (another node), serial-1 as serial- (replay)
    shortened = ticket_xml.replace("<serial>serial-1<", "<serial>serial-<!---->1<")
    with pytest.raises(CredentialInvalid, match="comments"):
        verify_ticket(shortened, policy(trusted_roots), node_urn=NODE)
    with pytest.raises(CredentialInvalid, match="processing instructions"):
        verify_ticket(ticket_xml.replace("<serial>", "<serial><?x y?>"), policy(trusted_roots),
                      node_urn=NODE)
