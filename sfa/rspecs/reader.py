"""Read GENI v3 (and ProtoGENI v2) RSpecs into the model — leniently.

Real documents break the schemas (missing required attributes, manifests saying
`type="request"`, `host` elements with undeclared attributes): whatever is missing reads as
None, whatever is unknown is kept as an extension. Refusals: not an RSpec or the wrong type ->
BadArgs; an unknown RSpec namespace or version -> BadVersion; too many bytes or nodes -> TooBig.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TypeVar

from lxml import etree

from sfa.errors import BadArgs, BadVersion, SfaError, TooBig
from sfa.rspecs import extension as ext
from sfa.rspecs.model import (
    GENI_NS,
    IP,
    OPSTATE_NS,
    PG2_NS,
    RSPEC_TYPES,
    XSI_NS,
    DiskImage,
    Execute,
    HardwareType,
    Install,
    Interface,
    InterfaceRef,
    Link,
    LinkProperty,
    Location,
    Login,
    Node,
    RSpec,
    SliverType,
)
from sfa.rspecs.plain_nodes import MARKER_TAG, markers_in_place, split_plain_nodes
from sfa.safexml import parse_xml
from sfa.timeutil import parse_rfc3339

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_NODES = 20_000
SUPPORTED_NAMESPACES = (GENI_NS, PG2_NS)
_T = TypeVar("_T")
# Namespaces whose schemaLocation the writer computes itself; not kept from the input.
_CORE_NAMESPACES = frozenset({GENI_NS, PG2_NS, OPSTATE_NS, ext.SFA_EXT_NS})

_SCHEMA_LOCATION = f"{{{XSI_NS}}}schemaLocation"
_NODE_ATTRS = frozenset(
    {"component_id", "component_manager_id", "component_name", "client_id", "sliver_id",
     "exclusive"}
)
_IFACE_ATTRS = frozenset(
    {"component_id", "client_id", "sliver_id", "component_name", "role", "public_ipv4",
     "mac_address"}
)
_LINK_ATTRS = frozenset({"component_id", "client_id", "sliver_id", "component_name", "vlantag"})
_ROOT_ATTRS = frozenset({"type", "generated", "expires", "generated_by", _SCHEMA_LOCATION})


def read_rspec(
    text: str | bytes,
    expected_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> RSpec:
    """Parse an RSpec document (hardened) into the model; see the module docstring."""
    with _gc_paused():
        root, runs = _parse(text, max_bytes, max_nodes)
        namespace = _check_root(root)
        rspec_type = _check_type(root, expected_type)
        return _Reader(namespace, max_nodes).rspec(root, rspec_type, runs)


def _parse(
    text: str | bytes, max_bytes: int, max_nodes: int
) -> tuple[etree._Element, list[list[Node]]]:
    """The root (hardened parse) and the runs of plain nodes the fast path read, if any."""
    if _byte_length(text) <= max_bytes:
        split = split_plain_nodes(text, max_nodes)
        if split is not None:
            try:
                root = parse_xml(split.remainder, what="RSpec", max_bytes=max_bytes)
            except SfaError:
                pass  # the general path below refuses the original with its own message
            else:
                if markers_in_place(root, split):
                    return root, split.runs
    return parse_xml(text, what="RSpec", max_bytes=max_bytes), []


def _byte_length(text: str | bytes) -> int:
    if isinstance(text, str):
        return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return len(text)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building a big model makes ~25 objects per node and no cycles: skip the GC passes.

    Afterwards the new objects are moved straight to the oldest generation (freeze then
    unfreeze: two list splices) instead of being scanned by a young collection as soon as the
    collector is back on; that scan cost ~0.07 s for 10,000 nodes. Skipped when someone else
    uses gc.freeze(), whose frozen objects must stay frozen.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()


def _check_root(root: etree._Element) -> str:
    qname = etree.QName(root)
    if qname.localname != "rspec":
        raise BadArgs(f"not an RSpec: the document's root is <{qname.localname}>, not <rspec>")
    if qname.namespace not in SUPPORTED_NAMESPACES:
        raise BadVersion(
            f"unsupported RSpec namespace {qname.namespace!r}; use GENI v3 ({GENI_NS})"
        )
    return qname.namespace


def _check_type(root: etree._Element, expected_type: str | None) -> str:
    declared = (root.get("type") or "").strip().lower()
    if declared not in RSPEC_TYPES:
        raise BadArgs(
            f"RSpec type {declared[:40]!r} is not one of {', '.join(RSPEC_TYPES)}"
            if declared else "the RSpec has no type attribute"
        )
    if expected_type is not None and declared != expected_type.lower():
        raise BadArgs(f"expected a {expected_type} RSpec, got a {declared}")
    return declared


def _bool(text: str | None) -> bool | None:
    if text is None:
        return None
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    return None


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_rfc3339(text)
    except BadArgs:
        return None


def _extra_attrs(element: etree._Element, known: frozenset[str]) -> dict[str, str]:
    if known.issuperset(element.keys()):
        return {}
    return {str(name): str(value) for name, value in element.attrib.items() if name not in known}


def _schema_locations(root: etree._Element) -> dict[str, str]:
    words = (root.get(_SCHEMA_LOCATION) or "").split()
    pairs = dict(zip(words[0::2], words[1::2], strict=False))
    return {ns: url for ns, url in pairs.items() if ns not in _CORE_NAMESPACES}


class _Reader:
    """Turns elements of one namespace (GENI v3 or PG v2) into model objects."""

    def __init__(self, namespace: str, max_nodes: int) -> None:
        self.ns = namespace
        self.max_nodes = max_nodes
        q = "{" + namespace + "}"
        self.node_handlers: dict[str, Callable[[Node, etree._Element], None]] = {
            q + "hardware_type": self._hardware_type,
            q + "sliver_type": self._sliver_type,
            q + "location": self._location,
            q + "available": self._available,
            q + "interface": self._node_interface,
            q + "services": self._services,
            ext.RESOURCES_TAG: self._resources,
            ext.REQUEST_TAG: self._resource_request,
        }
        self.link_handlers: dict[str, Callable[[Link, etree._Element], None]] = {
            q + "interface_ref": self._interface_ref,
            q + "property": self._property,
            q + "link_type": self._link_type,
            q + "component_manager": self._component_manager,
        }
        self.tags = {name: q + name for name in (
            "node", "link", "disk_image", "ip", "login", "install", "execute")}

    def rspec(self, root: etree._Element, rspec_type: str,
              runs: list[list[Node]] | None = None) -> RSpec:
        """The model of `root`; `runs` are the fast path's nodes, spliced in at their markers."""
        runs = runs or []
        node_tag, link_tag = self.tags["node"], self.tags["link"]
        count = len(root.findall(node_tag)) + sum(len(run) for run in runs)
        if count > self.max_nodes:
            raise TooBig(f"the RSpec names {count} nodes; the limit is {self.max_nodes}")
        result = RSpec(
            type=rspec_type,
            generated=_time(root.get("generated")),
            expires=_time(root.get("expires")),
            generated_by=root.get("generated_by"),
            extra_attrs=_extra_attrs(root, _ROOT_ATTRS),
            schema_locations=_schema_locations(root),
        )
        for child in root:
            tag = child.tag
            if tag == node_tag:
                result.nodes.append(self.node(child))
            elif tag == link_tag:
                result.links.append(self.link(child))
            elif tag == MARKER_TAG and runs:
                result.nodes.extend(runs[int(child.get("i", ""))])
            elif tag == ext.INIT_SCRIPT_TAG:
                result.init_script = child.text or ""
            elif isinstance(tag, str):
                result.extensions.append(ext.canonical_xml(child))
        return result

    def node(self, element: etree._Element) -> Node:
        get = element.get
        node = Node(
            component_id=get("component_id"),
            component_manager_id=get("component_manager_id"),
            component_name=get("component_name"),
            client_id=get("client_id"),
            sliver_id=get("sliver_id"),
            exclusive=_bool(get("exclusive")),
            extra_attrs=_extra_attrs(element, _NODE_ATTRS),
        )
        _read_children(element, node, self.node_handlers, node.extensions)
        return node

    def _hardware_type(self, node: Node, element: etree._Element) -> None:
        node.hardware_types.append(HardwareType(element.get("name"), _extensions(element)))

    def _sliver_type(self, node: Node, element: etree._Element) -> None:
        sliver_type = SliverType(element.get("name"))
        if not len(element):
            node.sliver_types.append(sliver_type)
            return
        image_tag = self.tags["disk_image"]
        for child in _elements(element):
            if child.tag == image_tag:
                get = child.get
                sliver_type.disk_images.append(DiskImage(
                    get("name"), get("os"), get("version"), get("description"), get("default"),
                    _extensions(child),
                ))
            else:
                sliver_type.extensions.append(ext.canonical_xml(child))
        node.sliver_types.append(sliver_type)

    def _location(self, node: Node, element: etree._Element) -> None:
        get = element.get
        node.location = Location(get("country"), get("latitude"), get("longitude"))

    def _available(self, node: Node, element: etree._Element) -> None:
        node.available = _bool(element.get("now"))

    def _node_interface(self, node: Node, element: etree._Element) -> None:
        get = element.get
        iface = Interface(
            component_id=get("component_id"),
            client_id=get("client_id"),
            sliver_id=get("sliver_id"),
            component_name=get("component_name"),
            role=get("role"),
            public_ipv4=get("public_ipv4"),
            mac_address=get("mac_address"),
            extra_attrs=_extra_attrs(element, _IFACE_ATTRS),
        )
        node.interfaces.append(iface)
        if not len(element):
            return
        ip_tag = self.tags["ip"]
        for child in _elements(element):
            if child.tag == ip_tag:
                iface.ips.append(IP(child.get("address"), child.get("netmask"), child.get("type")))
            else:
                iface.extensions.append(ext.canonical_xml(child))

    def _services(self, node: Node, element: etree._Element) -> None:
        services = node.services
        tags = self.tags
        for child in _elements(element):
            get = child.get
            if child.tag == tags["login"]:
                services.logins.append(Login(
                    get("authentication"), get("hostname"), ext.int_or_none(get("port")),
                    get("username"),
                ))
            elif child.tag == tags["install"]:
                services.installs.append(
                    Install(get("url"), get("install_path"), get("file_type"))
                )
            elif child.tag == tags["execute"]:
                services.executes.append(Execute(get("shell"), get("command")))
            else:
                services.extensions.append(ext.canonical_xml(child))

    def _resources(self, node: Node, element: etree._Element) -> None:
        node.resources = ext.resources_from_element(element)

    def _resource_request(self, node: Node, element: etree._Element) -> None:
        node.resource_request = ext.amounts_from_element(element)

    def link(self, element: etree._Element) -> Link:
        get = element.get
        link = Link(
            component_id=get("component_id"),
            client_id=get("client_id"),
            sliver_id=get("sliver_id"),
            component_name=get("component_name"),
            vlantag=get("vlantag"),
            extra_attrs=_extra_attrs(element, _LINK_ATTRS),
        )
        _read_children(element, link, self.link_handlers, link.extensions)
        return link

    def _interface_ref(self, link: Link, element: etree._Element) -> None:
        get = element.get
        link.interface_refs.append(
            InterfaceRef(get("client_id"), get("component_id"), get("sliver_id"))
        )

    def _property(self, link: Link, element: etree._Element) -> None:
        get = element.get
        link.properties.append(LinkProperty(
            get("source_id"), get("dest_id"), get("capacity"), get("latency"), get("packet_loss")
        ))

    def _link_type(self, link: Link, element: etree._Element) -> None:
        link.link_types.append(element.get("name") or "")

    def _component_manager(self, link: Link, element: etree._Element) -> None:
        link.component_managers.append(element.get("name") or "")


def _read_children(element: etree._Element, target: _T,
                   handlers: dict[str, Callable[[_T, etree._Element], None]],
                   extensions: list[str]) -> None:
    """Hand each child to the handler for its tag; keep any other element as an extension."""
    for child in element:
        handler = handlers.get(child.tag)
        if handler is not None:
            handler(target, child)
        elif isinstance(child.tag, str):
            extensions.append(ext.canonical_xml(child))


def _extensions(element: etree._Element) -> list[str]:
    """Every child element as an extension string."""
    if not len(element):
        return []
    return [ext.canonical_xml(child) for child in element if isinstance(child.tag, str)]


def _elements(element: etree._Element) -> list[etree._Element]:
    """Child elements, without comments and processing instructions."""
    return [child for child in element if isinstance(child.tag, str)]
