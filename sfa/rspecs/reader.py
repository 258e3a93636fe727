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

import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

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
    ExtensionList,
    Extensions,
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
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def read_rspec(
    text: str | bytes,
    expected_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> RSpec:
    """Parse an RSpec document (hardened) into the model; see the module docstring."""
    with _gc_paused():
        root = parse_xml(text, what="RSpec", max_bytes=max_bytes, keep_blank_text=False)
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


def _others(attributes: dict[str, str], known: frozenset[str]) -> dict[str, str]:
    """The attributes whose names are not in `known`."""
    if known.issuperset(attributes):
        return {}
    return {name: value for name, value in attributes.items() if name not in known}


def _schema_locations(root: etree._Element) -> dict[str, str]:
    words = (root.get(_SCHEMA_LOCATION) or "").split()
    pairs = dict(zip(words[0::2], words[1::2], strict=False))
    return {ns: url for ns, url in pairs.items() if ns not in _CORE_NAMESPACES}


class _Reader:
    """Turns one document of one namespace (GENI v3 or PG v2) into the model.

    One pass of lxml's C iterator over the elements the model knows, in document order (the
    others are skipped inside lxml and kept as lazy extensions of their parent). Each known
    element is taken only where it belongs: its parent must be the element being read at that
    level (the current node, link, interface, sliver type or services); anywhere else it is
    part of an extension.
    """

    def __init__(self, namespace: str, max_nodes: int) -> None:
        self.max_nodes = max_nodes
        self.words = _vocabulary(namespace)
        # What is being read at each level: its element and its model object. The placeholders
        # are never written: no element's parent is None.
        self.root: etree._Element | None = None
        self.result = _NOWHERE.rspec
        self.node_at: etree._Element | None = None
        self.node_now = _NOWHERE.node
        self.link_at: etree._Element | None = None
        self.link_now = _NOWHERE.link
        self.interface_at: etree._Element | None = None
        self.interface_now = _NOWHERE.interface
        self.sliver_type_at: etree._Element | None = None
        self.sliver_type_now = _NOWHERE.sliver_type
        self.services_at: etree._Element | None = None

    def rspec(self, root: etree._Element, rspec_type: str) -> RSpec:
        """The model of `root`; TooBig (before any work) when it names too many nodes."""
        words = self.words
        count = len(root.findall(words.node))
        if count > self.max_nodes:
            raise TooBig(f"the RSpec names {count} nodes; the limit is {self.max_nodes}")
        self.root = root
        self.result = RSpec(
            type=rspec_type,
            generated=_time(root.get("generated")),
            expires=_time(root.get("expires")),
            generated_by=root.get("generated_by"),
            extensions=_unknown(root, words.in_root),
            extra_attrs=_others(dict(root.items()), _ROOT_ATTRS),
            schema_locations=_schema_locations(root),
        )
        handlers = words.handlers
        for element in root.iter(*handlers):
            handlers[element.tag](self, element)
        return self.result

    # -- top level -------------------------------------------------------------------------
    def _node(self, element: etree._Element) -> None:
        if element.getparent() is not self.root:
            return
        attributes = dict(element.items())  # one call: cheaper than a get per name
        get = attributes.get
        self.node_at, self.node_now = element, Node(
            get("component_id"), get("component_manager_id"), get("component_name"),
            get("client_id"), get("sliver_id"), _bool(get("exclusive")),
            extensions=_unknown(element, self.words.in_node),
            extra_attrs=_others(attributes, _NODE_ATTRS),
        )
        self.result.nodes.append(self.node_now)

    def _link(self, element: etree._Element) -> None:
        if element.getparent() is not self.root:
            return
        attributes = dict(element.items())
        get = attributes.get
        self.link_at, self.link_now = element, Link(
            get("component_id"), get("client_id"), get("sliver_id"), get("component_name"),
            get("vlantag"), extensions=_unknown(element, self.words.in_link),
            extra_attrs=_others(attributes, _LINK_ATTRS),
        )
        self.result.links.append(self.link_now)

    def _init_script(self, element: etree._Element) -> None:
        if element.getparent() is self.root:
            self.result.init_script = element.text or ""

    # -- in a node -------------------------------------------------------------------------
    def _interface(self, element: etree._Element) -> None:
        if element.getparent() is not self.node_at:
            return
        attributes = dict(element.items())
        get = attributes.get
        self.interface_at, self.interface_now = element, Interface(
            get("component_id"), get("client_id"), get("sliver_id"), get("component_name"),
            get("role"), get("public_ipv4"), get("mac_address"),
            extensions=_unknown(element, self.words.in_interface),
            extra_attrs=_others(attributes, _IFACE_ATTRS),
        )
        self.node_now.interfaces.append(self.interface_now)

    def _ip(self, element: etree._Element) -> None:
        if element.getparent() is self.interface_at:
            get = element.get
            self.interface_now.ips.append(IP(get("address"), get("netmask"), get("type")))

    def _hardware_type(self, element: etree._Element) -> None:
        if element.getparent() is self.node_at:
            self.node_now.hardware_types.append(
                HardwareType(element.get("name"), _unknown(element)))

    def _sliver_type(self, element: etree._Element) -> None:
        if element.getparent() is not self.node_at:
            return
        self.sliver_type_at, self.sliver_type_now = element, SliverType(
            element.get("name"), extensions=_unknown(element, self.words.in_sliver_type))
        self.node_now.sliver_types.append(self.sliver_type_now)

    def _disk_image(self, element: etree._Element) -> None:
        if element.getparent() is self.sliver_type_at:
            get = dict(element.items()).get
            self.sliver_type_now.disk_images.append(DiskImage(
                get("name"), get("os"), get("version"), get("description"), get("default"),
                _unknown(element),
            ))

    def _location(self, element: etree._Element) -> None:
        if element.getparent() is self.node_at:
            get = element.get
            self.node_now.location = Location(get("country"), get("latitude"),
                                              get("longitude"))

    def _available(self, element: etree._Element) -> None:
        if element.getparent() is self.node_at:
            self.node_now.available = _bool(element.get("now"))

    def _resources(self, element: etree._Element) -> None:
        if element.getparent() is self.node_at:
            self.node_now.resources = ext.resources_from_element(element)

    def _resource_request(self, element: etree._Element) -> None:
        if element.getparent() is self.node_at:
            self.node_now.resource_request = ext.amounts_from_element(element)

    def _services(self, element: etree._Element) -> None:
        if element.getparent() is self.node_at:
            self.services_at = element
            self.node_now.services.extensions = _unknown(element, self.words.in_services)

    def _login(self, element: etree._Element) -> None:
        if element.getparent() is self.services_at:
            get = element.get
            self.node_now.services.logins.append(Login(
                get("authentication"), get("hostname"), ext.int_or_none(get("port")),
                get("username"),
            ))

    def _install(self, element: etree._Element) -> None:
        if element.getparent() is self.services_at:
            get = element.get
            self.node_now.services.installs.append(
                Install(get("url"), get("install_path"), get("file_type")))

    def _execute(self, element: etree._Element) -> None:
        if element.getparent() is self.services_at:
            self.node_now.services.executes.append(
                Execute(element.get("shell"), element.get("command")))

    # -- in a link -------------------------------------------------------------------------
    def _interface_ref(self, element: etree._Element) -> None:
        if element.getparent() is self.link_at:
            get = element.get
            self.link_now.interface_refs.append(
                InterfaceRef(get("client_id"), get("component_id"), get("sliver_id")))

    def _property(self, element: etree._Element) -> None:
        if element.getparent() is self.link_at:
            get = dict(element.items()).get
            self.link_now.properties.append(LinkProperty(
                get("source_id"), get("dest_id"), get("capacity"), get("latency"),
                get("packet_loss"),
            ))

    def _link_type(self, element: etree._Element) -> None:
        if element.getparent() is self.link_at:
            self.link_now.link_types.append(element.get("name") or "")

    def _component_manager(self, element: etree._Element) -> None:
        if element.getparent() is self.link_at:
            self.link_now.component_managers.append(element.get("name") or "")


def _unknown(element: etree._Element, known: frozenset[str] = frozenset()) -> ExtensionList:
    """The element's other children, kept as extensions (found on first use)."""
    return Extensions.of_children(element, known) if len(element) else []


@dataclass(frozen=True)
class _Placeholders:
    rspec: RSpec = field(default_factory=lambda: RSpec(type=""))
    node: Node = field(default_factory=Node)
    link: Link = field(default_factory=Link)
    interface: Interface = field(default_factory=Interface)
    sliver_type: SliverType = field(default_factory=SliverType)


_NOWHERE = _Placeholders()
_Handler = Callable[[_Reader, etree._Element], None]


@dataclass(frozen=True)
class _Vocabulary:
    """The tags of one RSpec namespace the reader knows: its handler per tag, and the known
    children at each level (the others are extensions)."""

    node: str
    handlers: dict[str, _Handler]
    in_root: frozenset[str]
    in_node: frozenset[str]
    in_link: frozenset[str]
    in_interface: frozenset[str]
    in_sliver_type: frozenset[str]
    in_services: frozenset[str]


@functools.cache
def _vocabulary(namespace: str) -> _Vocabulary:
    """Each level's tags and handlers, written once: the handlers are their union, the known
    children of a level its tags."""
    def level(handlers: dict[str, _Handler]) -> dict[str, _Handler]:
        return {"{" + namespace + "}" + name: handler for name, handler in handlers.items()}

    r = _Reader
    in_root = level({"node": r._node, "link": r._link}) | {ext.INIT_SCRIPT_TAG: r._init_script}
    in_node = level({
        "interface": r._interface, "hardware_type": r._hardware_type,
        "available": r._available, "sliver_type": r._sliver_type, "location": r._location,
        "services": r._services,
    }) | {ext.RESOURCES_TAG: r._resources, ext.REQUEST_TAG: r._resource_request}
    in_link = level({"interface_ref": r._interface_ref, "property": r._property,
                     "link_type": r._link_type, "component_manager": r._component_manager})
    in_interface = level({"ip": r._ip})
    in_sliver_type = level({"disk_image": r._disk_image})
    in_services = level({"login": r._login, "install": r._install, "execute": r._execute})
    return _Vocabulary(
        node="{" + namespace + "}node",
        handlers=(in_root | in_node | in_link | in_interface | in_sliver_type | in_services),
        in_root=frozenset(in_root), in_node=frozenset(in_node), in_link=frozenset(in_link),
        in_interface=frozenset(in_interface), in_sliver_type=frozenset(in_sliver_type),
        in_services=frozenset(in_services),
    )
