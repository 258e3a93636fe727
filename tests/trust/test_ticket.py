"""Tickets (aggregate -> node manager) and leases (node -> aggregate)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from sfa.errors import (
    CredentialExpired,
    CredentialInvalid,
    CredentialMismatch,
    CredentialSignerUntrusted,
)
from sfa.timeutil import utcnow
from sfa.trust.ticket import (
    TicketResources,
    TicketUser,
    create_lease,
    create_ticket,
    parse_lease,
    parse_ticket,
    verify_lease,
    verify_ticket,
)
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
