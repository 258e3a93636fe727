"""`sfa admin DIR ...`: the operator's registry commands, safe while `sfa serve DIR` runs.

They write the same SQLite file and authority store the server reads on every call, so a
change takes effect without a restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from tabulate import tabulate

from sfa.aggregate.store import AggregateStore
from sfa.cli.errors import exit_on_refusal
from sfa.cli.trust_admin import trust_admin
from sfa.deploy.layout import Deployment
from sfa.deploy.peers import (
    Peer,
    add_peer,
    deployment_peers,
    peers_path,
    read_peers_file,
    remove_peer,
)
from sfa.errors import BadArgs
from sfa.registry.admin import RegistryAdmin
from sfa.registry.records import Record
from sfa.server.am_api import AGGREGATE_DB
from sfa.server.registry_api import registry_logic_config
from sfa.timeutil import parse_time
from sfa.trust.keys import save_private_key
from sfa.xrn import hrn_to_urn, validate_hrn

RECORD_TYPES = click.Choice(["authority", "user", "slice", "node"])


def open_admin(deployment: Deployment) -> RegistryAdmin:
    """The registry's operator API over the deployment's database and authorities."""
    return RegistryAdmin(
        deployment.registry_db,
        deployment.authority_store(),
        deployment.authority_hrn,
        config=registry_logic_config(deployment),
        revoke=deployment.trusted_roots().revoke,
    )


@contextmanager
def _registry(deployment: Deployment) -> Iterator[RegistryAdmin]:
    """The admin API; any SfaError ends the command with `CODE: message` and exit 1."""
    with exit_on_refusal():
        registry = open_admin(deployment)
        try:
            yield registry
        finally:
            registry.close()


@click.group("admin")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.pass_context
def admin(ctx: click.Context, directory: Path) -> None:
    """Operate the registry of the deployment in DIRECTORY (also while it is served)."""
    with exit_on_refusal():
        ctx.obj = Deployment.load(directory)


admin.add_command(trust_admin)


@admin.group("user")
def user() -> None:
    """Users."""


@user.command("add")
@click.argument("hrn")
@click.option("--email", default=None)
@click.option("--key", "key_file", type=click.Path(dir_okay=False, path_type=Path),
              help="the user's public key (PEM or ssh-rsa); without it a key is made")
@click.option("--pi-of", "pi_of", multiple=True, help="make the user PI of this authority")
@click.option("--out", "prefix", required=True, type=click.Path(path_type=Path),
              help="write PREFIX.gid (and PREFIX.pkey when a key was made)")
@click.pass_obj
def user_add(
    deployment: Deployment, *, hrn: str, email: str | None, key_file: Path | None,
    pi_of: tuple[str, ...], prefix: Path,
) -> None:
    """Register user HRN and write their GID."""
    with _registry(deployment) as registry:
        pubkey = _read_key(key_file) if key_file else None
        added = registry.admin_add_user(hrn, email=email, pubkey=pubkey, pi_of=pi_of)
        gid_file = prefix.with_name(prefix.name + ".gid")
        gid_file.write_text(added.record.gid or "")
        click.echo(f"registered user {added.record.hrn}; GID in {gid_file}")
        if added.private_key is not None:
            key_out = prefix.with_name(prefix.name + ".pkey")
            save_private_key(key_out, added.private_key)
            click.echo(f"private key in {key_out} (mode 0600; the registry keeps no copy)")


def _read_key(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadArgs(f"cannot read the public key {path}: {exc}") from None


@admin.group("authority")
def authority() -> None:
    """Sub-authorities."""


@authority.command("add")
@click.argument("hrn")
@click.option("--pi", "pis", multiple=True, help="a user HRN to make PI")
@click.pass_obj
def authority_add(deployment: Deployment, hrn: str, pis: tuple[str, ...]) -> None:
    """Register sub-authority HRN (its key goes into authorities/)."""
    with _registry(deployment) as registry:
        record = registry.admin_add_authority(hrn, pis=pis)
        click.echo(f"registered authority {record.hrn}")


@admin.group("slice")
def slice_() -> None:
    """Slices."""


@slice_.command("add")
@click.argument("hrn")
@click.option("--researcher", "researchers", multiple=True, required=True)
@click.option("--expires", default=None, help="RFC 3339 time (default: the configured lifetime)")
@click.pass_obj
def slice_add(
    deployment: Deployment, hrn: str, researchers: tuple[str, ...], expires: str | None
) -> None:
    """Register slice HRN with its researchers."""
    with _registry(deployment) as registry:
        when = parse_time(expires) if expires else None
        record = registry.admin_add_slice(hrn, researchers, expires=when)
        shown = record.to_wire()
        click.echo(f"registered slice {record.hrn}, expires {shown.get('expires')}")


@slice_.command("shutdown")
@click.argument("hrn")
@click.pass_obj
def slice_shutdown(deployment: Deployment, hrn: str) -> None:
    """Freeze slice HRN at this deployment's aggregate (as the AM API's Shutdown does)."""
    with _aggregate_store(deployment) as store:
        store.set_shutdown(_slice_urn(hrn), True)
    click.echo(f"slice {hrn} is shut down here: its slivers cannot be started or renewed")


@slice_.command("lift")
@click.argument("hrn")
@click.pass_obj
def slice_lift(deployment: Deployment, hrn: str) -> None:
    """Lift the shutdown of slice HRN at this deployment's aggregate."""
    with _aggregate_store(deployment) as store:
        urn = _slice_urn(hrn)
        if not store.is_shutdown(urn):
            raise BadArgs(f"slice {hrn} is not shut down here")
        store.set_shutdown(urn, False)
    click.echo(f"slice {hrn} may be used again")


