"""What the real clients of the field put on the wire, sent over TLS to our servers (issue 12).

Python 2 clients cannot run here, so each test sends the request the client sends, as read in
its public source: SFA's sfi 3.1 (`sfa/client/sfaclientlib.py`, `sfa/trust/certificate.py`,
`sfa/util/sfatime.py`, `sfa/client/sfi.py`) and omni (geni-tools,
`src/gcf/omnilib/frameworks/framework_sfa.py`, `src/gcf/omnilib/amhandler.py`).
"""

from __future__ import annotations

import time
import warnings
import xmlrpc.client
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from twisted.internet.threads import blockingCallFromThread

from sfa.errors import GeniCode
from sfa.rspecs.reader import read_rspec
from sfa.server.app import start_registry_in_threads
from sfa.server.envelope import EnvelopeReplies
from sfa.server.listener import start_service
from sfa.server.sm_api import open_slicemgr, sm_handlers
from sfa.storage.registry_schema import open_registry_database
from sfa.timeutil import parse_rfc3339, utcnow
from sfa.trust.credential import create_credential, delegate_credential, parse_credential
from sfa.trust.gid import GID
from sfa.trust.keys import generate_private_key
from tests.server.conftest import Identity, proxy, write_identity
from tests.server.test_am_api import (  # noqa: F401 - site: the fixture
    GENI3,
    SLICES,
    AmSite,
    ok,
    request,
    site,
)

ALICE = "urn:publicid:IDN+plc+user+alice"


def sfi_self_signed(hrn: str, key: RSAPrivateKey) -> GID:
    """SFA sfi 3.1's bootstrap certificate (`SfaClientBootstrap.self_signed_cert_produce` with
    `Certificate.create`/`sign`): X.509 v3 with no extension at all, serial 3, subject and
    issuer `CN=<hrn>`, valid from now for 1825 days, signed with MD5 (`Certificate.digest`)."""
    cert = crypto.X509()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pyOpenSSL's legacy X509 API
        cert.set_version(2)
        cert.set_serial_number(3)
        cert.gmtime_adj_notBefore(0)
        cert.gmtime_adj_notAfter(1825 * 24 * 3600)
        cert.get_subject().CN = hrn
        cert.set_issuer(cert.get_subject())
        cert.set_pubkey(crypto.PKey.from_cryptography_key(key))
        cert.sign(crypto.PKey.from_cryptography_key(key), "md5")
    return GID.from_certificate(cert.to_cryptography())


def registry_dump(am_site: AmSite) -> Any:
    database = open_registry_database(am_site.deployment.registry_db)
    try:
        return database.dump()
    finally:
        database.close()


def fault(call: Any) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as caught:
        call()
    assert "Traceback" not in caught.value.faultString
    return caught.value


def registry(am_site: AmSite, identity: Identity | None) -> Any:
    return proxy(am_site.registry.url, am_site.root_file, identity)


# --- item 1: SFA sfi's bootstrap on a CN-only certificate -------------------------------------

@pytest.fixture
def sfi_boot(site: AmSite, keys: list, tmp_path: Path) -> Identity:  # noqa: F811
    return write_identity(tmp_path, "sfi", sfi_self_signed("plc.alice", keys[1]), keys[1])


def test_sfi_bootstrap_on_a_cn_only_certificate(site: AmSite, sfi_boot: Identity,  # noqa: F811
                                                keys: list, tmp_path: Path) -> None:
    """sfi 3.1 `my_credential_produce`: GetSelfCredential(cert string, hrn, "user") over TLS
    with the self-signed certificate; then `gid_produce`: Resolve(hrn, credential string) —
    two arguments, the credential a bare string — on the same certificate, to get its GID."""
    assert not sfi_boot.gid.urn
    client = registry(site, sfi_boot)
    credential = client.GetSelfCredential(sfi_boot.gid.to_pem(), "plc.alice", "user")
    assert parse_credential(credential).owner_urn == ALICE
    records = client.Resolve("plc.alice", credential)
    (record,) = [r for r in records if r["type"] == "user"]
    real = GID.from_pem(record["gid"])
    assert real.urn == ALICE and real.public_key.public_numbers() == \
        keys[1].public_key().public_numbers()
    assert record["reg-urn"] == ALICE
    # From then on sfi connects with that GID (`credential_produce`).
    with_gid = registry(site, write_identity(tmp_path, "gid", real, keys[1]))
    slice_cred = with_gid.GetCredential(credential, "plc.princeton.exp1", "slice")
    assert parse_credential(slice_cred).owner_urn == ALICE


