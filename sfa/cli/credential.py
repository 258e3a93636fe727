"""`sfa trust cred ...`: issue, delegate and verify credentials from the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import click

from sfa.errors import SfaError
from sfa.timeutil import format_rfc3339, parse_time, utcnow
from sfa.trust.credential import (
    Credential,
    create_credential,
    delegate_credential,
    parse_credential,
)
from sfa.trust.gid import GID
from sfa.trust.hierarchy import Authority
from sfa.trust.keys import load_private_key
from sfa.trust.rights import operation_for
from sfa.trust.roots import TrustedRoots
from sfa.trust.verify import (
    TrustPolicy,
    authorize,
    check_credential_grants,
    verify_credential,
)

DEFAULT_LIFETIME = timedelta(days=30)


def _fail(exc: SfaError) -> None:
    click.echo(f"{exc.code.name}: {exc.message}", err=True)
    sys.exit(1)


def _gid(path: str) -> GID:
    return GID.from_pem(Path(path).read_bytes())


def _expires(text: str | None, target: GID) -> datetime:
    if text:
        return parse_time(text)
    return min(utcnow() + DEFAULT_LIFETIME, target.not_after)


def _privileges(text: str | None) -> list[str] | str | None:
    if text is None:
        return None
    if text.strip() == "*":
        return "*"
    return [name.strip() for name in text.split(",") if name.strip()]


def _write_credential(make: Callable[[], Credential], out: str) -> None:
    """Make a credential, write it to `out` and describe it; exit 1 with the GENI code else."""
    try:
        credential = make()
    except SfaError as exc:
        _fail(exc)
        return
    Path(out).write_text(credential.xml)
    click.echo(_describe(credential))


def _describe(credential: Credential) -> str:
    privileges = ", ".join(
        f"{p.name}{' (delegatable)' if p.can_delegate else ''}" for p in credential.privileges
    )
    return "\n".join(
        (
            f"owner:      {credential.owner_urn}",
            f"target:     {credential.target_urn}",
            f"privileges: {privileges}",
            f"expires:    {format_rfc3339(credential.expires)}",
            f"delegation: depth {credential.depth}",
        )
    )


@click.group()
def cred() -> None:
    """Issue, delegate and verify credentials."""


@cred.command("issue")
@click.option("--authority-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--owner", "owner_path", required=True, type=click.Path(exists=True))
@click.option("--target", "target_path", required=True, type=click.Path(exists=True))
@click.option("--privileges", default="*", show_default=True, help="a,b,c or *")
@click.option("--expires", default=None,
              help="RFC 3339, a date, +30d ... (default: 30 days, capped by target)")
@click.option("--delegatable", is_flag=True, help="let the owner delegate these privileges")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def issue(  # noqa: PLR0917
    authority_dir: str,
    owner_path: str,
    target_path: str,
    privileges: str,
    expires: str | None,
    delegatable: bool,
    out: str,
) -> None:
    """Sign a credential as the authority in AUTHORITY_DIR."""
    def make() -> Credential:
        authority = Authority.load(authority_dir)
        target = _gid(target_path)
        return create_credential(
            owner=_gid(owner_path),
            target=target,
            privileges=_privileges(privileges) or "*",
            expires=_expires(expires, target),
            signer_key=authority.key,
            signer=authority.gid,
            delegatable=delegatable,
        )

    _write_credential(make, out)


@cred.command("delegate")
@click.argument("cred_path", metavar="CRED", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(exists=True))
@click.option("--gid", "gid_path", required=True, type=click.Path(exists=True))
@click.option("--to", "to_path", required=True, type=click.Path(exists=True))
@click.option("--privileges", default=None, help="a,b,c (default: all delegatable)")
@click.option("--expires", default=None,
              help="RFC 3339, a date, +7d ... (capped at the parent's expiry)")
@click.option("--delegatable", is_flag=True, help="let the delegate delegate further")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def delegate(  # noqa: PLR0917
    cred_path: str,
    key_path: str,
    gid_path: str,
    to_path: str,
    privileges: str | None,
    expires: str | None,
    delegatable: bool,
    out: str,
) -> None:
    """Delegate CRED, which you own, to the holder of --to."""
    _write_credential(
        lambda: delegate_credential(
            parse_credential(Path(cred_path).read_text()),
            to=_gid(to_path),
            signer_key=load_private_key(Path(key_path).read_bytes()),
            signer=_gid(gid_path),
            privileges=_privileges(privileges),
            expires=parse_time(expires) if expires else None,
            delegatable=delegatable,
        ),
        out,
    )


@cred.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--roots", "roots_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--at", default=None, help="verify as of this time (RFC 3339, a date, epoch seconds)")
@click.option("--caller", "caller_path", default=None, type=click.Path(exists=True),
              help="GID of the presenter (checks ownership)")
@click.option("--target", default=None, help="URN the credential must be for")
@click.option("--operation", default=None, help="operation (createsliver) or method (Allocate)")
@click.option("--strict", is_flag=True, help="refuse MD5/SHA-1 and short keys")
def verify(  # noqa: PLR0917
    file: str,
    roots_dir: str,
    at: str | None,
    caller_path: str | None,
    target: str | None,
    operation: str | None,
    strict: bool,
) -> None:
    """Verify FILE against the trusted roots in --roots; exit 1 with the GENI code if refused."""
    try:
        policy = TrustPolicy(roots=TrustedRoots(roots_dir), strict_crypto=strict)
        when = parse_time(at) if at else None
        xml = Path(file).read_text()
        needed = operation_for(operation) if operation else None
        targets = (target,) if target else ()
        if caller_path:
            call = authorize(
                [xml], _gid(caller_path), policy, operation=needed, targets=targets, at=when
            )
            credential = call.credentials[0]
        else:
            credential = verify_credential(xml, policy, at=when)
            check_credential_grants(credential, operation=needed, targets=targets)
    except SfaError as exc:
        _fail(exc)
        return
    click.echo(_describe(credential))
