"""Primitives that apply no rules: they sign, issue or parse exactly what they are given.

A credential assembled here may grant what its signer has no right to grant, a GID issued here
may name anything, and a parsed credential is not a verified one. Use them to build test
fixtures and interoperability tools; decide trust only with `sfa.trust.authorize` /
`verify_credential`, and issue through `Authority` and `create_credential` / `delegate`.
"""

from __future__ import annotations

from sfa.trust.chain import verify_certificate_signature
from sfa.trust.credential import _assemble_credential as assemble_credential
from sfa.trust.credential import parse_credential
from sfa.trust.gid import create_gid
from sfa.trust.ticket import parse_lease, parse_ticket
from sfa.trust.xmldsig import (
    SignatureInfo,
    read_signatures,
    sign_document,
    sign_element,
    verify_signed_element,
)

__all__ = [
    "SignatureInfo",
    "assemble_credential",
    "create_gid",
    "parse_credential",
    "parse_lease",
    "parse_ticket",
    "read_signatures",
    "sign_document",
    "sign_element",
    "verify_certificate_signature",
    "verify_signed_element",
]