def test_cn_only_certificate_proves_a_key_not_a_name(site: AmSite, sfi_boot: Identity,  # noqa: F811
                                                     keys: list, tmp_path: Path) -> None:
    """The bootstrap is the only door for a URN-less certificate: another user's name, a
    credential owned by another key, and every other call are refused; nothing changes."""
    before = registry_dump(site)
    client = registry(site, sfi_boot)
    wrong_name = fault(lambda: client.GetSelfCredential(sfi_boot.gid.to_pem(), "plc.bob", "user"))
    assert wrong_name.faultCode == GeniCode.CREDENTIAL_MISMATCH
    bob_cred = site.creds["bob"]
    stolen = fault(lambda: client.Resolve("plc.bob", bob_cred))
    assert stolen.faultCode in (GeniCode.CREDENTIAL_SIGNER_UNTRUSTED,
                                GeniCode.CREDENTIAL_MISMATCH)
    other_call = fault(lambda: client.GetCredential(site.creds["alice"], "plc.princeton.exp1",
                                                    "slice"))
    assert other_call.faultCode == GeniCode.CREDENTIAL_INVALID
    assert "no URN" in other_call.faultString and "bootstrap" in other_call.faultString
    reply = site.am("alice").GetVersion()  # the aggregate also refuses it for real calls
    assert reply["code"]["geni_code"] == 0
    am = proxy(site.aggregate.url + "am/3", site.root_file, sfi_boot)
    refused = am.ListResources(site.cred("exp1"), {"geni_rspec_version": {
        "type": "GENI", "version": "3"}})
    assert refused["code"]["geni_code"] == GeniCode.CREDENTIAL_INVALID
    assert registry_dump(site) == before
    assert registry(site, None).GetVersion({})["hrn"] == "plc"


# --- items 3 and 4: omni's createslice and renewslice through its SFA framework ---------------

def _pi_registry(site: AmSite) -> Any:  # noqa: F811
    return registry(site, site.ids["pi"])


def test_omni_createslice_registers_with_epoch_seconds(site: AmSite) -> None:  # noqa: F811
    """omni `createslice` (framework_sfa `create_slice`): GetCredential(user cred string,
    authority, "authority"), then Register with the record below — `expires` is epoch seconds
    in a string, and `researcher`, `PI`, `name`, `peer_authority` come along."""
    client = _pi_registry(site)
    auth_cred = client.GetCredential(site.creds["pi"], "plc.princeton", "authority")
    expiration = int(time.time()) + 7 * 24 * 3600
    record = {"peer_authority": "", "description": "a slice", "url": "http://www.geni.net",
              "expires": str(expiration), "authority": "plc.princeton",
              "researcher": ["plc.pi"], "hrn": "plc.princeton.omni1", "PI": ["plc.pi"],
              "type": "slice", "name": "plc.princeton.omni1"}
    gid = client.Register(record, auth_cred)
    assert GID.from_pem(gid).urn == "urn:publicid:IDN+plc:princeton+slice+omni1"
    (stored,) = client.Resolve("plc.princeton.omni1", site.creds["pi"])
    assert parse_rfc3339(stored["expires"]).timestamp() == expiration
    assert stored["expires"].endswith("Z")  # strict in what we write


def test_omni_renewslice_sends_back_the_resolved_record(site: AmSite) -> None:  # noqa: F811
    """omni `renewslice` (framework_sfa `renew_slice`): Resolve(urn, user cred), then
    Update(the slice record as resolved — `gid` included — with `expires` set to int epoch
    seconds, slice credential); a changed `gid` is still refused (spec/security.md 10)."""
    client = _pi_registry(site)
    urn = "urn:publicid:IDN+plc:princeton+slice+exp2"
    slice_cred = client.GetCredential(site.creds["pi"], urn, "slice")
    (record,) = [r for r in client.Resolve(urn, site.creds["pi"]) if r["type"] == "slice"]
    wanted = (utcnow() + timedelta(days=20)).replace(microsecond=0)
    forged = dict(record, expires=int(wanted.timestamp()), gid=site.ids["pi"].gid.to_pem())
    before = registry_dump(site)
    refused = fault(lambda: client.Update(forged, slice_cred))
    assert refused.faultCode == GeniCode.FORBIDDEN and "gid" in refused.faultString
    assert registry_dump(site) == before
    record["expires"] = int(wanted.timestamp())
    assert client.Update(record, slice_cred) == 1
    (renewed,) = [r for r in client.Resolve(urn, site.creds["pi"]) if r["type"] == "slice"]
    assert parse_rfc3339(renewed["expires"]) == wanted


