"""How the `sfa` operator commands end on a refusal: `CODE: message` on stderr, exit 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click

from sfa.errors import SfaError


def fail(error: SfaError) -> NoReturn:
    """Print an SfaError as `CODE: message` on stderr and exit 1."""
    click.echo(f"{error.code.name}: {error.message}", err=True)
    raise SystemExit(1)


@contextmanager
def exit_on_refusal() -> Iterator[None]:
    """Any SfaError raised inside ends the command through `fail`."""
    try:
        yield
    except SfaError as error:
        fail(error)
