"""RSA keys: create, load and save PEM, and convert OpenSSH `ssh-rsa` public keys."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.errors import BadArgs

MIN_BITS = 2048


def generate_private_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A new RSA key; never fewer than 2048 bits."""
    if bits < MIN_BITS:
        raise BadArgs(f"refusing to create an RSA key of {bits} bits: use at least {MIN_BITS}")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_to_pem(key: rsa.RSAPrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the passphrase when one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


_VALIDATED: set[bytes] = set()  # SHA-256 of key files whose RSA parameters were checked
_VALIDATED_MAX = 4096


def load_private_key(
    data: bytes | str, passphrase: bytes | None = None, *, own_file: bool = False
) -> rsa.RSAPrivateKey:
    """Load a PEM RSA private key (PKCS#1 or PKCS#8, optionally encrypted).

    OpenSSL's RSA consistency check (~170 ms) runs once per distinct key text in a process,
    and not at all for `own_file=True`: a key file we wrote ourselves (see
    `is_own_key_file`), where anyone able to alter it already holds the authority."""
    raw = data.encode() if isinstance(data, str) else data
    digest = hashlib.sha256(raw + b"\0" + (passphrase or b"")).digest()
    skip = own_file or digest in _VALIDATED
    try:
        key = serialization.load_pem_private_key(
            raw, password=passphrase, unsafe_skip_rsa_key_validation=skip
        )
    except TypeError as exc:
        raise BadArgs(f"private key passphrase problem: {exc}") from None
    except ValueError as exc:
        raise BadArgs(f"not a readable PEM private key (wrong passphrase?): {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadArgs(f"expected an RSA private key, got {type(key).__name__}")
    if not skip and len(_VALIDATED) < _VALIDATED_MAX:
        _VALIDATED.add(digest)
    return key


def is_own_key_file(path: str | os.PathLike[str]) -> bool:
    """True for a key file as `save_private_key` leaves it: a regular file owned by this
    process's user that no one else may read or write (mode 0600 or stricter)."""
    info = os.lstat(path)
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() and not (
        info.st_mode & 0o077
    )


def save_private_key(
    path: str | os.PathLike[str], key: rsa.RSAPrivateKey, passphrase: bytes | None = None
) -> None:
    """Write the key as PEM, readable by its owner only (mode 0600 from the start)."""
    target = Path(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_to_pem(key, passphrase))
    target.chmod(0o600)


def load_public_key(text: bytes | str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`), an X.509 certificate,
    or an OpenSSH `ssh-rsa` line."""
    raw = text.encode() if isinstance(text, str) else text
    stripped = raw.strip()
    key: object
    try:
        if stripped.startswith(b"ssh-"):
            key = serialization.load_ssh_public_key(stripped.splitlines()[0])
        elif b"-----BEGIN CERTIFICATE-----" in stripped:
            key = x509.load_pem_x509_certificate(stripped).public_key()
        else:
            key = serialization.load_pem_public_key(stripped)
    except (ValueError, TypeError, IndexError) as exc:
        raise BadArgs(f"not a readable public key (PEM, certificate or ssh-rsa): {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadArgs(f"expected an RSA public key, got {type(key).__name__}")
    return key


def public_key_to_pem(key: rsa.RSAPublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_to_openssh(key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> str:
    """The `ssh-rsa AAAA...` line for a key (the public half of a private key)."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def public_key_der(key: rsa.RSAPublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo: a canonical form to compare and hash keys."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_keys_equal(a: rsa.RSAPublicKey, b: rsa.RSAPublicKey) -> bool:
    """True when both are the same RSA public key."""
    return a.public_numbers() == b.public_numbers()
