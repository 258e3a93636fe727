"""Build RSpecs in code: `Request()` for clients and other testbeds, `advertisement()` for an
aggregate (it always declares our opstate state machine).

Extensions are typed objects with `to_element()` (an lxml element in their own namespace) and,
optionally, `schema_location` (the public URL of their XSD); `extend` places one at the top of
the document, in a node or in a link, as geni-lib's extension objects do:

    from lxml import etree
    from sfa.rspecs.builder import Request

    class SharedVlan:
        schema_location = "http://www.protogeni.net/resources/rspec/ext/shared-vlan/1/request.xsd"

        def __init__(self, name):
            self.name = name

        def to_element(self):
            tag = "{http://www.protogeni.net/resources/rspec/ext/shared-vlan/1}link_shared_vlan"
            return etree.Element(tag, name=self.name)

    xml = (Request()
           .node("n1", component_id="urn:publicid:IDN+plc+node+node1",
                 sliver_type="sfa-container")
           .node("n2", sliver_type="sfa-container", memory_mb=512)
           .link("l1", "n1", "n2")
           .extend(SharedVlan("mesoscale"), link="l1")
           .to_xml())
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from lxml import etree

from sfa.errors import BadArgs
from sfa.rspecs.extension import opstate_extension
from sfa.rspecs.model import (
    AD,
    GENI_NS,
    IP,
    MANIFEST,
    REQUEST,
    DiskImage,
    Execute,
    Extension,
    HardwareType,
    Install,
    Interface,
    InterfaceRef,
    Link,
    LinkProperty,
    Node,
    ResourceAmounts,
    RSpec,
    SliverType,
)
from sfa.rspecs.writer import write_rspec
from sfa.timeutil import utcnow


class ExtensionObject(Protocol):
    """A typed RSpec extension (as geni-lib has): `to_element()`, and optionally a
    `schema_location` attribute, the URL of its XSD."""

    def to_element(self) -> etree._Element:
        """The element, in the extension's own namespace."""


