"""sfi's aggregate and slice-wide commands (registered on the `sfi` group of cli.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sfa.client import aggregate, registry, slicewide
from sfa.client.cli import CliState, main, sfi_command, slice_hrn
from sfa.client.output import Output
from sfa.timeutil import parse_time

RSPEC_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def am_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """-a NICK (repeatable: several aggregates in parallel) and -V 2|3."""
    fn = click.option("-V", "--api-version", "api", type=click.Choice(["2", "3"]),
                      help="AM API version to speak (default: the aggregate's).")(fn)
    return click.option("-a", "--aggregate", "nicks", multiple=True, metavar="NICK",
                        help="Aggregate nick (repeatable; default: all configured).")(fn)


def _api(api: str | None) -> int | None:
    return int(api) if api else None


@sfi_command(main)
@click.option("-a", "--aggregate", "nicks", multiple=True, metavar="NICK",
              help="Ask these aggregates instead of the registry.")
@click.option("-V", "--api-version", "api", type=click.Choice(["2", "3"]))
def version(state: CliState, out: Output, *, nicks: tuple[str, ...], api: str | None) -> None:
    """GetVersion of the registry, or of the aggregates named with -a."""
    session = state.session()
    if nicks:
        aggregate.version(session, out, nicks, _api(api))
    else:
        registry.version(session, out)


@sfi_command(main)
@am_options
@click.option("--available", is_flag=True, help="Only nodes free now.")
@click.option("-o", "--out", "outfile", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the advertisement RSpec here.")
def resources(state: CliState, out: Output, *, nicks: tuple[str, ...], api: str | None,
              available: bool, outfile: Path | None) -> None:
    """List the aggregates' resources (ListResources)."""
    aggregate.resources(state.session(), out, nicks, _api(api), available=available,
                        outfile=outfile)


@sfi_command(main)
@am_options
@click.argument("slice_name", metavar="SLICE")
def describe(state: CliState, out: Output, *, nicks: tuple[str, ...], api: str | None,
             slice_name: str) -> None:
    """The slice's slivers and their state (Describe)."""
    aggregate.describe(state.session(), out, nicks, _api(api), slice_hrn(slice_name))


@sfi_command(main)
@am_options
@click.argument("slice_name", metavar="SLICE")
@click.argument("rspec_file", metavar="RSPEC", type=RSPEC_FILE)
def allocate(state: CliState, out: Output, *, nicks: tuple[str, ...], api: str | None,
             slice_name: str, rspec_file: Path) -> None:
    """Allocate the request RSPEC (split by component_manager_id over the aggregates)."""
    session = state.session()
    clients = aggregate.select(session, nicks, _api(api))
    parts = slicewide.split_request(clients, rspec_file.read_text(encoding="utf-8"))
    aggregate.allocate(session, out, clients, slice_hrn(slice_name), parts)


def _sliver_command(name: str, help_text: str,
                    call: Callable[[Any, str, list[str]], Any]) -> None:
    @sfi_command(main, name)
    @am_options
    @click.argument("slice_name", metavar="SLICE")
    def command(state: CliState, out: Output, *, nicks: tuple[str, ...], api: str | None,
                slice_name: str) -> None:
        session = state.session()
        hrn = slice_hrn(slice_name)
        keys = slicewide.user_keys(session, slicewide.SliceStates(
            session.config.slices_dir).load(hrn)) if name == "provision" else []
        aggregate.sliver_command(session, out, nicks, _api(api), hrn=hrn,
                                 call=lambda client: call(client, hrn, keys))

    command.help = help_text


_sliver_command("provision", "Provision the slice's allocated slivers (with your keys).",
                lambda c, hrn, keys: c.provision(hrn, slicewide.geni_users(c.session, keys)))


def _action_call(action: str) -> Callable[[Any, str, list[str]], Any]:
    return lambda client, hrn, _keys: client.perform(hrn, action)


for _verb, _action in aggregate.ACTIONS.items():
    _sliver_command(_verb, f"{_verb.capitalize()} the slice's slivers ({_action}).",
                    _action_call(_action))
_sliver_command("delete", "Delete the slice's slivers at the aggregates.",
                lambda c, hrn, _keys: c.delete(hrn))


@sfi_command(main)
@am_options
@click.argument("slice_name", metavar="SLICE")
def status(state: CliState, out: Output, *, nicks: tuple[str, ...], api: str | None,
           slice_name: str) -> None:
    """Each sliver's allocation and operational state."""
    aggregate.status(state.session(), out, nicks, _api(api), slice_hrn(slice_name))


@sfi_command(main)
@am_options
@click.argument("slice_name", metavar="SLICE")
@click.argument("when", metavar="TIME")
def renew(state: CliState, out: Output, *, nicks: tuple[str, ...], api: str | None,
          slice_name: str, when: str) -> None:
    """Renew the slivers until TIME (RFC 3339, a date, epoch seconds, +2d, +5h, +1w)."""
    hrn, until = slice_hrn(slice_name), parse_time(when)
    aggregate.sliver_command(state.session(), out, nicks, _api(api), hrn=hrn,
                             call=lambda c: c.renew(hrn, until))