def _slice_urn(hrn: str) -> str:
    validate_hrn(hrn)
    return hrn_to_urn(hrn, "slice")


@contextmanager
def _aggregate_store(deployment: Deployment) -> Iterator[AggregateStore]:
    """The aggregate's database (the running aggregate reads it on every call)."""
    with exit_on_refusal():
        store = AggregateStore(deployment.db_dir / AGGREGATE_DB)
        try:
            yield store
        finally:
            store.close()


@admin.command("list")
@click.argument("authority_hrn", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_records(deployment: Deployment, authority_hrn: str | None, as_json: bool) -> None:
    """Records under AUTHORITY_HRN (default: the root), recursively."""
    with _registry(deployment) as registry:
        records = registry.admin_list(authority_hrn)
        if as_json:
            click.echo(json.dumps([_wire(r) for r in records], indent=2, default=str))
            return
        rows = [(r.hrn, r.type, r.authority, _wire(r).get("last_updated", "")) for r in records]
        click.echo(tabulate(rows, headers=["hrn", "type", "authority", "last_updated"]))


@admin.command("show")
@click.argument("hrn")
@click.option("--type", "type_", type=RECORD_TYPES, default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(deployment: Deployment, hrn: str, type_: str | None, as_json: bool) -> None:
    """Every record named HRN, with all its fields."""
    with _registry(deployment) as registry:
        records = [_wire(r) for r in registry.admin_show(hrn, type_)]
        if as_json:
            click.echo(json.dumps(records, indent=2, default=str))
            return
        for wire in records:
            rows = [(k, _short(v)) for k, v in wire.items()]
            click.echo(tabulate(rows, tablefmt="plain"))
            click.echo()


@admin.command("remove")
@click.argument("hrn")
@click.option("--type", "type_", type=RECORD_TYPES, default=None)
@click.option("--force", is_flag=True, help="remove a slice even with live slivers")
@click.pass_obj
def remove(deployment: Deployment, hrn: str, type_: str | None, force: bool) -> None:
    """Remove the record named HRN."""
    with _registry(deployment) as registry:
        record = registry.admin_remove(hrn, type_, force=force)
        click.echo(f"removed {record.type} {record.hrn}")


@admin.group("peer")
def peer() -> None:
    """Federation peers: whose registry refers and whose aggregate the slice manager uses."""


@peer.command("add")
@click.argument("hrn")
@click.option("--registry", "registry_url", default="", help="the peer registry's https URL")
@click.option("--aggregate", "aggregate_url", default="", help="the peer aggregate's https URL")
@click.pass_obj
def peer_add(deployment: Deployment, hrn: str, registry_url: str, aggregate_url: str) -> None:
    """Peer with authority HRN (running services see it on their next call)."""
    with exit_on_refusal():
        added = add_peer(peers_path(deployment), Peer(hrn, registry_url, aggregate_url),
                         own_hrn=deployment.authority_hrn)
    click.echo(f"peer {added.hrn}: registry {added.registry or '-'}, "
               f"aggregate {added.aggregate or '-'}")
    if not any(root.hrn == hrn for root in deployment.trusted_roots().roots):
        click.echo(f"note: {hrn}'s root is not trusted yet; run `sfa admin "
                   f"{deployment.directory} trust add {hrn.upper()}_ROOT.gid`", err=True)


@peer.command("remove")
@click.argument("hrn")
@click.pass_obj
def peer_remove(deployment: Deployment, hrn: str) -> None:
    """Stop peering with HRN (its root stays trusted until `trust remove`)."""
    with exit_on_refusal():
        remove_peer(peers_path(deployment), hrn, deployment.config.peers)
    click.echo(f"no longer a peer: {hrn}")


@peer.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def peer_list(deployment: Deployment, as_json: bool) -> None:
    """The peers (sfa.toml [peers] and peers.toml)."""
    with exit_on_refusal():
        peers = deployment_peers(deployment)
        found = peers.all()
    rows = [{"hrn": p.hrn, "registry": p.registry, "aggregate": p.aggregate,
             "source": "sfa.toml" if peers.is_configured(p.hrn) and p.hrn not in
             _file_peers(deployment) else "peers.toml"} for p in found.values()]
    rows.sort(key=lambda row: row["hrn"])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(tabulate([tuple(r.values()) for r in rows],
                        headers=["hrn", "registry", "aggregate", "source"]))


def _file_peers(deployment: Deployment) -> set[str]:
    return set(read_peers_file(peers_path(deployment)))


def _wire(record: Record) -> dict[str, Any]:
    return record.to_wire(include_private=True)


def _short(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= 100 else text[:60] + "..."
