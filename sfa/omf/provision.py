"""What the aggregate (the pubsub administrator) makes in the /OMF tree, and who may publish.

Prosody lets only the administrator create nodes and only owners and publishers publish, so
these grants are what keeps an RC of slice A out of slice B's nodes: an RC publishes only on
its own resource node; the slice's ECs publish on the slice's resource and group nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sfa.omf.tree import (
    ROOT,
    SYSTEM,
    experiment_node,
    group_node,
    rc_account,
    resource_node,
    slice_node,
    slice_nodes,
    system_node,
)


class PubsubAdmin(Protocol):
    async def create_node(self, node: str) -> None: ...

    async def delete_node(self, node: str) -> None: ...

    async def set_publishers(self, node: str, jids: Iterable[str]) -> None: ...

    async def list_nodes(self) -> list[str]: ...


async def create_system_tree(admin: PubsubAdmin, node_hrns: Iterable[str]) -> list[str]:
    """/OMF, /OMF/system and /OMF/system/<node> for the inventory; the nodes made."""
    made = [ROOT, SYSTEM, *(system_node(node) for node in node_hrns)]
    for node in made:
        await admin.create_node(node)
    return made


async def create_slice_tree(admin: PubsubAdmin, slice_hrn: str, node_hrns: list[str], *,
                            domain: str, ec_jids: Iterable[str] = ()) -> list[str]:
    """The slice's nodes; each RC (`rc_account(slice, node)`@`domain`) and every EC may
    publish on its resource node."""
    made = slice_nodes(slice_hrn, node_hrns)
    ecs = list(ec_jids)
    for node in made:
        await admin.create_node(node)
    for node_hrn in node_hrns:
        rc = f"{rc_account(slice_hrn, node_hrn)}@{domain}"
        await admin.set_publishers(resource_node(slice_hrn, node_hrn), [rc, *ecs])
    return made


async def remove_subtree(admin: PubsubAdmin, top: str) -> list[str]:
    """Delete `top` and every node below it (pubsub node names are flat, so each one is
    found and deleted); the nodes deleted."""
    doomed = [n for n in await admin.list_nodes() if n == top or n.startswith(top + "/")]
    await remove_nodes(admin, doomed)
    return doomed


async def remove_slice_tree(admin: PubsubAdmin, slice_hrn: str) -> list[str]:
    """Delete /OMF/<slice> with its resources, experiments and groups."""
    return await remove_subtree(admin, slice_node(slice_hrn))


async def remove_nodes(admin: PubsubAdmin, nodes: Iterable[str]) -> None:
    """Delete nodes, deepest first."""
    for node in sorted(nodes, key=lambda n: n.count("/"), reverse=True):
        await admin.delete_node(node)


async def create_experiment_groups(admin: PubsubAdmin, slice_hrn: str, experiment: str,
                                   groups: Iterable[str], ec_jids: Iterable[str]) -> list[str]:
    """/OMF/<slice>/<exp> and one node per group; the ECs publish on them."""
    ecs = list(ec_jids)
    made = [experiment_node(slice_hrn, experiment),
            *(group_node(slice_hrn, experiment, group) for group in groups)]
    for node in made:
        await admin.create_node(node)
        await admin.set_publishers(node, ecs)
    return made
