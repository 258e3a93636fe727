"""sfi against a real registry over TLS: bootstrap from a bare key, every registry command,
referrals to a peer registry, the credential cache, and refusals."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from sfa.client.config import load_config
from sfa.timeutil import parse_rfc3339, utcnow
from sfa.trust.chain import verify_gid_chain
from sfa.trust.credential import create_credential, parse_credential
from sfa.trust.gid import GID, create_gid
from sfa.trust.keys import generate_private_key, public_keys_equal
from sfa.trust.roots import TrustedRoots
from tests.client.conftest import World, configure, sfi, sfi_json


def _cache(directory: Path) -> Path:
    return directory / "cache"


def test_config_writes_toml_and_shows_it(world: World, tmp_path: Path) -> None:
    directory = configure(tmp_path / "c", world)
    config = load_config(directory)
    assert config.registry == world.plc.registry.url and config.user == "plc.alice"
    assert config.aggregates["plc"].url == world.plc.aggregate.url
    assert {r.hrn for r in TrustedRoots(config.trusted_roots_dir).roots} == {"plc", "ple"}
    shown = sfi_json(directory, "config")["config"]
    assert shown["aggregates"]["ple"] == {"url": world.ple.aggregate.url, "api_version": 3}
    removed = sfi_json(directory, "config", "--remove-aggregate", "ple")
    assert "ple" not in removed["config"]["aggregates"]
    bad = sfi(directory, "config", "--aggregate", "x=http://plain")
    assert bad.exit_code == 1 and "BADARGS" in bad.output
    assert "x" not in load_config(directory).aggregates


def test_new_key_is_private_and_never_overwritten(tmp_path: Path) -> None:
    directory = tmp_path / "fresh"
    made = sfi_json(directory, "config", "--new-key", "--user", "plc.carol")
    key = directory / "user.pkey"
    assert made["public_key"].startswith("ssh-rsa ")
    assert os.stat(key).st_mode & 0o077 == 0
    before = key.read_bytes()
    again = sfi(directory, "config", "--new-key")
    assert again.exit_code == 1 and "refusing to overwrite" in again.output
    assert key.read_bytes() == before


def test_bootstrap_from_bare_key(world: World, alice_dir: Path) -> None:
    assert not (_cache(alice_dir) / "user.gid").exists()
    document = sfi_json(alice_dir, "gid")
    gid = GID.from_pem(document["gid"])
    assert gid.urn == "urn:publicid:IDN+plc+user+alice" and not gid.is_self_signed
    assert verify_gid_chain(gid, TrustedRoots(alice_dir / "trusted_roots")).hrn == "plc"
    assert public_keys_equal(gid.public_key, world.keys["alice"].public_key())
    # It bootstrapped as SFA's sfi does: a self-signed certificate with only CN=<hrn>.
    boot = GID.from_pem((_cache(alice_dir) / "self-signed.gid").read_bytes())
    assert boot.is_self_signed and boot.subject_cn == "plc.alice" and not boot.urn
    cached = GID.from_pem((_cache(alice_dir) / "user.gid").read_bytes())
    assert cached == gid
    user_cred = parse_credential((_cache(alice_dir) / "creds" / "user-plc.alice.cred")
                                 .read_text())
    assert user_cred.owner_urn == gid.urn and user_cred.expires > utcnow()
    # From now on the real GID is presented: the registry resolves us with it.
    (record,) = sfi_json(alice_dir, "show", "plc.alice")["records"]
    assert record["reg-urn"] == gid.urn
    assert GID.from_pem(record["gid"]).certificate == gid.certificate


def test_version_list_show(alice_dir: Path) -> None:
    version = sfi_json(alice_dir, "version")["registry"]
    assert version["interface"] == "registry" and version["hrn"] == "plc"
    records = sfi_json(alice_dir, "list", "plc", "-r")["records"]
    names = {(r["hrn"], r["type"]) for r in records}
    assert ("plc.princeton.exp1", "slice") in names and ("plc.alice", "user") in names
    children = {r["hrn"] for r in sfi_json(alice_dir, "list", "plc")["records"]}
    assert "plc.princeton.exp1" not in children and "plc.princeton" in children
    (record,) = sfi_json(alice_dir, "show", "plc.princeton.exp1")["records"]
    assert record["reg-researchers"] == ["plc.alice"]
    text = sfi(alice_dir, "show", "plc.princeton.exp1")
    assert text.exit_code == 0 and "reg-researchers" in text.output


def test_show_follows_referral_to_peer_registry(alice_dir: Path) -> None:
    (record,) = sfi_json(alice_dir, "show", "ple.bob")["records"]
    assert record["reg-urn"] == "urn:publicid:IDN+ple+user+bob"
    assert record["hrn"] == "ple.bob"


def test_unknown_name_prints_code_and_exits_1(alice_dir: Path) -> None:
    result = sfi(alice_dir, "show", "plc.nobody")
    assert result.exit_code == 1
    assert result.output.startswith("SEARCHFAILED: ")
    document = sfi_json(alice_dir, "show", "plc.nobody", ok=False)
    assert document["errors"][0]["code"] == "SEARCHFAILED"


def test_register_update_remove_as_pi(world: World, tmp_path: Path) -> None:
    pi = configure(tmp_path / "pi", world, "pi", hrn="plc.pi")
    created = sfi_json(pi, "register", "slice", "plc.princeton.tmp", "--researcher",
                       "plc.alice", "--description", "made by sfi")
    assert GID.from_pem(created["gid"]).urn == "urn:publicid:IDN+plc:princeton+slice+tmp"
    assert sfi_json(pi, "update", "slice", "plc.princeton.tmp", "--researcher", "plc.pi",
                    "--expires", "+5d")["ok"]
    (record,) = sfi_json(pi, "show", "plc.princeton.tmp")["records"]
    assert record["reg-researchers"] == ["plc.pi"]
    expires = parse_rfc3339(record["expires"])
    assert timedelta(days=4) < expires - utcnow() <= timedelta(days=5)
    assert sfi_json(pi, "remove", "slice", "plc.princeton.tmp")["ok"]
    assert sfi(pi, "show", "plc.princeton.tmp").exit_code == 1


def test_register_refused_for_non_pi_changes_nothing(alice_dir: Path) -> None:
    before = sfi_json(alice_dir, "list", "plc", "-r")["records"]
    result = sfi_json(alice_dir, "register", "slice", "plc.princeton.evil", "--researcher",
                      "plc.alice", ok=False)
    assert result["errors"][0]["code"] == "FORBIDDEN"
    assert sfi_json(alice_dir, "list", "plc", "-r")["records"] == before


def test_user_updates_own_keys(world: World, tmp_path: Path) -> None:
    alice = configure(tmp_path / "a", world)
    pub = world.key_files["alice"].with_suffix(".pub")
    assert sfi_json(alice, "update", "user", "plc.alice", "--key", str(pub))["ok"]
    (record,) = sfi_json(alice, "show", "plc.alice")["records"]
    assert record["reg-keys"] == [pub.read_text().strip()]


def test_gid_of_other_record_to_file(alice_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "exp1.gid"
    document = sfi_json(alice_dir, "gid", "plc.princeton.exp1", "--type", "slice", "-o",
                        str(target))
    assert document["file"] == str(target)
    assert GID.from_pem(target.read_bytes()).hrn == "plc.princeton.exp1"


def test_delegate_slice_credential_to_another_user(world: World, alice_dir: Path,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "to-pi.cred"
    sfi_json(alice_dir, "delegate", "--slice", "plc.princeton.exp1", "--to", "plc.pi",
             "-o", str(out))
    delegated = parse_credential(out.read_text())
    assert delegated.owner_urn == "urn:publicid:IDN+plc+user+pi"
    assert delegated.target_urn == "urn:publicid:IDN+plc:princeton+slice+exp1"
    assert delegated.parent is not None and delegated.parent.owner_urn.endswith("+user+alice")
    refused = sfi(alice_dir, "delegate", "--to", "plc.pi")
    assert refused.exit_code == 1 and "BADARGS" in refused.output


def test_trusted_lists_and_saves_roots(world: World, tmp_path: Path) -> None:
    directory = tmp_path / "t"
    sfi(directory, "config", "--registry", world.plc.registry.url, "--user", "plc.alice",
        "--key", str(world.key_files["alice"]), "--trusted-root", str(world.plc.root_file))
    (root,) = sfi_json(directory, "trusted", "--save")["roots"]
    assert root["hrn"] == "plc" and Path(root["saved"]).is_file()
    assert {r.hrn for r in TrustedRoots(directory / "trusted_roots").roots} == {"plc"}


def test_expired_cached_credential_is_refreshed(world: World, alice_dir: Path) -> None:
    sfi_json(alice_dir, "gid")  # bootstrap
    root = world.plc.deployment.root_authority()
    me = GID.from_pem((_cache(alice_dir) / "user.gid").read_bytes())
    path = _cache(alice_dir) / "creds" / "user-plc.alice.cred"
    for left in (timedelta(hours=-1), timedelta(minutes=2)):  # expired, about to
        stale = create_credential(owner=me, target=me, privileges=["refresh", "resolve"],
                                  expires=utcnow() + left, signer_key=root.key,
                                  signer=root.gid)
        path.write_text(stale.xml)
        assert sfi_json(alice_dir, "list", "plc")["records"]
        fresh = parse_credential(path.read_text())
        assert fresh.expires > utcnow() + timedelta(days=1)
    path.write_text("<not-a-credential/>")
    assert sfi_json(alice_dir, "list", "plc")["ok"]
    assert parse_credential(path.read_text()).owner_urn == me.urn


def test_untrusted_server_refused(world: World, tmp_path: Path) -> None:
    stranger_key = generate_private_key()
    stranger = create_gid(urn="urn:publicid:IDN+stranger+authority+sa",
                          public_key=stranger_key.public_key(), issuer_key=stranger_key,
                          is_ca=True)
    root_file = tmp_path / "stranger.gid"
    root_file.write_text(stranger.to_pem())
    directory = tmp_path / "u"
    sfi(directory, "config", "--registry", world.plc.registry.url, "--user", "plc.alice",
        "--key", str(world.key_files["alice"]), "--trusted-root", str(root_file),
        "--aggregate", f"plc={world.plc.aggregate.url}")
    result = sfi(directory, "version")
    assert result.exit_code == 1
    assert "RPCERROR" in result.output and "not trusted" in result.output
    assert not (directory / "cache" / "creds").exists()
    am = sfi_json(directory, "version", "-a", "plc", ok=False)
    assert am["results"][0]["code"] == "RPCERROR"
