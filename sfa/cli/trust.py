"""`sfa trust ...`: create authorities, issue and verify GIDs, show any trust document.

Credentials live in the `cred` sub-group (`sfa/cli/credential.py`), added here when present.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import click
from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.errors import BadArgs, SfaError
from sfa.timeutil import format_rfc3339, parse_time
from sfa.trust.chain import verify_gid_chain
from sfa.trust.gid import GID
from sfa.trust.hierarchy import Authority
from sfa.trust.keys import load_public_key, save_private_key
from sfa.trust.roots import TrustedRoots
from sfa.xrn import AUTHORITY_SERVICES

MAX_FILE_BYTES = 10_000_000


def _fail(exc: SfaError) -> NoReturn:
    click.echo(f"{exc.code.name}: {exc.message}", err=True)
    sys.exit(1)


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except SfaError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(BadArgs(f"{exc.filename or ''}: {exc.strerror or exc}"))


def _read(path: str) -> bytes:
    file = Path(path)
    if file.stat().st_size > MAX_FILE_BYTES:
        raise BadArgs(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    return file.read_bytes()


def _write_outputs(prefix: str, gid: GID, key: rsa.RSAPrivateKey | None) -> None:
    gid_path = Path(f"{prefix}.gid")
    gid_path.parent.mkdir(parents=True, exist_ok=True)
    gid_path.write_text(gid.to_pem())
    click.echo(f"wrote {gid_path}  ({gid.urn})")
    if key is not None:
        save_private_key(f"{prefix}.pkey", key)
        click.echo(f"wrote {prefix}.pkey (mode 0600)")


@click.group()
def trust() -> None:
    """Authorities, GIDs, credentials and tickets."""


# --- authorities ------------------------------------------------------------------------------


@trust.group()
def authority() -> None:
    """Create root and sub-authorities on disk."""


@authority.command("create")
@click.argument("hrn")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False),
              help="directory for authority.pkey and authority.gid")
@click.option("--parent-dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="the parent authority's directory (omit for a root)")
@click.option("--lifetime-days", default=5 * 365, show_default=True, type=click.IntRange(1))
def authority_create(hrn: str, directory: str, parent_dir: str | None, lifetime_days: int) -> None:
    """Create authority HRN: a self-signed root, or a sub-authority of --parent-dir."""

    def action() -> None:
        lifetime = timedelta(days=lifetime_days)
        if parent_dir is None:
            created = Authority.create_root(directory, hrn, lifetime)
        else:
            parent = Authority.load(parent_dir)
            created = parent.create_sub_authority(hrn, directory, lifetime)
        click.echo(f"created authority {created.hrn} ({created.urn}) in {created.directory}")

    _run(action)


# --- GIDs -------------------------------------------------------------------------------------


@trust.group()
def gid() -> None:
    """Issue and verify GIDs."""


@gid.command("issue")
@click.argument("hrn")
@click.option("--type", "type_", required=True,
              type=click.Choice(["user", "slice", "node", "authority"]))
@click.option("--authority-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--pubkey", default=None, type=click.Path(exists=True, dir_okay=False),
              help="PEM public key, certificate or ssh-rsa line (default: make a new key)")
@click.option("--email", default=None)
@click.option("--lifetime-days", default=None, type=click.IntRange(1),
              help="default: 1 year (5 for authorities), capped by the issuer")
@click.option("--out", "prefix", required=True, help="writes PREFIX.gid (and PREFIX.pkey)")
def gid_issue(  # noqa: PLR0917
    hrn: str,
    type_: str,
    authority_dir: str,
    pubkey: str | None,
    email: str | None,
    lifetime_days: int | None,
    prefix: str,
) -> None:
    """Issue a GID for HRN, a name beneath the authority in --authority-dir."""

    def action() -> None:
        issuer = Authority.load(authority_dir)
        public = load_public_key(_read(pubkey)) if pubkey else None
        lifetime = timedelta(days=lifetime_days) if lifetime_days else None
        issued, key = issuer.issue_gid(hrn, type_, public, email, lifetime=lifetime)
        _write_outputs(prefix, issued, key)

    _run(action)


@gid.command("service")
@click.argument("service", type=click.Choice(list(AUTHORITY_SERVICES)))
@click.option("--host", required=True, help="host name or IP address the service answers on")
@click.option("--authority-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--pubkey", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "prefix", required=True, help="writes PREFIX.gid (and PREFIX.pkey)")
def gid_service(
    service: str, host: str, authority_dir: str, pubkey: str | None, prefix: str
) -> None:
    """Issue the GID of the authority's SERVICE (am, sa, ...) for TLS on --host."""

    def action() -> None:
        issuer = Authority.load(authority_dir)
        public = load_public_key(_read(pubkey)) if pubkey else None
        issued, key = issuer.issue_service_gid(service, host, public)
        _write_outputs(prefix, issued, key)

    _run(action)


@gid.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--roots", "roots_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--at", default=None, help="verify as of this time (RFC 3339, a date, epoch seconds)")
@click.option("--strict", is_flag=True, help="refuse MD5/SHA-1 and short keys")
def gid_verify(file: str, roots_dir: str, at: str | None, strict: bool) -> None:
    """Verify a GID chain against the trusted roots in --roots."""

    def action() -> None:
        subject = GID.from_pem(_read(file))
        when = parse_time(at) if at else None
        root = verify_gid_chain(subject, TrustedRoots(roots_dir), at=when, strict_crypto=strict)
        click.echo(f"OK {subject.urn} chains to trusted root {root.urn}")

    _run(action)


