"""`sfa rspec`: summarise, dump and validate RSpec files."""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from tabulate import tabulate

from sfa.errors import SfaError
from sfa.rspecs.model import RSpec
from sfa.rspecs.reader import read_rspec
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


def summary(model: RSpec) -> str:
    """A short human summary of an RSpec."""
    lines = [
        f"type:       {model.type}",
        f"generated:  {model.generated.isoformat() if model.generated else '-'}",
        f"expires:    {model.expires.isoformat() if model.expires else '-'}",
        f"nodes:      {len(model.nodes)}",
        f"interfaces: {len(model.interfaces)}",
        f"links:      {len(model.links)}",
        f"extensions: {len(model.extensions)} top-level",
    ]
    per_am = Counter(node.component_manager_id or "(unbound)" for node in model.nodes)
    if per_am:
        table = tabulate(sorted(per_am.items()), headers=["component manager", "nodes"])
        lines += ["", table]
    return "\n".join(lines)


def rspec_to_dict(model: RSpec) -> dict[str, Any]:
    """The model as JSON-ready data (times in RFC 3339)."""
    result: dict[str, Any] = _jsonable(dataclasses.asdict(model))
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value