class Request:
    """A request RSpec under construction; every method returns the builder."""

    def __init__(self, *, expires: datetime | None = None) -> None:
        self.rspec = RSpec(type=REQUEST, generated=utcnow().replace(microsecond=0),
                           expires=expires)
        self._nodes: dict[str, Node] = {}

    def node(
        self,
        client_id: str,
        *,
        component_id: str | None = None,
        component_manager_id: str | None = None,
        sliver_type: str | None = None,
        disk_image: str | None = None,
        hardware_type: str | None = None,
        exclusive: bool | None = None,
        cpu_share: int | None = None,
        memory_mb: int | None = None,
        disk_mb: int | None = None,
        tasks: int | None = None,
        bandwidth_kbps: int | None = None,
    ) -> Request:
        """Add a node: bound when `component_id` is given, else the aggregate maps it."""
        if not client_id:
            raise BadArgs("a request node needs a client_id")
        if client_id in self._nodes:
            raise BadArgs(f"the request already has a node {client_id!r}")
        node = Node(client_id=client_id, component_id=component_id,
                    component_manager_id=component_manager_id, exclusive=exclusive)
        if sliver_type is not None:
            images = [DiskImage(name=disk_image)] if disk_image else []
            node.sliver_types.append(SliverType(name=sliver_type, disk_images=images))
        elif disk_image is not None:
            raise BadArgs("a disk image belongs to a sliver type; give sliver_type too")
        if hardware_type is not None:
            node.hardware_types.append(HardwareType(name=hardware_type))
        amounts = ResourceAmounts(cpu_share, memory_mb, disk_mb, tasks, bandwidth_kbps)
        if amounts != ResourceAmounts():
            node.resource_request = amounts
        self._nodes[client_id] = node
        self.rspec.nodes.append(node)
        return self

    def interface(self, node: str, client_id: str | None = None, *, ip: str | None = None,
                  netmask: str | None = None) -> Request:
        """Add an interface to `node` (named `node:ifN` unless `client_id` is given)."""
        self._add_interface(node, client_id, ip, netmask)
        return self

    def _add_interface(self, node_id: str, client_id: str | None, ip: str | None,
                       netmask: str | None) -> Interface:
        node = self._node(node_id)
        iface = Interface(client_id=client_id or f"{node_id}:if{len(node.interfaces)}")
        if ip is not None:
            iface.ips.append(IP(address=ip, netmask=netmask, type="ipv4"))
        node.interfaces.append(iface)
        return iface

    def link(self, client_id: str, *endpoints: str, link_type: str | None = None,
             capacity_kbps: int | None = None) -> Request:
        """Link endpoints: node names (a new interface is made on each) or interface ids."""
        if len(endpoints) < 2:
            raise BadArgs(f"link {client_id!r} needs at least two endpoints")
        link = Link(client_id=client_id)
        for endpoint in endpoints:
            ref = endpoint
            if endpoint in self._nodes:
                ref = self._add_interface(endpoint, None, None, None).client_id or ""
            elif not self._has_interface(endpoint):
                raise BadArgs(f"link {client_id!r}: no node or interface named {endpoint!r}")
            link.interface_refs.append(InterfaceRef(client_id=ref))
        if link_type is not None:
            link.link_types.append(link_type)
        if capacity_kbps is not None:
            refs = [ref.client_id for ref in link.interface_refs]
            link.properties.extend(
                LinkProperty(source_id=a, dest_id=b, capacity=str(capacity_kbps))
                for a in refs for b in refs if a != b
            )
        self.rspec.links.append(link)
        return self

    def install(self, node: str, url: str, install_path: str) -> Request:
        """Ask the aggregate to unpack `url` into `install_path` on the node."""
        self._node(node).services.installs.append(Install(url=url, install_path=install_path))
        return self

    def execute(self, node: str, command: str, shell: str = "sh") -> Request:
        """Ask the aggregate to run `command` when the node starts."""
        self._node(node).services.executes.append(Execute(shell=shell, command=command))
        return self

    def extend(self, extension: ExtensionObject, *, node: str | None = None,
               link: str | None = None) -> Request:
        """Add an extension element at the top of the request, or in `node` or `link`."""
        element = extension.to_element()
        namespace = etree.QName(element).namespace
        if namespace in (None, GENI_NS):
            raise BadArgs("an extension element needs its own namespace, not the GENI one")
        if node is not None and link is not None:
            raise BadArgs("an extension goes into a node or a link, not both")
        text = Extension.of_element(element)
        if node is not None:
            self._node(node).extensions.append(text)
        elif link is not None:
            self._link(link).extensions.append(text)
        else:
            self.rspec.extensions.append(text)
        location = getattr(extension, "schema_location", None)
        if location:
            self.rspec.schema_locations[namespace] = location
        return self

    def init_script(self, script: str) -> Request:
        """The slice's init script (our extension)."""
        self.rspec.init_script = script
        return self

    def to_xml(self) -> str:
        """The request as a GENI v3 document."""
        return write_rspec(self.rspec)

    def _node(self, client_id: str) -> Node:
        try:
            return self._nodes[client_id]
        except KeyError:
            raise BadArgs(f"the request has no node {client_id!r}") from None

    def _link(self, client_id: str) -> Link:
        for link in self.rspec.links:
            if link.client_id == client_id:
                return link
        raise BadArgs(f"the request has no link {client_id!r}")

    def _has_interface(self, client_id: str) -> bool:
        return any(i.client_id == client_id for n in self.rspec.nodes for i in n.interfaces)


def advertisement(
    nodes: Iterable[Node],
    *,
    aggregate_manager_id: str,
    links: Iterable[Link] = (),
    sliver_types: Iterable[str] = (),
    expires: datetime | None = None,
) -> RSpec:
    """An advertisement of `nodes`, declaring our opstate machine for `sliver_types`."""
    return RSpec(
        type=AD,
        generated=utcnow().replace(microsecond=0),
        expires=expires,
        nodes=list(nodes),
        links=list(links),
        extensions=[opstate_extension(aggregate_manager_id, sliver_types)],
    )


def manifest(nodes: Iterable[Node], *, links: Iterable[Link] = (),
             expires: datetime | None = None) -> RSpec:
    """A manifest of `nodes` (slivers), stamped now."""
    return RSpec(type=MANIFEST, generated=utcnow().replace(microsecond=0), expires=expires,
                 nodes=list(nodes), links=list(links))