# --- show -------------------------------------------------------------------------------------


def _certificate_fields(item: GID) -> dict[str, Any]:
    algorithm = item.certificate.signature_hash_algorithm
    return {
        "subject": item.subject_cn,
        "issuer": item.issuer_cn,
        "urn": item.urn,
        "hrn": item.hrn,
        "type": item.type,
        "uuid": item.uuid,
        "email": item.email,
        "ca": item.is_ca,
        "not_before": format_rfc3339(item.not_before),
        "not_after": format_rfc3339(item.not_after),
        "key_bits": item.public_key.key_size,
        "signature_hash": algorithm.name if algorithm else "",
        "serial": format(item.certificate.serial_number, "x"),
        "ski": item.ski,
        "fingerprint_sha256": item.fingerprint,
    }


def describe_gid(item: GID) -> dict[str, Any]:
    """A GID and its chain as plain data (leaf first)."""
    chain = [_certificate_fields(item)]
    parent = item.parent
    while parent is not None:
        chain.append(_certificate_fields(parent))
        parent = parent.parent
    return {"kind": "gid", "chain": chain}


def _optional(module: str, name: str) -> Callable[..., Any] | None:
    """A function of a sibling module that may not exist yet."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


def _describe_credential(credential: Any) -> dict[str, Any]:
    return {
        "kind": "credential",
        "type": credential.type,
        "owner": credential.owner_urn,
        "target": credential.target_urn,
        "expires": format_rfc3339(credential.expires),
        "privileges": [
            {"name": p.name, "delegatable": p.can_delegate} for p in credential.privileges
        ],
        "serial": credential.serial,
        "uuid": credential.uuid,
        "delegation": [link.owner_urn for link in _credential_chain(credential)],
    }


def _credential_chain(credential: Any) -> list[Any]:
    links = []
    while credential is not None:
        links.append(credential)
        credential = credential.parent
    return links


def _describe_ticket(ticket: Any) -> dict[str, Any]:
    resources = ticket.resources
    return {
        "kind": "ticket",
        "serial": ticket.serial,
        "issuer": ticket.issuer_urn,
        "slice": ticket.slice_urn,
        "node": ticket.node_urn,
        "sliver": ticket.sliver_urn,
        "valid_from": format_rfc3339(ticket.valid_from),
        "expires": format_rfc3339(ticket.expires),
        "resources": dataclasses.asdict(resources),
        "users": [user.urn for user in ticket.users],
        "signer": ticket.signer.urn,
        "signed": (f"in a batch of {ticket.batch_size} tickets" if ticket.batch_size
                   else "alone"),
    }


def _describe_lease(lease: Any) -> dict[str, Any]:
    return {
        "kind": "lease",
        "ticket_serial": lease.ticket_serial,
        "sliver": lease.sliver_urn,
        "node": lease.node_urn,
        "issued": format_rfc3339(lease.issued),
        "expires": format_rfc3339(lease.expires),
        "signer": lease.signer.urn,
    }


_DOCUMENTS = (
    (b"<signed-credential", "sfa.trust.credential", "parse_credential", _describe_credential),
    (b"<signed-ticket", "sfa.trust.ticket", "parse_ticket", _describe_ticket),
    (b"<signed-lease", "sfa.trust.ticket", "parse_lease", _describe_lease),
)


def describe_document(data: bytes) -> dict[str, Any]:
    """Plain data describing a GID chain, credential, ticket or lease (parsed, not verified)."""
    head = data[:4096]
    for marker, module, parser_name, describe in _DOCUMENTS:
        if marker in head:
            parser = _optional(module, parser_name)
            if parser is None:
                raise BadArgs(f"this installation cannot read {marker.decode()[1:]} documents")
            return describe(parser(data))
    if b"<" in head.lstrip()[:1]:
        raise BadArgs("unknown XML document: expected a credential, ticket or lease")
    return describe_gid(GID.from_pem(data))


def _text_value(key: str, value: Any) -> str:
    if key == "privileges":
        return ", ".join(p["name"] + (" (delegatable)" if p["delegatable"] else "") for p in value)
    if key == "delegation":
        return " <- ".join(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _render_text(description: dict[str, Any]) -> str:
    lines = []
    if description["kind"] == "gid":
        for depth, cert in enumerate(description["chain"]):
            label = "GID" if depth == 0 else f"issuer {depth}"
            lines.append(f"{label}: {cert['urn'] or cert['subject']}")
            lines.extend(f"  {key}: {value}" for key, value in cert.items() if key != "urn")
        return "\n".join(lines)
    lines.append(f"{description['kind']}:")
    lines.extend(
        f"  {key}: {_text_value(key, value)}" for key, value in description.items() if key != "kind"
    )
    return "\n".join(lines)


@trust.command("show")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
def show(file: str, as_json: bool) -> None:
    """Show a GID (with its chain), credential, ticket or lease in FILE. Does not verify."""

    def action() -> None:
        description = describe_document(_read(file))
        if as_json:
            click.echo(json.dumps(description, indent=2))
        else:
            click.echo(_render_text(description))

    _run(action)


def _add_cred_group() -> None:
    cred_group = _optional("sfa.cli.credential", "cred")
    if isinstance(cred_group, click.Command):
        trust.add_command(cred_group, "cred")


_add_cred_group()
