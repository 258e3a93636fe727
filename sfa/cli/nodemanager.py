"""`sfa nodemanager NODEDIR`: run one node manager alone, as a real node runs it.

The Twisted edge is imported inside the command, so that importing this module (as the `sfa`
group does to list commands) does not pull the server into the library layer.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Any

import click

from sfa.errors import SfaError
from sfa.nodemanager.nodedir import load_node_config, open_node


def _default_listen(hostname: str) -> str:
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return "0.0.0.0"  # noqa: S104 - a named node answers on all its interfaces
    return hostname


@click.command("nodemanager")
@click.argument("nodedir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--listen", default=None, help="Address to listen on (default: node.toml hostname "
              "when it is an IP address, else all interfaces).")
@click.option("--port", type=int, default=None, help="TLS port (default: node.toml port; 0 = any).")
@click.option("--local-port", type=int, default=None,
              help="Loopback port of the local API (default: node.toml local_port; 0 = any).")
def nodemanager(nodedir: Path, listen: str | None, port: int | None,
                local_port: int | None) -> None:
    """Run the node manager of NODEDIR (node.toml, node.gid, node.pkey, trusted_roots/)."""
    from twisted.internet import reactor as the_reactor  # noqa: PLC0415 - the edge

    from sfa.deploy.config import LimitsConfig  # noqa: PLC0415
    from sfa.server.nm_api import start_node_manager  # noqa: PLC0415

    reactor: Any = the_reactor
    try:
        config = load_node_config(nodedir)
        nm = open_node(nodedir, config=config)
        report = nm.recover()
    except SfaError as exc:
        raise click.ClickException(str(exc)) from None
    if local_port is None:
        local_port = config.local_port or None  # 0 in node.toml: no local API
    service = start_node_manager(
        reactor, nm, host=listen or _default_listen(config.hostname),
        port=config.port if port is None else port,
        local_port=local_port,
        limits=LimitsConfig(),
    )
    lines = [f"node manager {nm.urn} at {service.url}"]
    if service.local_url:
        lines.append(f"local API at {service.local_url}")
    lines.append(
        f"recovered: {len(report['restarted'])} restarted, {len(report['reaped'])} reaped, "
        f"{len(report['created'])} finished"
    )
    lines.append(nm.enforcement.summary())  # once: which knobs are enforced, which counted
    reactor.addSystemEventTrigger("before", "shutdown", service.stop)
    # Announce only once the reactor runs, so its signal handlers are installed: a SIGTERM
    # sent as soon as these lines appear shuts down cleanly.
    reactor.callWhenRunning(_announce, lines)
    reactor.run()


def _announce(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)
    sys.stdout.flush()
