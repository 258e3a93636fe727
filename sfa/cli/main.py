"""The `sfa` operator command. Each area registers its own click group here."""

from __future__ import annotations

import importlib

import click

from sfa import __version__

# (module, attribute) of each sub-group; imported lazily so one broken area cannot hide the rest.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "trust": ("sfa.cli.trust", "trust"),
    "rspec": ("sfa.cli.rspec", "rspec"),
    "init": ("sfa.cli.deploy", "init"),
    "serve": ("sfa.cli.deploy", "serve"),
    "admin": ("sfa.cli.admin", "admin"),
    "nodemanager": ("sfa.cli.nodemanager", "nodemanager"),
    "rc": ("sfa.omf.rc_program", "rc"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SUBCOMMANDS:
            module, attr = SUBCOMMANDS[cmd_name]
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup)
@click.version_option(version=__version__, package_name="sfa")
def main() -> None:
    """Operate an SFA authority: trust, registry, aggregate and node managers."""


if __name__ == "__main__":
    main()
