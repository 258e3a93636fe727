"""`sfa init DIR` and `sfa serve DIR`: create a deployment, then run its services."""

from __future__ import annotations

from pathlib import Path

import click

from sfa.cli.errors import fail
from sfa.deploy.config import NODE_BACKENDS
from sfa.deploy.layout import init_deployment
from sfa.errors import SfaError
from sfa.server.app import serve_deployment


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--authority", "authority", required=True, help="HRN of the root authority, e.g. plc")
@click.option("--host", default="127.0.0.1", show_default=True, help="host the services serve on")
@click.option("--registry-port", default=12345, show_default=True, type=int)
@click.option("--am-port", default=12346, show_default=True, type=int)
@click.option("--sm-port", type=int, default=None,
              help="enable the slice manager on this port (12347 is usual; off when absent)")
@click.option("--nm-base-port", default=12400, show_default=True, type=int)
@click.option("--nodes", default=0, show_default=True, type=int, help="node managers to run")
@click.option("--nm-backend", type=click.Choice(NODE_BACKENDS), default="directory",
              show_default=True, help="sliver backend of the node managers: enforcing confines "
              "slivers with cgroups, a disk image and optionally a network namespace (root)")
@click.option("--xmpp", is_flag=True,
              help="configure Prosody (XMPP pubsub) in DIR/xmpp for OMF experiment control")
@click.option("--xmpp-port", default=0, show_default=True, type=int,
              help="Prosody's client port with --xmpp (0: a port free now)")
def init(
    directory: Path,
    *,
    authority: str,
    host: str,
    registry_port: int,
    am_port: int,
    sm_port: int | None,
    nm_base_port: int,
    nodes: int,
    nm_backend: str,
    xmpp: bool,
    xmpp_port: int,
) -> None:
    """Create a deployment in DIRECTORY (new or empty): keys, GIDs, config, databases."""
    try:
        deployment = init_deployment(
            directory, authority=authority, host=host, registry_port=registry_port,
            am_port=am_port, sm_port=sm_port, nm_base_port=nm_base_port, nodes=nodes,
            nm_backend=nm_backend,
            xmpp_port=xmpp_port if xmpp else None,
        )
    except SfaError as error:
        fail(error)
        return
    click.echo(f"created deployment {deployment.directory} for authority {authority}")
    click.echo(f"root GID: {deployment.trusted_roots_dir / (authority + '.gid')}")
    if deployment.config.xmpp.enabled:
        xmpp_conf = deployment.config.xmpp
        click.echo(f"xmpp: Prosody configured in {deployment.xmpp_dir} "
                   f"({xmpp_conf.host}:{xmpp_conf.port}, pubsub {xmpp_conf.pubsub})")
    click.echo(f"run it with: sfa serve {deployment.directory}")


@click.command("serve")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def serve(directory: Path) -> None:
    """Run every enabled service of DIRECTORY until SIGTERM or SIGINT."""
    try:
        serve_deployment(directory)
    except SfaError as error:
        fail(error)
