"""The per-slice key pair, delivered to each node sealed for that node.

The AM makes one RSA key pair per slice. The signed ticket carries its public half
(`slice_keypair_public`); the private half travels beside the ticket, sealed for the node:
a random AES-256-GCM key wrapped with RSA-OAEP-SHA256 under the public key of the node's GID,
the sliver URN as associated data. The node unseals it with its own key and accepts it only
when its public half equals the one the AM signed into the ticket, so nobody but the AM (the
holder of the private key) can plant a different key, and only the node can read it.
"""

from __future__ import annotations

import base64
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sfa.errors import BadArgs, Forbidden
from sfa.trust.keys import load_public_key, private_key_to_pem, public_keys_equal

_VERSION = 1
_NONCE = 12
_MAX_SEALED = 64 * 1024


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def seal_slice_key(
    slice_key: rsa.RSAPrivateKey, node_public_key: rsa.RSAPublicKey, sliver_urn: str
) -> str:
    """The slice's private key sealed for one node and one sliver (base64 text)."""
    content_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(_NONCE)
    body = AESGCM(content_key).encrypt(nonce, private_key_to_pem(slice_key), sliver_urn.encode())
    wrapped = node_public_key.encrypt(content_key, _oaep())
    blob = struct.pack(">BH", _VERSION, len(wrapped)) + wrapped + nonce + body
    return base64.b64encode(blob).decode("ascii")


def unseal_slice_key(
    sealed: str | bytes, node_key: rsa.RSAPrivateKey, sliver_urn: str, expected_public: str
) -> rsa.RSAPrivateKey:
    """Open a sealed slice key; Forbidden unless it is for this node and sliver and its public
    half is `expected_public` (the `ssh-rsa` line of the signed ticket)."""
    blob = _decode(sealed)
    version, wrapped_len = struct.unpack(">BH", blob[:3])
    if version != _VERSION or len(blob) < 3 + wrapped_len + _NONCE + 16:
        raise BadArgs("sealed slice key: unknown version or truncated")
    wrapped = blob[3 : 3 + wrapped_len]
    nonce = blob[3 + wrapped_len : 3 + wrapped_len + _NONCE]
    body = blob[3 + wrapped_len + _NONCE :]
    try:
        content_key = node_key.decrypt(wrapped, _oaep())
        pem = AESGCM(content_key).decrypt(nonce, body, sliver_urn.encode())
    except (ValueError, InvalidTag):
        raise Forbidden("the sealed slice key is not for this node and sliver") from None
    key = _load_sealed_key(pem)
    if not public_keys_equal(key.public_key(), load_public_key(expected_public)):
        raise Forbidden("the sealed slice key does not match the ticket's slice_keypair_public")
    return key


def _load_sealed_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Load the unsealed PEM without the slow RSA consistency check (~60 ms): the node only
    stores this key for the sliver, and its public half is compared with the signed one."""
    try:
        key = serialization.load_pem_private_key(
            pem, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError):
        raise BadArgs("the sealed slice key is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadArgs("the sealed slice key is not an RSA key")
    return key


def _decode(sealed: str | bytes) -> bytes:
    if isinstance(sealed, str):
        sealed = sealed.encode("ascii", "replace")
    if not isinstance(sealed, bytes) or len(sealed) > _MAX_SEALED:
        raise BadArgs("sealed slice key: expected base64 text of at most 64 KiB")
    try:
        blob = base64.b64decode(sealed, validate=True)
    except ValueError:
        raise BadArgs("sealed slice key: not base64") from None
    if len(blob) < 3:
        raise BadArgs("sealed slice key: truncated")
    return blob