@sfi_command(main)
@am_options
@click.argument("slice_name", metavar="SLICE")
def shutdown(state: CliState, out: Output, *, nicks: tuple[str, ...], api: str | None,
             slice_name: str) -> None:
    """Emergency stop: the aggregates stop the slice and refuse to restart it."""
    aggregate.shutdown(state.session(), out, nicks, _api(api), slice_hrn(slice_name))


# --- slice-wide -----------------------------------------------------------------------------

nick_option = click.option("-a", "--aggregate", "nicks", multiple=True, metavar="NICK",
                           help="Only these aggregates (default: those holding the slice).")


@sfi_command(main)
@nick_option
@click.argument("slice_name", metavar="SLICE")
@click.argument("rspec_file", metavar="RSPEC", type=RSPEC_FILE)
@click.option("--omf", is_flag=True, help="Then enable OMF experiment control (sfi omf enable).")
def createslice(state: CliState, out: Output, *, nicks: tuple[str, ...], slice_name: str,
                rspec_file: Path, omf: bool) -> None:
    """Allocate, provision and start RSPEC on every aggregate it names."""
    session = state.session()
    slicewide.create_slice(session, out, nicks, slice_hrn(slice_name),
                           rspec_file.read_text(encoding="utf-8"))
    if omf and not out.failed:
        from sfa.client.experiment import enable_omf  # noqa: PLC0415 - XMPP only when asked

        enable_omf(session, out, nicks, slice_hrn(slice_name))


@sfi_command(main)
@nick_option
@click.argument("slice_name", metavar="SLICE")
def deleteslice(state: CliState, out: Output, *, nicks: tuple[str, ...],
                slice_name: str) -> None:
    """Delete every sliver of the slice, everywhere."""
    slicewide.delete_slice(state.session(), out, nicks, slice_hrn(slice_name))


def _key_command(name: str, help_text: str, mode: str) -> None:
    def body(state: CliState, out: Output, *, nicks: tuple[str, ...], slice_name: str,
             keyfile: Path | None = None) -> None:
        files = [keyfile] if keyfile is not None else []
        slicewide.change_keys(state.session(), out, nicks, slice_hrn(slice_name),
                              add=files if mode == "add" else [],
                              remove=files if mode == "del" else [], nuke=mode == "nuke")

    body.__doc__ = help_text
    decorated: Any = body
    if mode != "nuke":
        decorated = click.argument("keyfile", metavar="KEYFILE", type=RSPEC_FILE)(decorated)
    decorated = click.argument("slice_name", metavar="SLICE")(decorated)
    sfi_command(main, name)(nick_option(decorated))


_key_command("addkey", "Add the public key in KEYFILE to every sliver of the slice.", "add")
_key_command("delkey", "Remove the public key in KEYFILE from every sliver of the slice.", "del")
_key_command("nukekeys", "Remove every key from every sliver of the slice.", "nuke")


@sfi_command(main)
@nick_option
@click.argument("slice_name", metavar="SLICE")
@click.argument("when", metavar="TIME")
def renewslice(state: CliState, out: Output, *, nicks: tuple[str, ...], slice_name: str,
               when: str) -> None:
    """Extend the slice (registry) and all its slivers until TIME (RFC 3339, a date, +2d, +1w)."""
    slicewide.renew_slice(state.session(), out, nicks, slice_hrn(slice_name),
                          parse_time(when))


@sfi_command(main)
@nick_option
@click.argument("slice_name", metavar="SLICE")
def nodelist(state: CliState, out: Output, *, nicks: tuple[str, ...], slice_name: str) -> None:
    """The nodes of the slice and how to log in."""
    slicewide.node_list(state.session(), out, nicks, slice_hrn(slice_name))


@sfi_command(main)
@nick_option
@click.argument("slice_name", metavar="SLICE")
def expirations(state: CliState, out: Output, *, nicks: tuple[str, ...],
                slice_name: str) -> None:
    """When the slice and each of its slivers expire."""
    slicewide.expirations(state.session(), out, nicks, slice_hrn(slice_name))


@sfi_command(main)
@click.argument("slice_name", metavar="SLICE")
@click.argument("nodes", nargs=-1, metavar="[NODES]...")
def redeem(state: CliState, out: Output, *, slice_name: str, nodes: tuple[str, ...]) -> None:
    """Redeem the slice's saved tickets again at the nodes that are not ready (or NODES)."""
    slicewide.redeem(state.session(), out, slice_hrn(slice_name), nodes)


@sfi_command(main)
def clean(state: CliState, out: Output) -> None:
    """Forget local state of expired slices and expired cached credentials."""
    slicewide.clean(state.session(), out)
