"""spec/security.md items 17 and 7 at the aggregate over TLS (the registry's are in
tests/server/test_registry_wire.py): bad client certificates, and one slice's credential in a
call naming two slices."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sfa.errors import GeniCode
from sfa.trust.gid import GID, create_gid
from sfa.trust.keys import generate_private_key
from tests.security.conftest import World, ok, refused_by_aggregate, request, slice_urn
from tests.server.conftest import Identity, write_identity

EXP6 = slice_urn("exp6")
ONE_NODE = request('<node client_id="t" exclusive="false"/>')


def allocate_as(world: World, identity: Identity | None, who: str | None = None) -> object:
    am = world.am(who, identity) if identity else world.am(who)
    return am.Allocate(EXP6, world.cred("exp6"), ONE_NODE, {})


def test_17_no_client_certificate_only_get_version(world: World) -> None:
    assert ok(world.am(None).GetVersion())["geni_api"] == 3
    text = refused_by_aggregate(world, lambda: allocate_as(world, None), GeniCode.FORBIDDEN)
    assert "certificate" in text


def test_17_expired_client_certificate(world: World, tmp_path: Path) -> None:
    root, alice = world.deployment.root_authority(), world.ids["alice"]
    old = create_gid(urn=alice.gid.urn, public_key=alice.key.public_key(), issuer_key=root.key,
                     issuer=root.gid, lifetime=timedelta(minutes=-1))
    stale = write_identity(tmp_path, "old", old, alice.key)
    refused_by_aggregate(world, lambda: allocate_as(world, stale), GeniCode.CREDENTIAL_EXPIRED)


def test_17_badly_signed_client_certificate(world: World, tmp_path: Path) -> None:
    alice = world.ids["alice"]
    der = bytearray(alice.gid.certificate.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # inside the signature
    forged = GID.from_certificate(x509.load_der_x509_certificate(bytes(der)), alice.gid.chain)
    bad = write_identity(tmp_path, "forged", forged, alice.key)
    refused_by_aggregate(world, lambda: allocate_as(world, bad), GeniCode.CREDENTIAL_INVALID)


def test_17_client_certificate_from_no_trusted_root(world: World, tmp_path: Path) -> None:
    key = generate_private_key()
    alone = create_gid(urn=world.ids["alice"].gid.urn, public_key=key.public_key(),
                       issuer_key=key)
    stranger = write_identity(tmp_path, "alone", alone, key)
    refused_by_aggregate(world, lambda: allocate_as(world, stranger),
                         GeniCode.CREDENTIAL_SIGNER_UNTRUSTED)


def test_7_one_slice_credential_in_a_call_naming_two_slices(world: World) -> None:
    """Two slice URNs are BADARGS; slivers of exp6 and exp5 with exp6's credential only are
    refused too, and exp5's sliver survives."""
    am, exp5 = world.am(), slice_urn("exp5")
    mine = ok(am.Allocate(EXP6, world.cred("exp6"), ONE_NODE, {}))["geni_slivers"]
    theirs = ok(am.Allocate(exp5, world.cred("exp5"), ONE_NODE, {}))["geni_slivers"]
    both = [mine[0]["geni_sliver_urn"], theirs[0]["geni_sliver_urn"]]
    try:
        refused_by_aggregate(world, lambda: am.Delete([EXP6, exp5], world.cred("exp6"), {}),
                             GeniCode.BADARGS)
        refused_by_aggregate(world, lambda: am.Delete(both, world.cred("exp6"), {}),
                             (GeniCode.CREDENTIAL_MISMATCH, GeniCode.BADARGS))
        refused_by_aggregate(world, lambda: am.Provision(both, world.cred("exp6"), {}),
                             (GeniCode.CREDENTIAL_MISMATCH, GeniCode.BADARGS))
    finally:
        ok(am.Delete([EXP6], world.cred("exp6"), {}))
        ok(am.Delete([exp5], world.cred("exp5"), {}))
