"""The `nodemanager` driver's factory: the node-manager driver over the Twisted transport.

Registered as `nodemanager` in the `sfa.drivers` group; `sfa init` writes it into sfa.toml.
"""

from __future__ import annotations

from sfa.aggregate.driver import DriverContext
from sfa.aggregate.nm_book import NodeManagerBook
from sfa.aggregate.nm_driver import NodeManagerDriver
from sfa.server.nm_transport import TwistedNodeClient


def node_manager_driver(context: DriverContext) -> NodeManagerDriver:
    """Tickets signed with the aggregate's identity, redeemed at the node managers the
    inventory lists, over TLS on the running reactor."""
    from twisted.internet import reactor  # noqa: PLC0415 - the reactor the server installed

    book = NodeManagerBook(context.store.database)
    client = TwistedNodeClient(
        reactor, gid=context.gid, key=context.key, roots=context.trusted_roots,
        node_gids=book.node_gid, parallelism=context.parallelism,
        timeout=context.timeout_seconds)
    return NodeManagerDriver(context.store, book, client, context.gid, context.key)
