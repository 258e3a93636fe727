"""RSA keys: creation bounds, PEM with and without passphrase, OpenSSH conversion."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sfa.errors import BadArgs, GeniCode
from sfa.trust.keys import (
    generate_private_key,
    is_own_key_file,
    load_private_key,
    load_public_key,
    private_key_to_pem,
    public_key_der,
    public_key_to_openssh,
    public_key_to_pem,
    public_keys_equal,
    save_private_key,
)
from tests.trust.conftest import Principal


def test_generate_default_is_2048() -> None:
    assert generate_private_key().key_size == 2048


@pytest.mark.parametrize("bits", [512, 1024, 2047])
def test_refuses_to_create_weak_keys(bits: int) -> None:
    with pytest.raises(BadArgs) as info:
        generate_private_key(bits)
    assert info.value.code == GeniCode.BADARGS and "2048" in info.value.message


def test_pem_round_trip_plain_and_encrypted(alice: Principal) -> None:
    plain = private_key_to_pem(alice.key)
    assert b"ENCRYPTED" not in plain
    assert load_private_key(plain).private_numbers() == alice.key.private_numbers()
    assert load_private_key(plain.decode()).private_numbers() == alice.key.private_numbers()
    locked = private_key_to_pem(alice.key, b"s3cret")
    assert b"ENCRYPTED" in locked
    assert load_private_key(locked, b"s3cret").private_numbers() == alice.key.private_numbers()


def test_pkcs1_private_key_loads(alice: Principal) -> None:
    pkcs1 = alice.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert public_keys_equal(load_private_key(pkcs1).public_key(), alice.key.public_key())


def test_wrong_or_missing_passphrase_refused(alice: Principal) -> None:
    locked = private_key_to_pem(alice.key, b"s3cret")
    for passphrase in (b"wrong", None):
        with pytest.raises(BadArgs):
            load_private_key(locked, passphrase)
    with pytest.raises(BadArgs):
        load_private_key(private_key_to_pem(alice.key), b"unneeded")


def test_garbage_and_non_rsa_private_keys_refused() -> None:
    with pytest.raises(BadArgs):
        load_private_key(b"not a key")
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(BadArgs, match="RSA"):
        load_private_key(ec_pem)


def test_save_private_key_is_owner_only(tmp_path: Path, alice: Principal) -> None:
    path = tmp_path / "alice.pkey"
    save_private_key(path, alice.key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key(path.read_bytes()).private_numbers() == alice.key.private_numbers()
    path.chmod(0o644)
    save_private_key(path, alice.key, b"pw")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key(path.read_bytes(), b"pw").key_size == 2048


def test_public_key_from_pem_certificate_and_openssh(alice: Principal) -> None:
    public = alice.key.public_key()
    openssh = public_key_to_openssh(public)
    assert openssh.startswith("ssh-rsa AAAA")
    assert public_key_to_openssh(alice.key) == openssh
    forms: list[str | bytes] = [
        public_key_to_pem(public),
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        alice.gid.to_pem(),
        openssh + " alice@laptop\n",
        openssh.encode(),
    ]
    for form in forms:
        assert public_keys_equal(load_public_key(form), public)
    assert public_key_der(load_public_key(openssh)) == public_key_der(public)


def test_public_keys_equal_distinguishes(alice: Principal, bob: Principal) -> None:
    assert public_keys_equal(alice.key.public_key(), alice.gid.public_key)
    assert not public_keys_equal(alice.key.public_key(), bob.key.public_key())


def test_bad_public_keys_refused() -> None:
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    ssh_ed = ed.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    bads: list[str | bytes] = [
        b"", b"ssh-rsa", b"ssh-rsa !!!!", "garbage", ssh_ed,
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]
    for bad in bads:
        with pytest.raises(BadArgs):
            load_public_key(bad)


def _inconsistent_pem(key) -> bytes:
    numbers = key.private_numbers()
    broken = rsa.RSAPrivateNumbers(
        p=numbers.p, q=numbers.q, d=numbers.d, dmp1=numbers.dmp1 + 2, dmq1=numbers.dmq1,
        iqmp=numbers.iqmp, public_numbers=numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    return private_key_to_pem(broken)


def test_inconsistent_rsa_key_refused_unless_our_own_file(alice: Principal) -> None:
    bad = _inconsistent_pem(alice.key)
    with pytest.raises(BadArgs, match="not a readable PEM private key"):
        load_private_key(bad)
    with pytest.raises(BadArgs):
        load_private_key(bad)  # a refusal is not remembered as validated
    assert load_private_key(bad, own_file=True).public_key().public_numbers() == (
        alice.key.public_key().public_numbers()
    )


def test_validation_runs_once_per_key_text(monkeypatch, bob: Principal) -> None:
    seen: list[bool] = []
    real = serialization.load_pem_private_key

    def spy(data, password, **kwargs):
        seen.append(kwargs["unsafe_skip_rsa_key_validation"])
        return real(data, password, **kwargs)

    monkeypatch.setattr(serialization, "load_pem_private_key", spy)
    pem = private_key_to_pem(bob.key, b"pass")
    first = load_private_key(pem, b"pass")
    second = load_private_key(pem, b"pass")
    assert seen == [False, True]
    assert public_keys_equal(first.public_key(), second.public_key())


def test_is_own_key_file(tmp_path: Path, alice: Principal) -> None:
    path = tmp_path / "k.pkey"
    save_private_key(path, alice.key)
    assert is_own_key_file(path)
    path.chmod(0o640)
    assert not is_own_key_file(path)
    link = tmp_path / "link.pkey"
    link.symlink_to(path)
    path.chmod(0o600)
    assert not is_own_key_file(link)