def test_sfi_renew_sends_the_time_as_typed(site: AmSite) -> None:  # noqa: F811
    """SFA sfi 3.1 `renew SLICE TIME` sends TIME as typed ("don't try to be smart on the time
    format, server-side will"): Renew([slice urn], [slice credential string], TIME,
    {"call_id": ...}); `sfatime.utcparse` read `+Nd`, `+Nw`, `+Nm` (four weeks) and a date.
    A shorter time than the current expiry is legal too (item 2)."""
    am, urn = site.am(), SLICES[2]
    creds = [site.creds["exp3"]]
    ok(am.Allocate(urn, creds, request('<node client_id="r" exclusive="false"/>'), {}))
    ok(am.Provision([urn], creds, {"geni_rspec_version": GENI3}))
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    for typed, expected in (
            ("+1m", utcnow() + timedelta(weeks=4)),  # within the 30-day slice credential
            ("+2w", utcnow() + timedelta(weeks=2)),
            (str((today + timedelta(days=3)).date()), today + timedelta(days=3)),
            ("+1d", utcnow() + timedelta(days=1))):
        (renewed,) = ok(am.Renew([urn], creds, typed, {"call_id": "sfi-renew"}))
        got = parse_rfc3339(renewed["geni_expires"])
        assert abs((got - expected).total_seconds()) < 120, (typed, got)
    ok(am.Delete([urn], creds, {}))


# --- item 5: omni labels a delegated credential geni_unknown ----------------------------------

def test_omni_geni_unknown_label_is_read_from_the_document(site: AmSite) -> None:  # noqa: F811
    """omni wraps every credential with `framework_base.wrap_cred`: `credparsing.get_cred_type`
    finds more than one `<type>` in a delegated credential and labels it
    `{geni_type: "geni_unknown", geni_version: "0", geni_value: <xml string>}`."""
    alice_slice = parse_credential(site.creds["exp1"])
    delegated = delegate_credential(alice_slice, to=site.ids["bob"].gid,
                                    signer_key=site.ids["alice"].key,
                                    signer=site.ids["alice"].gid)
    assert delegated.xml.count("<type>") > 1  # why omni cannot label it
    unknown = {"geni_type": "geni_unknown", "geni_version": "0", "geni_value": delegated.xml}
    options = {"geni_rspec_version": GENI3}
    described = site.am("bob").Describe([SLICES[0]], [unknown], options)
    assert described["code"]["geni_code"] == 0, described["output"]
    assert read_rspec(described["value"]["geni_rspec"]).type == "manifest"
    # Still refused: a label we do not know on something that is not a credential (class 12).
    junk = {"geni_type": "geni_unknown", "geni_version": "0", "geni_value": "<x/>"}
    refused = site.am("bob").Describe([SLICES[0]], [junk], options)
    assert refused["code"]["geni_code"] == GeniCode.CREDENTIAL_INVALID
    assert ok(site.am(None).GetVersion())["geni_api"] == 3


# --- item 6: `sfi trusted` against the aggregate and the slice manager ------------------------

def _trusted_roots(site: AmSite) -> set[str]:  # noqa: F811
    return {GID.from_pem(site.root_file.read_text()).fingerprint}


def test_sfi_trusted_at_the_aggregate_and_slice_manager(site: AmSite,  # noqa: F811
                                                        reactor: Any) -> None:
    """sfi 3.1 `trusted` without -R: `sliceapi().get_trusted_certs(my authority credential
    string)`, then `ReturnValue.get_value` takes the list of PEM certificates from the
    envelope's `value`; the registry's semantics: own GID without a credential."""
    pi = site.ids["pi"]
    auth_cred = registry(site, pi).GetCredential(site.creds["pi"], "plc.princeton", "authority")
    manager = open_slicemgr(site.deployment, aggregate_url=site.aggregate.url)
    identity = site.deployment.service_identity("slicemgr")
    sm = blockingCallFromThread(reactor, lambda: start_service(
        reactor, name="slicemgr", handlers=sm_handlers(manager), replies=EnvelopeReplies(),
        gid=identity.gid, key=identity.key, host="127.0.0.1", port=0,
        limits=site.deployment.config.limits))
    try:
        for url, own in ((site.aggregate.url, site.deployment.service_identity("aggregate")),
                         (sm.url, identity)):
            api = proxy(url, site.root_file, pi)
            reply = api.get_trusted_certs(auth_cred)
            assert {GID.from_pem(pem).fingerprint for pem in ok(reply)} == _trusted_roots(site)
            (mine,) = ok(api.get_trusted_certs())
            assert GID.from_pem(mine).fingerprint == own.gid.fingerprint
            # A user credential grants no `gettrustedcerts`.
            denied = api.get_trusted_certs(site.creds["alice"])
            assert denied["code"]["geni_code"] in (GeniCode.FORBIDDEN,
                                                   GeniCode.CREDENTIAL_MISMATCH)
        alice_v2 = proxy(site.aggregate.url + "am/2", site.root_file, site.ids["alice"])
        assert ok(alice_v2.get_trusted_certs())
    finally:
        blockingCallFromThread(reactor, sm.stop)
        manager.fanout.close()
        manager.holders.close()


