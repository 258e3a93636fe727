"""`sfa rc CONFIG`: the Resource Controller program a node manager runs in an OMF sliver.

It logs in with the sliver's XMPP account, follows its resource node and serves commands
until SIGTERM; a lost connection ends it with status 1 so that its supervisor restarts it.
Refusals are logged on stderr (`refused a message on NODE: why`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from sfa.errors import SfaError
from sfa.omf.config import RcConfig, load_rc_config
from sfa.omf.messages import SenderBook
from sfa.omf.rc import ResourceController
from sfa.omf.xmpp import PubsubClient
from sfa.trust.keys import load_private_key
from sfa.trust.roots import TrustedRoots
from sfa.trust.verify import TrustPolicy
from sfa.xrn import hrn_to_urn


async def serve_rc(config: RcConfig, workdir: Path) -> int:
    """Run one RC until SIGTERM/SIGINT (0) or a lost connection (1)."""
    senders = SenderBook(TrustPolicy(TrustedRoots(config.trusted_roots)), config.slice_hrn,
                         hrn_to_urn(config.slice_hrn, "slice"))
    key = load_private_key(config.key_file.read_bytes())
    client = PubsubClient(config.login)
    rc = ResourceController(config.slice_hrn, config.node_hrn, senders=senders, key=key,
                            pubsub=client, workdir=workdir)
    client.on_item = rc.on_item
    stopped: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def finish(code: int) -> None:
        if not stopped.done():
            stopped.set_result(code)

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, finish, 0)
    loop.add_signal_handler(signal.SIGINT, finish, 0)
    await client.connect()
    client.client.add_event_handler("disconnected", lambda _e: finish(1))
    await rc.start()
    print(f"ready rc {rc.topic}", flush=True)
    code = await stopped
    await rc.stop()
    await client.close()
    return code


@click.command("rc")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where applications run (default: the directory of CONFIG)")
def rc(config: Path, workdir: Path | None) -> None:
    """Run the OMF Resource Controller described by CONFIG (rc.toml)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("slixmpp").setLevel(logging.WARNING)
    try:
        loaded = load_rc_config(config)
        code = asyncio.run(serve_rc(loaded, workdir or config.parent))
    except SfaError as error:
        click.echo(f"sfa rc: {error}", err=True)
        sys.exit(1)
    sys.exit(code)
