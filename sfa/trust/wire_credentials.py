"""Credentials as they come off the wire: a bare XML string, bytes (what XML-RPC base64 becomes
at the edge), or the v3 struct `{geni_type, geni_version, geni_value}` (geni-lib sends the value
as base64 and the version as an int)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sfa.errors import CredentialInvalid

SFA_VERSIONS = frozenset({"2", "3"})
ABAC_VERSIONS = frozenset({"1"})


KNOWN_TYPES = frozenset({"geni_sfa", "geni_abac"})


@dataclass(frozen=True)
class WireCredential:
    """One credential off the wire: its kind (`geni_sfa` / `geni_abac`, or `` when the client's
    label is one we do not know and the document itself decides), XML text, and the label."""

    kind: str
    xml: str
    label: str = ""


def decode_credential(value: Any) -> WireCredential:
    """Accept a bare XML string, bytes, or the v3 struct
    `{geni_type, geni_version, geni_value}`; CredentialInvalid for anything else."""
    if isinstance(value, Mapping):
        return _decode_struct(value)
    return WireCredential("geni_sfa", _xml_text(value, "credential"))


def _decode_struct(value: Mapping[str, Any]) -> WireCredential:
    kind = value.get("geni_type")
    if not isinstance(kind, str) or not kind.strip():
        raise CredentialInvalid(
            f"credential geni_type {kind!r} is not a name: expected 'geni_sfa' or 'geni_abac'"
        )
    if kind.lower() not in KNOWN_TYPES:
        # omni labels a delegated credential `geni_unknown` (version "0"): read the document.
        value_text = _xml_text(value.get("geni_value"), f"{kind[:40]} geni_value")
        return WireCredential("", value_text, kind[:40])
    kind = kind.lower()
    version = value.get("geni_version")
    if isinstance(version, bool) or not isinstance(version, str | int):
        raise CredentialInvalid(f"credential geni_version {version!r} is not a string or int")
    allowed = SFA_VERSIONS if kind == "geni_sfa" else ABAC_VERSIONS
    if str(version).strip() not in allowed:
        raise CredentialInvalid(
            f"{kind} credential version {version!r} is not supported (use {sorted(allowed)})"
        )
    return WireCredential(kind, _xml_text(value.get("geni_value"), f"{kind} geni_value"))


def _xml_text(value: Any, what: str) -> str:
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise CredentialInvalid(f"{what} is not UTF-8 text") from None
    if not isinstance(value, str):
        raise CredentialInvalid(
            f"{what} must be XML text or a {{geni_type, geni_version, geni_value}} struct, "
            f"not {type(value).__name__}"
        )
    if not value.strip():
        raise CredentialInvalid(f"{what} is empty")
    return value


def decode_credential_list(credentials: Sequence[Any]) -> list[WireCredential]:
    """Decode a credential list; CredentialInvalid when it is not a list."""
    if isinstance(credentials, str | bytes | Mapping) or not isinstance(
        credentials, Sequence
    ):
        raise CredentialInvalid(
            f"credentials must be a list, not {type(credentials).__name__}"
        )
    return [decode_credential(item) for item in credentials]
