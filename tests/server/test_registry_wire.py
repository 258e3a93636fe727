"""The registry served for real over TLS: bootstrap, every method, refusals, restart.

Each refusal (spec/security.md items 6, 7, 10, 17) checks the GENI code, that the server
still answers, and that the database did not change.
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from twisted.internet.threads import blockingCallFromThread
from twisted.logger import ILogObserver, globalLogPublisher
from zope.interface import implementer

from sfa.cli.admin import open_admin
from sfa.deploy.config import PeerConfig, render_config
from sfa.deploy.layout import Deployment, init_deployment
from sfa.errors import GeniCode
from sfa.server.app import start_deployment
from sfa.server.listener import RunningService
from sfa.storage.registry_schema import open_registry_database
from sfa.trust.credential import parse_credential
from sfa.trust.gid import GID, create_gid
from sfa.trust.keys import public_key_to_openssh
from tests.server.conftest import Identity, proxy, wait_deferred, write_identity

ALICE = "urn:publicid:IDN+plc+user+alice"
PLE_URL = "https://registry.ple.example:12345/"


@dataclass
class Site:
    deployment: Deployment
    service: RunningService
    ids: dict[str, Identity]
    creds: dict[str, str]

    @property
    def root_file(self) -> Path:
        return self.deployment.trusted_roots_dir / "plc.gid"

    def client(self, who: str | None = None) -> Any:
        return proxy(self.service.url, self.root_file, self.ids[who] if who else None)

    def dump(self) -> Any:
        database = open_registry_database(self.deployment.registry_db)
        try:
            tables = database.dump()
        finally:
            database.close()
        files = sorted(str(p) for p in self.deployment.authorities_dir.rglob("*"))
        return tables, files


def _start(reactor: Any, deployment: Deployment) -> RunningService:
    lines: list[str] = []
    services = wait_deferred(reactor, lambda: start_deployment(reactor, deployment,
                                                               lines.append))
    assert lines == [f"ready {name} {served.url}" for name, served in services.items()]
    for name, served in services.items():
        if name != "registry":
            blockingCallFromThread(reactor, served.stop)
    service = services["registry"]
    assert isinstance(service, RunningService)
    return service


@pytest.fixture(scope="module")
def site(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """plc with sub-authority plc.princeton (PI pi), users alice and bob, slices exp1, exp2."""
    base = tmp_path_factory.mktemp("registry")
    made = init_deployment(base / "plc", authority="plc", registry_port=0, am_port=0)
    peers = {"ple": PeerConfig(registry=PLE_URL)}
    (made.directory / "sfa.toml").write_text(render_config(replace(made.config, peers=peers)))
    deployment = Deployment.load(made.directory)
    pi_key, alice_key, bob_key, _ = keys
    admin = open_admin(deployment)
    try:
        def add(hrn: str, key: Any, **kw: Any) -> GID:
            new = admin.admin_add_user(hrn, pubkey=public_key_to_openssh(key), **kw)
            return GID.from_pem(new.record.gid or "")

        pi = add("plc.pi", pi_key)
        admin.admin_add_authority("plc.princeton", pis=["plc.pi"])
        alice = add("plc.alice", alice_key, email="alice@example.org")
        bob = add("plc.bob", bob_key)
        admin.admin_add_slice("plc.princeton.exp1", ["plc.alice"])
        admin.admin_add_slice("plc.princeton.exp2", ["plc.bob"])
    finally:
        admin.close()
    ids = {
        "pi": write_identity(base / "ids", "pi", pi, pi_key),
        "alice": write_identity(base / "ids", "alice", alice, alice_key),
        "bob": write_identity(base / "ids", "bob", bob, bob_key),
    }
    running = Site(deployment, _start(reactor, deployment), ids, {})
    for who, hrn in (("pi", "plc.pi"), ("alice", "plc.alice"), ("bob", "plc.bob")):
        running.creds[who] = running.client(who).GetSelfCredential(
            ids[who].gid.to_pem(), hrn, "user"
        )
    running.creds["princeton"] = running.client("pi").GetCredential(
        [running.creds["pi"]], "plc.princeton", "authority"
    )
    running.creds["exp1"] = running.client("alice").GetCredential(
        [running.creds["alice"]], "plc.princeton.exp1", "slice"
    )
    yield running
    blockingCallFromThread(reactor, running.service.stop)


def refused(site: Site, call: Callable[[], Any], code: GeniCode) -> str:
    """The call fails with a fault of `code`, nothing changed, and the server still answers."""
    before = site.dump()
    with pytest.raises(xmlrpc.client.Fault) as caught:
        call()
    assert caught.value.faultCode == code, caught.value.faultString
    assert "Traceback" not in caught.value.faultString
    assert site.dump() == before
    assert site.client().GetVersion({})["hrn"] == "plc"
    return caught.value.faultString


# --- the bootstrap and every method ----------------------------------------------------------

def test_bootstrap_self_signed_key_to_slice_credential(site: Site, keys: list, tmp_path: Path):
    alice_key = keys[1]
    self_signed = create_gid(urn=ALICE, public_key=alice_key.public_key(), issuer_key=alice_key,
                             cn="plc.alice")
    boot = write_identity(tmp_path, "boot", self_signed, alice_key)
    client = proxy(site.service.url, site.root_file, boot)
    user_cred = client.GetSelfCredential(self_signed.to_pem(), "plc.alice", "user")
    assert parse_credential(user_cred).owner_urn == ALICE
    (record,) = client.Resolve("plc.alice", [user_cred], {})
    real = GID.from_pem(record["gid"])
    assert real.urn == ALICE and not real.is_self_signed
    real_id = write_identity(tmp_path, "real", real, alice_key)
    client = proxy(site.service.url, site.root_file, real_id)
    slice_cred = parse_credential(
        client.GetCredential([user_cred], "plc.princeton.exp1", "slice")
    )
    assert slice_cred.target_urn == "urn:publicid:IDN+plc:princeton+slice+exp1"
    assert {"refresh", "embed", "bind"} <= set(slice_cred.rights)


def test_get_version(site: Site):
    version = site.client().GetVersion()
    assert version["interface"] == "registry" and version["sfa"] == 3
    assert version["urn"] == "urn:publicid:IDN+plc+authority+sa"
    assert version["peers"] == {"ple": PLE_URL}


def test_peer_names_get_a_referral(site: Site):
    (stub,) = site.client("alice").Resolve("ple.inria.bob", [site.creds["alice"]], {})
    assert stub == {"hrn": "ple", "type": "authority",
                    "reg-urn": "urn:publicid:IDN+ple+authority+sa", "url": PLE_URL}
    text = refused(site, lambda: site.client("alice").GetCredential(
        [site.creds["alice"]], "ple.inria.exp", "slice"), GeniCode.SEARCHFAILED)
    assert PLE_URL in text


def test_resolve_shows_email_to_self_not_to_others(site: Site):
    (own,) = site.client("alice").Resolve(ALICE, [site.creds["alice"]], {})
    assert own["email"] == "alice@example.org"
    (seen,) = site.client("bob").Resolve(ALICE, [site.creds["bob"]], {})
    assert not seen.get("email")
    assert seen["reg-urn"] == ALICE


def test_list_records_under_an_authority(site: Site):
    records = site.client("alice").List("plc.princeton", [site.creds["alice"]], {})
    assert {r["hrn"] for r in records} >= {"plc.princeton.exp1", "plc.princeton.exp2"}


def test_register_update_remove_a_user(site: Site, keys: list):
    pi = site.client("pi")
    record = {"hrn": "plc.princeton.carol", "type": "user",
              "keys": [public_key_to_openssh(keys[3])], "email": "carol@example.org"}
    gid = GID.from_pem(pi.Register(record, [site.creds["princeton"]]))
    assert gid.urn == "urn:publicid:IDN+plc:princeton+user+carol"
    changed = {"hrn": "plc.princeton.carol", "type": "user", "email": "c@example.org"}
    assert pi.Update(changed, [site.creds["princeton"]]) == 1
    (now,) = pi.Resolve("plc.princeton.carol", [site.creds["pi"]], {})
    assert now["email"] == "c@example.org"
    assert pi.Remove("plc.princeton.carol", [site.creds["princeton"]], "user") == 1
    with pytest.raises(xmlrpc.client.Fault) as caught:
        pi.Resolve("plc.princeton.carol", [site.creds["pi"]], {})
    assert caught.value.faultCode == GeniCode.SEARCHFAILED


def test_create_gid_and_get_gids(site: Site, keys: list):
    pem = keys[3].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    made = GID.from_pem(site.client("pi").CreateGid(
        [site.creds["princeton"]], "urn:publicid:IDN+plc:princeton+slice+exp1", pem
    ))
    assert made.urn.endswith("+slice+exp1")
    (entry,) = site.client("pi").GetGids([ALICE], [site.creds["princeton"]])
    assert entry["hrn"] == "plc.alice" and GID.from_pem(entry["gid"]).urn == ALICE


def test_get_trusted_certs(site: Site):
    (own,) = site.client("alice").get_trusted_certs()
    assert GID.from_pem(own).urn == "urn:publicid:IDN+plc+authority+sa"
    roots = site.client("pi").get_trusted_certs(site.creds["princeton"])
    assert [GID.from_pem(r).hrn for r in roots] == ["plc"]


def test_binary_and_struct_credentials_are_accepted(site: Site):
    wrapped = {"geni_type": "geni_sfa", "geni_version": 3,
               "geni_value": xmlrpc.client.Binary(site.creds["alice"].encode())}
    (record,) = site.client("alice").Resolve(ALICE, [wrapped], {})
    assert record["hrn"] == "plc.alice"


# --- refusals --------------------------------------------------------------------------------

def test_17_no_client_certificate(site: Site):
    text = refused(site, lambda: site.client().Resolve(ALICE, [site.creds["alice"]], {}),
                   GeniCode.FORBIDDEN)
    assert "client certificate" in text


def test_17_expired_certificate(site: Site, keys: list, tmp_path: Path):
    root = site.deployment.root_authority()
    expired = create_gid(urn=ALICE, public_key=keys[1].public_key(), issuer_key=root.key,
                         issuer=root.gid, lifetime=timedelta(minutes=-1))
    old = write_identity(tmp_path, "x", expired, keys[1])
    client = proxy(site.service.url, site.root_file, old)
    refused(site, lambda: client.Resolve(ALICE, [site.creds["alice"]], {}),
            GeniCode.CREDENTIAL_EXPIRED)


def test_17_badly_signed_certificate(site: Site, keys: list, tmp_path: Path):
    alice = site.ids["alice"].gid
    der = bytearray(alice.certificate.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # inside the signature
    from cryptography import x509  # noqa: PLC0415

    forged = GID.from_certificate(x509.load_der_x509_certificate(bytes(der)), alice.chain)
    client = proxy(site.service.url, site.root_file, write_identity(tmp_path, "f", forged, keys[1]))
    refused(site, lambda: client.Resolve(ALICE, [site.creds["alice"]], {}),
            GeniCode.CREDENTIAL_INVALID)


def test_17_certificate_not_chaining_to_a_trusted_root(site: Site, keys: list, tmp_path: Path):
    # Self-signed with a key no credential owner has: the bootstrap exception does not apply.
    own = create_gid(urn=ALICE, public_key=keys[3].public_key(), issuer_key=keys[3])
    client = proxy(site.service.url, site.root_file, write_identity(tmp_path, "s", own, keys[3]))
    refused(site, lambda: client.Resolve(ALICE, [site.creds["alice"]], {}),
            GeniCode.CREDENTIAL_SIGNER_UNTRUSTED)


def test_6_stolen_credential(site: Site):
    bob = site.client("bob")
    refused(site, lambda: bob.GetCredential([site.creds["alice"]], "plc.princeton.exp1", "slice"),
            GeniCode.CREDENTIAL_MISMATCH)
    record = {"hrn": "plc.princeton.eve", "type": "user", "keys": []}
    refused(site, lambda: bob.Register(record, [site.creds["princeton"]]),
            GeniCode.CREDENTIAL_MISMATCH)


def test_7_slice_credential_on_another_slice(site: Site):
    change = {"hrn": "plc.princeton.exp2", "type": "slice", "description": "mine now"}
    refused(site, lambda: site.client("alice").Update(change, [site.creds["exp1"]]),
            GeniCode.CREDENTIAL_MISMATCH)


def test_7_user_credential_used_as_slice_credential(site: Site):
    refused(site, lambda: site.client("alice").Remove(
        "plc.princeton.exp1", [site.creds["alice"]], "slice"), GeniCode.CREDENTIAL_MISMATCH)


def test_10_no_refresh_over_another_user(site: Site):
    cred = parse_credential(site.client("bob").GetCredential([site.creds["bob"]], ALICE, "user"))
    assert "refresh" not in cred.rights


def test_10_register_under_an_authority_not_ours(site: Site, keys: list):
    record = {"hrn": "plc.princeton.mallory", "type": "user",
              "keys": [public_key_to_openssh(keys[3])]}
    refused(site, lambda: site.client("bob").Register(record, [site.creds["bob"]]),
            GeniCode.CREDENTIAL_MISMATCH)


def test_10_caller_supplied_gid_is_refused(site: Site, keys: list):
    record = {"hrn": "plc.princeton.dave", "type": "user", "gid": site.ids["pi"].gid.to_pem(),
              "keys": [public_key_to_openssh(keys[3])]}
    text = refused(site, lambda: site.client("pi").Register(record, [site.creds["princeton"]]),
                   GeniCode.FORBIDDEN)
    assert "reg-keys" in text


def test_bad_arguments_are_badargs_not_crashes(site: Site):
    alice = site.client("alice")
    refused(site, lambda: alice.Resolve(ALICE), GeniCode.MISSINGARGS)
    refused(site, lambda: alice.Resolve(ALICE, [site.creds["alice"]], {}, 4), GeniCode.BADARGS)
    refused(site, lambda: alice.Resolve(ALICE, [site.creds["alice"]], "opts"), GeniCode.BADARGS)
    refused(site, lambda: alice.Register("not a struct", []), GeniCode.BADARGS)


# --- restart ---------------------------------------------------------------------------------

def test_restart_keeps_every_record(site: Site, reactor: Any):
    before = site.dump()
    blockingCallFromThread(reactor, site.service.stop)
    site.service = _start(reactor, site.deployment)
    assert site.dump() == before
    records = site.client("alice").List("plc", [site.creds["alice"]], {"recursive": True})
    assert {"plc.alice", "plc.bob", "plc.pi", "plc.princeton.exp1"} <= {r["hrn"] for r in records}


def test_the_call_log_names_the_record_the_key_proves(site: Site, keys: list, tmp_path: Path):
    """A self-signed bootstrap certificate may claim any URN: the log names the record whose
    key it holds (alice), never the claim (pi)."""
    alice_key = keys[1]
    claim = create_gid(urn="urn:publicid:IDN+plc+user+pi", public_key=alice_key.public_key(),
                       issuer_key=alice_key, cn="plc.pi")
    liar = proxy(site.service.url, site.root_file,
                 write_identity(tmp_path, "liar", claim, alice_key))
    seen: list[dict[str, Any]] = []

    @implementer(ILogObserver)
    def observer(event: dict[str, Any]) -> None:
        seen.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        liar.GetSelfCredential(claim.to_pem(), "plc.alice", "user")
        with pytest.raises(xmlrpc.client.Fault):
            liar.GetSelfCredential(claim.to_pem(), "plc.pi", "user")  # not pi's key
    finally:
        globalLogPublisher.removeObserver(observer)
    callers = [event["caller"] for event in seen
               if event.get("method") == "GetSelfCredential" and "caller" in event]
    assert callers == [ALICE, "self-signed"]
