"""`sfa rspec`: summarise, dump and validate RSpec files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from sfa.errors import SfaError
from sfa.rspecs.model import RSpec
from sfa.rspecs.reader import read_rspec
from sfa.rspecs.summary import rspec_to_dict, summary
from sfa.rspecs.validate import validate

# An operator reads files it chose; the network limits (50 MB, 20,000 nodes) do not apply.
_FILE_MAX_BYTES = 1024 * 1024 * 1024
_FILE_MAX_NODES = 10_000_000


@click.group()
def rspec() -> None:
    """Read, summarise and validate RSpec documents."""


@rspec.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the whole model as JSON.")
def show(file: Path, as_json: bool) -> None:
    """Summarise FILE: type, nodes, links and nodes per aggregate."""
    model = _read(file)
    if as_json:
        click.echo(json.dumps(rspec_to_dict(model), indent=2, sort_keys=False))
        return
    click.echo(summary(model))


@rspec.command(name="validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--schemas", type=click.Path(exists=True, path_type=Path),
              default=lambda: os.environ.get("SFA_SCHEMAS_DIR"),
              help="Schema directory holding catalog.xml, or the catalog file "
                   "(default: $SFA_SCHEMAS_DIR).")
def validate_command(file: Path, schemas: Path | None) -> None:
    """Check FILE against the GENI schemas; print every error with its line."""
    if schemas is None:
        raise click.UsageError("give --schemas DIR (or set SFA_SCHEMAS_DIR)")
    try:
        errors = validate(file.read_bytes(), schemas)
    except SfaError as exc:
        raise click.ClickException(exc.message) from None
    for error in errors:
        click.echo(f"{file}:{error.line}: {error.message}")
    if errors:
        raise click.ClickException(f"{len(errors)} schema error(s)")
    click.echo(f"{file}: valid")


def _read(file: Path) -> RSpec:
    try:
        return read_rspec(file.read_bytes(), max_bytes=_FILE_MAX_BYTES, max_nodes=_FILE_MAX_NODES)
    except SfaError as exc:
        raise click.ClickException(f"{file}: {exc.message} ({exc.code_name})") from None

