"""sfi's OMF commands: `sfi omf enable SLICE` and `sfi exp run ED` (docs/omf.md)."""

from __future__ import annotations

from pathlib import Path

import click

from sfa.client import experiment as runner
from sfa.client.aggregate import select
from sfa.client.cli import CliState, main, sfi_command, slice_hrn
from sfa.client.output import Output
from sfa.errors import BadArgs
from sfa.omf.experiment import load_experiment


@main.group("omf")
def omf() -> None:
    """OMF experiment control of a slice."""


@sfi_command(omf, "enable")
@click.option("-a", "--aggregate", "nicks", multiple=True, metavar="NICK")
@click.argument("slice_name", metavar="SLICE")
def enable(state: CliState, out: Output, *, nicks: tuple[str, ...], slice_name: str) -> None:
    """Turn OMF control on for SLICE's slivers (its /OMF tree and RC accounts)."""
    runner.enable_omf(state.session(), out, nicks, slice_hrn(slice_name))


@main.group("exp")
def exp() -> None:
    """Experiments run through OMF resource controllers."""


@sfi_command(exp, "run")
@click.option("-a", "--aggregate", "nick", metavar="NICK", help="The aggregate (default: the "
              "only one configured).")
@click.option("--out", "outdir", type=click.Path(file_okay=False, path_type=Path),
              help="Save events, outputs and exit codes under OUT/<experiment id>/.")
@click.argument("description", metavar="ED", type=click.Path(exists=True, dir_okay=False,
                                                             path_type=Path))
def run(state: CliState, out: Output, *, nick: str | None, outdir: Path | None,
        description: Path) -> None:
    """Run the experiment description ED (TOML) on its slice's RCs."""
    experiment = load_experiment(description)
    session = state.session()
    clients = select(session, [nick] if nick else [])
    if len(clients) != 1:
        raise BadArgs("name the aggregate with -a NICK (several are configured)")
    result = runner.run_experiment(session, out, clients[0], experiment, outdir)
    out.put("experiment", result.experiment_id)
    out.put("results", result.results())
    out.put("events", result.events)
    for node, apps in sorted(result.results().items()):
        for app, outcome in apps.items():
            code = outcome["exit_code"]
            out.result(f"{node} {app}", "" if code == 0 else f"exit code {code}",
                       "" if code == 0 else "APP_FAILED")
