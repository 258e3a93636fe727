"""`sfi`, the experimenter's command-line client: the click group, its global options, the
config and registry commands, and `sfi rspec`. AM and slice-wide commands: cli_am.py."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click

from sfa.client import registry
from sfa.client.config import (
    ClientConfig,
    config_dir,
    load_config,
    save_config,
    with_aggregate,
    without_aggregate,
)
from sfa.client.output import Output
from sfa.client.session import Session, session_paths
from sfa.errors import BadArgs, GeneralError, SfaError
from sfa.rpc.transport import CallSettings
from sfa.timeutil import parse_time
from sfa.trust.gid import GID
from sfa.trust.keys import generate_private_key, public_key_to_openssh, save_private_key
from sfa.trust.roots import TrustedRoots
from sfa.xrn import Xrn

RECORD_TYPES = click.Choice(["user", "slice", "authority", "node"])


@dataclass
class CliState:
    """The global options, shared by every command of one run."""

    directory: Path = field(default_factory=lambda: config_dir(None))
    settings: CallSettings = field(default_factory=CallSettings)
    as_json: bool = False

    def config(self) -> ClientConfig:
        return load_config(self.directory)

    def session(self) -> Session:
        return Session(self.config(), self.settings)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(CliState).as_json = True


json_option = click.option("--json", "as_json", is_flag=True, expose_value=False,
                           callback=_set_json, is_eager=True,
                           help="Print one JSON document instead of text.")


def sfi_command(group: click.Group, name: str | None = None) -> Callable[..., Any]:
    """Register a command whose body is `fn(state, out, **params)`: it gets --json, errors
    become `CODE: message` (never a traceback) and the exit code is 1 when anything failed."""

    def decorate(fn: Callable[..., None]) -> click.Command:
        @functools.wraps(fn)
        def run(**params: Any) -> None:
            ctx = click.get_current_context()
            state = ctx.ensure_object(CliState)
            out = Output(as_json=state.as_json)
            try:
                fn(state, out, **params)
            except SfaError as exc:
                out.error(exc)
            except OSError as exc:
                out.error(BadArgs(f"{exc.filename or ''}: {exc.strerror or exc}"))
            except Exception as exc:  # a bug in sfi: say so in one line (SFI_DEBUG=1 raises)
                if os.environ.get("SFI_DEBUG"):
                    raise
                out.error(GeneralError(f"internal error in sfi ({type(exc).__name__}: {exc}); "
                                       "rerun with SFI_DEBUG=1 for details"))
            ctx.exit(out.finish())

        return group.command(name or fn.__name__.replace("_", "-"))(json_option(run))

    return decorate


def slice_hrn(name: str) -> str:
    """A slice given as HRN or URN, as HRN."""
    return Xrn.parse(name, "slice").hrn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dir", "-d", "directory", metavar="DIR",
              help="Config directory (default $SFI_DIR or ~/.sfi).")
@click.option("-p", "--parallel", default=16, show_default=True, type=click.IntRange(1, 512),
              help="Calls in flight at once.")
@click.option("-t", "--timeout", default=60.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds per call.")
@json_option
@click.pass_context
def main(ctx: click.Context, directory: str | None, parallel: int, timeout: float) -> None:
    """sfi: the experimenter's client for SFA registries and aggregates."""
    state = ctx.ensure_object(CliState)
    state.directory = config_dir(directory)
    state.settings = CallSettings(timeout=timeout, parallel=parallel)


# --- config ---------------------------------------------------------------------------------


@sfi_command(main, "config")
@click.option("--registry", help="Registry URL, https://host:port/")
@click.option("--user", help="Your HRN, e.g. plc.princeton.alice")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path),
              help="Your private key (PEM).")
@click.option("--new-key", is_flag=True,
              help="Create a new private key at --key (or DIR/user.pkey).")
