"""The manifest RSpec of a slice's slivers: what was given, and how to log in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from xml.sax.saxutils import escape, quoteattr

from sfa.logins import sliver_login
from sfa.rspecs import model as rs
from sfa.rspecs.builder import manifest as build_manifest
from sfa.safexml import parse_xml

from .inventory import Node
from .slivers import Sliver

USER_EXT_NS = "http://www.protogeni.net/resources/rspec/ext/user/1"


def manifest(slivers: Sequence[Sliver], nodes: Mapping[str, Node], *, am_urn: str
             ) -> rs.RSpec:
    """The manifest of `slivers` (possibly none: an empty manifest)."""
    return build_manifest(_manifest_node(s, nodes.get(s.node_urn), am_urn) for s in slivers)


def _manifest_node(sliver: Sliver, node: Node | None, am_urn: str) -> rs.Node:
    hostname = node.hostname if node else None
    login = sliver.login_user or sliver_login(sliver.slice_urn)
    services = rs.Services(
        logins=[rs.Login("ssh-keys", hostname, sliver.login_port, login)],
        extensions=[_user_element(login, user.urn, tuple(user.keys)) for user in sliver.users],
    )
    return rs.Node(
        component_id=sliver.node_urn, component_manager_id=am_urn,
        component_name=node.name if node else None, client_id=sliver.client_id,
        sliver_id=sliver.urn, exclusive=sliver.exclusive,
        sliver_types=[rs.SliverType(sliver.sliver_type)], services=services,
    )


@lru_cache(maxsize=256)
def _user_element(login: str, user_urn: str, keys: tuple[str, ...]) -> rs.Extension:
    """A user's login and keys, parsed once and shared by the slice's slivers (the writer
    checks a text extension by parsing it, each time it is written)."""
    body = "".join(f"<public_key>{escape(key)}</public_key>" for key in keys)
    text = (f'<services_user xmlns="{USER_EXT_NS}" login={quoteattr(login)} '
            f"user_urn={quoteattr(user_urn)}>{body}</services_user>")
    return rs.Extension.of_element(parse_xml(text, what="a manifest's user element"))
