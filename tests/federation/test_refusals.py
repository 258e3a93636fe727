"""What federation must refuse, each with its GENI code and proof that nothing changed."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from sfa.errors import GeniCode
from sfa.rpc.transport import TlsIdentity
from sfa.rspecs.builder import Request
from sfa.timeutil import utcnow
from sfa.trust.credential import create_credential
from sfa.trust.gid import create_gid
from sfa.trust.hierarchy import Authority
from sfa.trust.keys import private_key_to_pem
from sfa.trust.speaksfor import create_speaksfor
from sfa.xrn import hrn_to_urn
from tests.federation.conftest import (
    SM_TIMEOUT,
    Federation,
    User,
    binary_text,
    sfa,
    value_of,
    wrap,
)
from tests.federation.test_slices import GENI3, advertised, request


def code_of(reply: dict) -> int:
    return int(reply["code"]["geni_code"])


def one_ple_node(fed: Federation, index: int = 0) -> str:
    node = advertised(fed)[fed.ple.am_urn][index]
    return Request().node("n", component_id=node,
                          component_manager_id=fed.ple.am_urn).to_xml()


@pytest.fixture(scope="module")
def carol(federation: Federation, user_keys: list[RSAPrivateKey]) -> tuple[User, str]:
    """A user of `evil`, an authority nobody trusts, with a slice credential it signed."""
    evil = Authority.create_root(federation.base / "evil", "evil")
    key = user_keys[2]
    gid, _ = evil.issue_gid("evil.carol", "user", public_key=key.public_key())
    slice_gid, _ = evil.issue_gid("evil.cslice", "slice")
    cred = create_credential(owner=gid, target=slice_gid, privileges="*",
                             expires=utcnow() + timedelta(days=1), signer_key=evil.key,
                             signer=evil.gid)
    files = federation.base / "carol"
    files.mkdir()
    (files / "c.gid").write_text(gid.to_pem(include_chain=True))
    (files / "c.pkey").write_bytes(private_key_to_pem(key))
    pem = federation.alice.roots_pem
    return User("evil.carol", gid, key, TlsIdentity(files / "c.gid", files / "c.pkey"),
                pem), cred.xml


def test_user_of_an_untrusted_authority_is_refused(federation: Federation,
                                                   carol: tuple[User, str]) -> None:
    fed, (user, cred) = federation, carol
    slice_urn = hrn_to_urn("evil.cslice", "slice")
    reply = user.call(fed.ple.aggregate.url, "Allocate", slice_urn, [wrap(cred)],
                      one_ple_node(fed), {})
    assert code_of(reply) == GeniCode.CREDENTIAL_SIGNER_UNTRUSTED
    reply = user.call(fed.sm.url, "Allocate", slice_urn, [wrap(cred)], request(fed, 1, 1), {})
    assert code_of(reply) == GeniCode.CREDENTIAL_SIGNER_UNTRUSTED
    assert fed.ple.slivers(slice_urn) == [] and fed.plc.slivers(slice_urn) == []
    assert fed.sm.manager.holders.of(slice_urn) == set()


def test_removed_peer_root_refuses_its_users_without_restart(federation: Federation) -> None:
    fed = federation
    slice_urn = hrn_to_urn("plc.s4", "slice")
    creds = [wrap(fed.slice_credential(fed.alice, "plc.s4", fed.plc))]
    value_of(fed.alice.call(fed.ple.aggregate.url, "Allocate", slice_urn, creds,
                            one_ple_node(fed), {}))
    before = fed.ple.slivers(slice_urn)
    delegated = [wrap(fed.alice.delegate(fed.slice_credential(fed.alice, "plc.s4", fed.plc),
                                         fed.sm_gid))]
    value_of(fed.alice.call(fed.sm.url, "Status", [slice_urn], delegated, {}))
    assert sfa("admin", fed.ple.directory, "trust", "remove", "plc").exit_code == 0
    try:
        # the same credential, verified (and cached) a moment ago, is now refused
        reply = fed.alice.call(fed.ple.aggregate.url, "Delete", [slice_urn], creds, {})
        assert code_of(reply) == GeniCode.CREDENTIAL_SIGNER_UNTRUSTED
        assert fed.ple.slivers(slice_urn) == before
        # through the slice manager: ple refuses plc's slice manager too; reported per aggregate
        reply = fed.alice.call(fed.sm.url, "Delete", [slice_urn], delegated, {})
        assert code_of(reply) == GeniCode.CREDENTIAL_SIGNER_UNTRUSTED
        assert [r["geni_code"] for r in reply["sfa_aggregates"]
                if r["urn"] == fed.ple.am_urn] == [GeniCode.CREDENTIAL_SIGNER_UNTRUSTED]
        assert fed.ple.slivers(slice_urn) == before
    finally:
        assert sfa("admin", fed.ple.directory, "trust", "add", fed.plc.root_file).exit_code == 0
    value_of(fed.alice.call(fed.ple.aggregate.url, "Delete", [slice_urn], creds, {}))
    assert fed.ple.slivers(slice_urn) == []


def test_credential_from_a_cannot_act_on_a_slice_of_b(federation: Federation) -> None:
    fed = federation
    bob_slice = hrn_to_urn("ple.bobslice", "slice")
    bob_creds = [wrap(fed.slice_credential(fed.bob, "ple.bobslice", fed.ple))]
    value_of(fed.bob.call(fed.ple.aggregate.url, "Allocate", bob_slice, bob_creds,
                          one_ple_node(fed, 2), {}))
    held = fed.ple.slivers(bob_slice)
    assert len(held) == 1
    alice_creds = [wrap(fed.slice_credential(fed.alice, "plc.s5", fed.plc))]
    for method, args in (("Delete", ([bob_slice], alice_creds, {})),
                         ("Allocate", (bob_slice, alice_creds, one_ple_node(fed, 3), {}))):
        reply = fed.alice.call(fed.ple.aggregate.url, method, *args)
        assert code_of(reply) == GeniCode.CREDENTIAL_MISMATCH, reply["output"]
    # plc's root signing for a ple slice is authority overreach
    plc_root = fed.plc.deployment.root_authority()
    forged_target = create_gid(urn=bob_slice, public_key=fed.alice.key.public_key(),
                               issuer_key=plc_root.key, issuer=plc_root.gid)
    forged = create_credential(owner=fed.alice.gid, target=forged_target, privileges="*",
                               expires=utcnow() + timedelta(hours=1),
                               signer_key=plc_root.key, signer=plc_root.gid)
    reply = fed.alice.call(fed.ple.aggregate.url, "Delete", [bob_slice], [wrap(forged)], {})
    assert code_of(reply) == GeniCode.CREDENTIAL_SIGNER_UNTRUSTED
    assert fed.ple.slivers(bob_slice) == held
    value_of(fed.bob.call(fed.ple.aggregate.url, "Delete", [bob_slice], bob_creds, {}))


def _refused_by_sm(fed: Federation, caller: User, slice_hrn: str, creds: list, *, code: int,
                   options: dict | None = None) -> str:
    slice_urn = hrn_to_urn(slice_hrn, "slice")
    reply = caller.call(fed.sm.url, "Allocate", slice_urn, creds, request(fed, 1, 1),
                        options or {})
    assert code_of(reply) == code, reply["output"]
    assert fed.plc.slivers(slice_urn) == [] and fed.ple.slivers(slice_urn) == []
    assert fed.sm.manager.holders.of(slice_urn) == set()
    return str(reply["output"])


def test_slice_manager_refuses_credentials_not_delegated_to_it(federation: Federation) -> None:
    fed = federation
    own = fed.slice_credential(fed.alice, "plc.s6", fed.plc)
    output = _refused_by_sm(fed, fed.alice, "plc.s6", [wrap(own)],
                            code=GeniCode.CREDENTIAL_MISMATCH)
    assert "delegated to its GID" in output


def test_slice_manager_refuses_a_delegation_for_another_slice(federation: Federation) -> None:
    fed = federation
    other = fed.alice.delegate(fed.slice_credential(fed.alice, "plc.s7", fed.plc), fed.sm_gid)
    _refused_by_sm(fed, fed.alice, "plc.s6", [wrap(other)], code=GeniCode.CREDENTIAL_MISMATCH)


def test_slice_manager_refuses_an_expired_delegation(federation: Federation) -> None:
    fed = federation
    expired = fed.alice.delegate(fed.slice_credential(fed.alice, "plc.s6", fed.plc),
                                 fed.sm_gid, expires=utcnow() - timedelta(minutes=1))
    _refused_by_sm(fed, fed.alice, "plc.s6", [wrap(expired)], code=GeniCode.CREDENTIAL_EXPIRED)


def test_slice_manager_refuses_someone_elses_delegation(federation: Federation) -> None:
    """bob replays the credential alice delegated to the slice manager."""
    fed = federation
    delegated = fed.alice.delegate(fed.slice_credential(fed.alice, "plc.s6", fed.plc),
                                   fed.sm_gid)
    output = _refused_by_sm(fed, fed.bob, "plc.s6", [wrap(delegated)],
                            code=GeniCode.CREDENTIAL_MISMATCH)
    assert "not delegated to this slice manager by the caller" in output


def _speaksfor(fed: Federation) -> list[dict[str, str]]:
    statement = create_speaksfor(fed.alice.key, fed.alice.gid, fed.sm_gid,
                                 utcnow() + timedelta(hours=1))
    return [wrap(fed.slice_credential(fed.alice, "plc.s8", fed.plc)),
            {"geni_type": "geni_abac", "geni_version": "1", "geni_value": statement}]


def test_slice_manager_acts_with_speaks_for(federation: Federation) -> None:
    fed = federation
    slice_urn = hrn_to_urn("plc.s8", "slice")
    options = {"geni_speaking_for": fed.alice.urn}
    value = value_of(fed.alice.call(fed.sm.url, "Allocate", slice_urn, _speaksfor(fed),
                                    request(fed, 1, 1), options))
    assert len(value["geni_slivers"]) == 2
    value_of(fed.alice.call(fed.sm.url, "Delete", [slice_urn], _speaksfor(fed), options))
    assert fed.plc.slivers(slice_urn) == [] and fed.ple.slivers(slice_urn) == []


def test_slice_manager_refuses_speaks_for_presented_by_another(federation: Federation) -> None:
    fed = federation
    _refused_by_sm(fed, fed.bob, "plc.s8", _speaksfor(fed), code=GeniCode.CREDENTIAL_MISMATCH,
                   options={"geni_speaking_for": fed.alice.urn})


@pytest.fixture
def silent_aggregate(federation: Federation) -> Iterator[str]:
    """A peer 'slow' whose aggregate accepts TCP connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/"
    directory: Path = federation.plc.directory
    assert sfa("admin", directory, "peer", "add", "slow", "--aggregate", url).exit_code == 0
    try:
        yield url
    finally:
        assert sfa("admin", directory, "peer", "remove", "slow").exit_code == 0
        listener.close()