@click.option("--trusted-root", "roots", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Trust this root GID (copied into the config directory).")
@click.option("--aggregate", "aggregates", multiple=True, metavar="NICK=URL",
              help="An AM API v3 aggregate.")
@click.option("--aggregate-v2", "aggregates_v2", multiple=True, metavar="NICK=URL",
              help="An AM API v2 aggregate.")
@click.option("--remove-aggregate", "removed", multiple=True, metavar="NICK")
@click.option("--slicemgr", help="A slice manager URL (used as aggregate `sm`).")
def config_command(state: CliState, out: Output, *, registry: str | None, user: str | None,
                   key: Path | None, new_key: bool, roots: tuple[Path, ...],
                   aggregates: tuple[str, ...], aggregates_v2: tuple[str, ...],
                   removed: tuple[str, ...], slicemgr: str | None) -> None:
    """Write DIR/sfi.toml (only the options given change); show the configuration."""
    config = state.config()
    given = (("registry", registry), ("user", user), ("slicemgr", slicemgr))
    changes: dict[str, Any] = {name: value for name, value in given if value is not None}
    if user:
        Xrn.parse(user, "user")
    if new_key:
        key = key or config.directory / "user.pkey"
        if key.exists():
            raise BadArgs(f"{key} exists; refusing to overwrite a private key")
        config.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        made = generate_private_key()
        save_private_key(key, made)
        public = key.with_suffix(".pub")
        public.write_text(public_key_to_openssh(made) + "\n", encoding="utf-8")
        out.put("public_key", public_key_to_openssh(made))
        out.echo(f"new key {key}; give your PI the public key in {public}")
    if key is not None:
        changes["key"] = str(key.expanduser().resolve())
    config = replace(config, **changes)
    for spec in aggregates:
        config = with_aggregate(config, spec, 3)
    for spec in aggregates_v2:
        config = with_aggregate(config, spec, 2)
    for nick in removed:
        config = without_aggregate(config, nick)
    if changes or aggregates or aggregates_v2 or removed or roots:
        save_config(config)
    for root in roots:
        gid = GID.from_pem(root.read_bytes())
        TrustedRoots(config.trusted_roots_dir).write(gid, root.name)
    _show_config(out, config)


def _show_config(out: Output, config: ClientConfig) -> None:
    rows = [("registry", config.registry), ("user", config.user), ("key", str(config.key_path)),
            ("slicemgr", config.slicemgr)]
    rows += [(f"aggregate {nick}", f"{e.url} (v{e.api_version})")
             for nick, e in sorted(config.aggregates.items())]
    roots = TrustedRoots(config.trusted_roots_dir).roots
    rows += [("trusted root", root.hrn) for root in roots]
    rows += [(f"{name} path", str(path)) for name, path in session_paths(config).items()]
    out.put("config", {"registry": config.registry, "user": config.user,
                       "key": str(config.key_path), "slicemgr": config.slicemgr,
                       "aggregates": {n: {"url": e.url, "api_version": e.api_version}
                                      for n, e in config.aggregates.items()},
                       "trusted_roots": [root.hrn for root in roots],
                       "directory": str(config.directory)})
    out.table(rows, ("setting", "value"))


# --- registry -------------------------------------------------------------------------------


def _record_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("type", type=RECORD_TYPES),
        click.argument("hrn"),
        click.option("--email"),
        click.option("--key", "keys", multiple=True,
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="A public key file (OpenSSH or PEM); a user's first key is its GID's."),
        click.option("--researcher", "researchers", multiple=True, help="A slice's researcher."),
        click.option("--pi", "pis", multiple=True, help="An authority's PI."),
        click.option("--expires", help="A slice's expiry: RFC 3339, a date, or +30d, +2w, +1m."),
        click.option("--description"), click.option("--url"), click.option("--name"),
        click.option("--hostname"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _fields(params: dict[str, Any]) -> registry.RecordFields:

    expires = params.pop("expires")
    keys = registry.read_public_keys(list(params.pop("keys")))
    return registry.RecordFields(
        keys=keys, expires=parse_time(expires) if expires else None,
        researchers=list(params.pop("researchers")), pis=list(params.pop("pis")), **params)


@sfi_command(main, "list")
@click.argument("authority")
@click.option("-r", "--recursive", is_flag=True, help="Everything below, not only children.")
def list_command(state: CliState, out: Output, *, authority: str, recursive: bool) -> None:
    """List the records under AUTHORITY."""
    registry.list_records(state.session(), out, authority, recursive)


@sfi_command(main)
@click.argument("hrn")
@click.option("--type", "type_", type=RECORD_TYPES, help="Only records of this type.")
def show(state: CliState, out: Output, *, hrn: str, type_: str | None) -> None:
    """Show the record(s) named HRN (following referrals to peer registries)."""
    registry.show(state.session(), out, hrn, type_)


@sfi_command(main)
@_record_options
def register(state: CliState, out: Output, **params: Any) -> None:
    """Register a record (needs a PI's authority credential over its parent)."""
    registry.register(state.session(), out, _fields(params))


@sfi_command(main)
@_record_options
def update(state: CliState, out: Output, **params: Any) -> None:
    """Change a record's fields (a slice's researchers or expiry, your keys, ...)."""
    registry.update(state.session(), out, _fields(params))


@sfi_command(main)
@click.argument("type", type=RECORD_TYPES)
@click.argument("hrn")
@click.option("--force", is_flag=True, help="Remove a slice even if it has slivers.")
def remove(state: CliState, out: Output, *, type: str, hrn: str, force: bool) -> None:
    """Remove a record."""
    registry.remove(state.session(), out, hrn, type, force)


@sfi_command(main)
@click.argument("hrn", required=False)
@click.option("--type", "type_", type=RECORD_TYPES, default="user", show_default=True)
@click.option("-o", "--out", "outfile", type=click.Path(dir_okay=False, path_type=Path))
def gid(state: CliState, out: Output, *, hrn: str | None, type_: str,
        outfile: Path | None) -> None:
    """Print (or write) your GID, or the GID of the record HRN."""
    registry.gid(state.session(), out, hrn, type_, outfile)


@sfi_command(main)
@click.option("--slice", "slice_name", help="Delegate your credential over this slice.")
@click.option("--user", "user_cred", is_flag=True, help="Delegate your user credential.")
@click.option("--to", "to", required=True, help="A GID file, or the HRN of a user or tool.")
@click.option("-o", "--out", "outfile", type=click.Path(dir_okay=False, path_type=Path))
def delegate(state: CliState, out: Output, *, slice_name: str | None, user_cred: bool, to: str,
             outfile: Path | None) -> None:
    """Delegate a slice (or your user) credential to another principal; write the file."""
    if bool(slice_name) == user_cred:
        raise BadArgs("give exactly one of --slice SLICE and --user")
    session = state.session()
    target = (slice_hrn(slice_name), "slice") if slice_name else (session.config.user, "user")
    registry.delegate(session, out, target_hrn=target[0], target_type=target[1],
                      to=registry.resolve_gid(session, to), outfile=outfile)


@sfi_command(main)
@click.option("--save", is_flag=True, help="Trust them too (write them to the trusted roots).")
def trusted(state: CliState, out: Output, *, save: bool) -> None:
    """The roots your registry trusts (with --save, trust them too)."""
    registry.trusted(state.session(), out, save)


# --- rspec ----------------------------------------------------------------------------------


@main.group()
def rspec() -> None:
    """Make and read RSpecs."""


@sfi_command(rspec, "request")
@click.option("--nodes", "count", type=int, help="How many available nodes to ask for.")
@click.option("--component-id", "component_ids", multiple=True,
              help="A node to ask for (URN or name); repeatable.")
@click.option("-a", "--aggregate", "nicks", multiple=True, help="Aggregate nick(s).")
@click.option("--init-script", "init_script",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A script each sliver runs when it starts.")
@click.option("-o", "--out", "outfile", type=click.Path(dir_okay=False, path_type=Path))
def rspec_request(state: CliState, out: Output, *, count: int | None,
                  component_ids: tuple[str, ...], nicks: tuple[str, ...],
                  init_script: Path | None, outfile: Path | None) -> None:
    """Write a request RSpec for N available nodes (or the named ones) from the ads."""
    from sfa.client.aggregate import on_each, select  # noqa: PLC0415
    from sfa.client.rspec_tools import request_from_ads  # noqa: PLC0415

    session = state.session()
    done = on_each(session, out, select(session, nicks), lambda c: c.list_resources(True))
    if out.failed:
        return
    script = init_script.read_text(encoding="utf-8") if init_script else None
    text = request_from_ads({c.nick: ad for c, ad in done}, count=count,
                            component_ids=component_ids, init_script=script)
    registry.write_or_print(out, text, outfile, "rspec")


@sfi_command(rspec, "show")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rspec_show(state: CliState, out: Output, *, file: Path) -> None:
    """Summarise an RSpec file: its type and nodes per aggregate."""
    from sfa.rspecs.reader import read_rspec  # noqa: PLC0415
    from sfa.rspecs.summary import rspec_to_dict, summary  # noqa: PLC0415

    model = read_rspec(file.read_bytes())
    out.put("rspec", rspec_to_dict(model))
    out.echo(summary(model))


def _register_am_commands() -> None:
    from sfa.client import cli_am, cli_exp  # noqa: PLC0415, F401 - register on `main`


_register_am_commands()
