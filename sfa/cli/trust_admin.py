"""`sfa admin DIR trust ...`: the deployment's trusted roots (federation peers)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click
from tabulate import tabulate

from sfa.cli.errors import fail
from sfa.deploy.layout import Deployment
from sfa.errors import BadArgs, SearchFailed, SfaError
from sfa.timeutil import format_rfc3339
from sfa.trust.gid import GID


@dataclass(frozen=True)
class RootInfo:
    hrn: str
    urn: str
    fingerprint: str
    expires: str

    @classmethod
    def of(cls, gid: GID) -> RootInfo:
        return cls(gid.hrn, gid.urn, gid.fingerprint, format_rfc3339(gid.not_after))


def read_root_gid(path: Path) -> GID:
    """A peer's root GID from a file: it must be a self-signed authority (CA)."""
    try:
        gid = GID.from_pem(path.read_bytes())
    except OSError as exc:
        raise BadArgs(f"cannot read {path}: {exc.strerror}") from None
    if gid.type != "authority" or not gid.is_ca or not gid.is_self_signed:
        raise BadArgs(f"{path} is not a root authority GID (a self-signed CA): {gid.urn}")
    return gid


def add_root(deployment: Deployment, path: Path) -> GID:
    """Trust a peer's root; takes effect for running services on their next call."""
    gid = read_root_gid(path)
    if gid.hrn == deployment.authority_hrn:
        raise BadArgs(f"{gid.hrn} is this deployment's own authority; it is trusted already")
    deployment.trusted_roots().write(gid, f"{gid.hrn}.gid")
    return gid


def remove_root(deployment: Deployment, hrn: str) -> int:
    """Stop trusting the roots named `hrn` (never our own)."""
    if hrn == deployment.authority_hrn:
        raise BadArgs(f"{hrn} is this deployment's own root; removing it would lock everyone out")
    removed = deployment.trusted_roots().remove(hrn)
    if not removed:
        raise SearchFailed(f"no trusted root named {hrn}; see `sfa admin DIR trust list`")
    return removed


def list_roots(deployment: Deployment) -> list[RootInfo]:
    return [RootInfo.of(gid) for gid in deployment.trusted_roots().roots]


@click.group("trust")
def trust_admin() -> None:
    """Trusted roots: our own and federation peers'."""


@trust_admin.command("add")
@click.argument("root_gid", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def trust_add(deployment: Deployment, root_gid: Path) -> None:
    """Trust the peer root authority in ROOT_GID."""
    try:
        gid = add_root(deployment, root_gid)
    except SfaError as error:
        fail(error)
        return
    click.echo(f"trusted {gid.hrn} ({gid.urn})")


@trust_admin.command("remove")
@click.argument("hrn")
@click.pass_obj
def trust_remove(deployment: Deployment, hrn: str) -> None:
    """Stop trusting the peer root HRN."""
    try:
        remove_root(deployment, hrn)
    except SfaError as error:
        fail(error)
        return
    click.echo(f"no longer trusted: {hrn}")


@trust_admin.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_obj
def trust_list(deployment: Deployment, as_json: bool) -> None:
    """The trusted roots."""
    roots = list_roots(deployment)
    if as_json:
        click.echo(json.dumps([root.__dict__ for root in roots], indent=2))
        return
    rows = [(r.hrn, r.urn, r.expires, r.fingerprint[:16]) for r in roots]
    click.echo(tabulate(rows, headers=["hrn", "urn", "expires", "sha256"]))