def test_a_silent_aggregate_does_not_stall_the_others(federation: Federation,
                                                      silent_aggregate: str) -> None:
    fed = federation
    started = time.monotonic()
    reply = fed.alice.call(fed.sm.url, "ListResources", [], {"geni_rspec_version": GENI3})
    elapsed = time.monotonic() - started
    assert elapsed < SM_TIMEOUT + 2
    reports = {r["url"]: r["geni_code"] for r in reply["sfa_aggregates"]}
    assert reports[silent_aggregate] == GeniCode.TIMEDOUT
    assert reports[fed.plc.aggregate.url] == 0 and reports[fed.ple.aggregate.url] == 0
    text = binary_text(value_of(reply))
    assert fed.plc.am_urn in text and fed.ple.am_urn in text


def test_peer_remove_takes_effect_in_the_running_slice_manager(
        federation: Federation) -> None:
    fed = federation
    directory = fed.plc.directory
    assert sfa("admin", directory, "peer", "add", "gone", "--aggregate",
               "https://127.0.0.1:9/").exit_code == 0
    listed = value_of(fed.alice.call(fed.sm.url, "GetVersion"))["sfa_aggregates"]
    assert "https://127.0.0.1:9/" in [a["url"] for a in listed]
    assert sfa("admin", directory, "peer", "remove", "gone").exit_code == 0
    listed = value_of(fed.alice.call(fed.sm.url, "GetVersion"))["sfa_aggregates"]
    assert [a["url"] for a in listed] == [fed.plc.aggregate.url, fed.ple.aggregate.url]
