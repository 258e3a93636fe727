"""Read GENI v3 (and ProtoGENI v2) RSpecs into the model — leniently.

Real documents break the schemas (missing required attributes, manifests saying
`type="request"`, `host` elements with undeclared attributes): whatever is missing reads as
None, whatever is unknown is kept as an extension. Refusals: not an RSpec or the wrong type ->
BadArgs; an unknown RSpec namespace or version -> BadVersion; too many bytes or nodes -> TooBig.

One parser (`sfa.safexml.parse_xml`) and one walk over its tree, for every document whatever
wrote it. The walk is written for speed: each child is dispatched on its tag once, attributes
are read with the element's own `get`, and unknown elements are kept as `Extension` values
whose canonical XML is only made when someone looks at it (foreign extensions are most of the
elements of a ProtoGENI/InstaGENI advertisement).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TypeVar

from lxml import etree

from sfa.errors import BadArgs, BadVersion, TooBig
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
    Extension,
    ExtensionText,
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
_lazy = Extension.of_element
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def read_rspec(
    text: str | bytes,
    expected_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> RSpec:
    """Parse an RSpec document (hardened) into the model; see the module docstring."""
    with _gc_paused():
        root = parse_xml(text, what="RSpec", max_bytes=max_bytes)
        namespace = _check_root(root)
        rspec_type = _check_type(root, expected_type)
        return _Reader(namespace, max_nodes).rspec(root, rspec_type)


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
    return _BOOLEANS.get(text.strip().lower())


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
        self.max_nodes = max_nodes
        q = "{" + namespace + "}"
        self.node_tag, self.link_tag = q + "node", q + "link"
        self.image_tag, self.ip_tag = q + "disk_image", q + "ip"
        self.service_tags = (q + "login", q + "install", q + "execute")
        self.node_handlers: dict[str, Callable[[Node, etree._Element], None]] = {
            q + "interface": self._node_interface,
            q + "hardware_type": self._hardware_type,
            q + "available": self._available,
            q + "sliver_type": self._sliver_type,
            q + "location": self._location,
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

    def rspec(self, root: etree._Element, rspec_type: str) -> RSpec:
        """The model of `root`; TooBig (before any work) when it names too many nodes."""
        count = len(root.findall(self.node_tag))
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
        node_tag, link_tag = self.node_tag, self.link_tag
        nodes, links, extensions = result.nodes, result.links, result.extensions
        read_node, read_link = self.node, self.link
        for child in root:
            tag = child.tag
            if tag == node_tag:
                nodes.append(read_node(child))
            elif tag == link_tag:
                links.append(read_link(child))
            elif tag == ext.INIT_SCRIPT_TAG:
                result.init_script = child.text or ""
            elif tag.__class__ is str:
                extensions.append(_lazy(child))
        return result

    def node(self, element: etree._Element) -> Node:
        get = element.get
        node = Node(
            get("component_id"), get("component_manager_id"), get("component_name"),
            get("client_id"), get("sliver_id"), _bool(get("exclusive")),
            extra_attrs=_extra_attrs(element, _NODE_ATTRS),
        )
        _read_children(element, node, self.node_handlers, node.extensions)
        return node

    def _hardware_type(self, node: Node, element: etree._Element) -> None:
        node.hardware_types.append(HardwareType(element.get("name"), _extensions(element)))

    def _sliver_type(self, node: Node, element: etree._Element) -> None:
        sliver_type = SliverType(element.get("name"))
        node.sliver_types.append(sliver_type)
        image_tag = self.image_tag
        for child in element:
            if child.tag == image_tag:
                get = child.get
                sliver_type.disk_images.append(DiskImage(
                    get("name"), get("os"), get("version"), get("description"), get("default"),
                    _extensions(child),
                ))
            elif child.tag.__class__ is str:
                sliver_type.extensions.append(_lazy(child))

    def _location(self, node: Node, element: etree._Element) -> None:
        get = element.get
        node.location = Location(get("country"), get("latitude"), get("longitude"))

    def _available(self, node: Node, element: etree._Element) -> None:
        node.available = _bool(element.get("now"))

    def _node_interface(self, node: Node, element: etree._Element) -> None:
        get = element.get
        iface = Interface(
            get("component_id"), get("client_id"), get("sliver_id"), get("component_name"),
            get("role"), get("public_ipv4"), get("mac_address"),
            extra_attrs=_extra_attrs(element, _IFACE_ATTRS),
        )
        node.interfaces.append(iface)
        ip_tag = self.ip_tag
        for child in element:
            if child.tag == ip_tag:
                iface.ips.append(IP(child.get("address"), child.get("netmask"), child.get("type")))
            elif child.tag.__class__ is str:
                iface.extensions.append(_lazy(child))

    def _services(self, node: Node, element: etree._Element) -> None:
        services = node.services
        login_tag, install_tag, execute_tag = self.service_tags
        for child in element:
            tag, get = child.tag, child.get
            if tag == login_tag:
                services.logins.append(Login(
                    get("authentication"), get("hostname"), ext.int_or_none(get("port")),
                    get("username"),
                ))
            elif tag == install_tag:
                services.installs.append(
                    Install(get("url"), get("install_path"), get("file_type"))
                )
            elif tag == execute_tag:
                services.executes.append(Execute(get("shell"), get("command")))
            elif tag.__class__ is str:
                services.extensions.append(_lazy(child))

    def _resources(self, node: Node, element: etree._Element) -> None:
        node.resources = ext.resources_from_element(element)

    def _resource_request(self, node: Node, element: etree._Element) -> None:
        node.resource_request = ext.amounts_from_element(element)

    def link(self, element: etree._Element) -> Link:
        get = element.get
        link = Link(
            get("component_id"), get("client_id"), get("sliver_id"), get("component_name"),
            get("vlantag"), extra_attrs=_extra_attrs(element, _LINK_ATTRS),
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
                   extensions: list[ExtensionText]) -> None:
    """Hand each child to the handler for its tag; keep any other element as an extension."""
    get = handlers.get
    for child in element:
        tag = child.tag
        handler = get(tag)
        if handler is not None:
            handler(target, child)
        elif tag.__class__ is str:
            extensions.append(_lazy(child))


def _extensions(element: etree._Element) -> list[ExtensionText]:
    """Every child element as an extension."""
    return [_lazy(child) for child in element if child.tag.__class__ is str]