# --- item 7: a C-BAS clearinghouse (FELIX) signs as +authority+ca ------------------------------

CBAS = "urn:publicid:IDN+cbas.eict.de+authority+ca"


def foreign_gid(urn: str, key: RSAPrivateKey, issuer: GID | None, issuer_key: RSAPrivateKey,
                *, is_ca: bool = False) -> GID:
    """A certificate as other GENI software issues it: CN, the URN and a UUID in
    subjectAltName, basicConstraints; we cannot write `+authority+ca` names ourselves."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, urn.rsplit("+", 1)[1])])
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(urn),
                                       x509.UniformResourceIdentifier(f"urn:uuid:{uuid4()}")])
    now = utcnow()
    cert = (x509.CertificateBuilder().subject_name(name)
            .issuer_name(issuer.certificate.subject if issuer else name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .add_extension(san, critical=False)
            .sign(issuer_key, hashes.SHA256()))
    return GID(cert, (issuer.certificate,) if issuer else ())


def test_cbas_authority_ca_credentials_are_accepted(site: AmSite,  # noqa: F811
                                                    tmp_path: Path) -> None:
    """A FELIX user of C-BAS: its member and slice certificates are issued, and its slice
    credential signed, by `urn:publicid:IDN+cbas.eict.de+authority+ca`; with that root
    trusted, our aggregate serves the slice (the chain check refused any authority URN not
    ending in +authority+sa|am|sm|cm|ma)."""
    ca_key, user_key, slice_key = (generate_private_key() for _ in range(3))
    ca = foreign_gid(CBAS, ca_key, None, ca_key, is_ca=True)
    user = foreign_gid("urn:publicid:IDN+cbas.eict.de+user+felixuser", user_key, ca, ca_key)
    slice_urn = "urn:publicid:IDN+cbas.eict.de+slice+felix1"
    slice_gid = foreign_gid(slice_urn, slice_key, ca, ca_key)
    credential = create_credential(owner=user, target=slice_gid, privileges="*",
                                   expires=utcnow() + timedelta(days=1), signer_key=ca_key,
                                   signer=ca)
    wire = [{"geni_type": "geni_sfa", "geni_version": 3, "geni_value": credential.xml}]
    am = proxy(site.aggregate.url + "am/3", site.root_file,
               write_identity(tmp_path, "felixuser", user, user_key))
    rspec = request('<node client_id="f" exclusive="false"/>')
    untrusted = am.Allocate(slice_urn, wire, rspec, {})
    assert untrusted["code"]["geni_code"] == GeniCode.CREDENTIAL_SIGNER_UNTRUSTED
    root_file = site.deployment.trusted_roots_dir / "cbas.gid"
    root_file.write_text(ca.to_pem())
    try:
        allocated = ok(am.Allocate(slice_urn, wire, rspec, {}))
        assert [s["geni_allocation_status"] for s in allocated["geni_slivers"]] == [
            "geni_allocated"]
        deleted = ok(am.Delete([slice_urn], wire, {}))
        assert [s["geni_allocation_status"] for s in deleted] == ["geni_unallocated"]
    finally:
        root_file.unlink()


# --- item 8: a stock Python client keeps its connection across `sfa serve` restarts -----------

def test_kept_alive_stock_client_reconnects_after_a_restart(site: AmSite,  # noqa: F811
                                                            reactor: Any) -> None:
    """Python's `xmlrpc.client.ServerProxy` (HTTP/1.1 keep-alive) retries a call once when its
    kept connection turns out closed (RemoteDisconnected, ECONNRESET), but not on an
    SSLEOFError: a TLS connection closed without close_notify. The registry stops and starts
    again on the same port; the client's next call must succeed."""
    client = registry(site, site.ids["alice"])
    watcher = registry(site, site.ids["alice"])
    assert client.GetVersion({})["hrn"] == "plc" and watcher.GetVersion({})["hrn"] == "plc"
    kept = client("transport")._connection[1]  # the connection the next call would reuse
    watched = watcher("transport")._connection[1]
    assert kept is not None and kept.sock is not None and watched.sock is not None
    port = int(site.registry.url.rstrip("/").rsplit(":", 1)[1])
    blockingCallFromThread(reactor, site.registry.stop)
    # What a kept connection reads now: a clean TLS end (b""), not ssl.SSLEOFError.
    watched.sock.settimeout(10)
    assert watched.sock.recv(1) == b""
    site.registry = blockingCallFromThread(reactor, lambda: start_registry_in_threads(
        reactor, site.deployment, host="127.0.0.1", port=port))
    assert client.GetVersion({})["hrn"] == "plc"
    assert client("transport")._connection[1] is not kept  # it reconnected by itself
