"""The RSpec model: plain dataclasses shared by the reader, the writer and the builder.

One model serves advertisements, requests and manifests (GENI v3, and ProtoGENI v2 on input).
Anything the model does not interpret is kept: child elements in `extensions` (`Extension`
values whose canonical XML is made on first use, or plain strings), attributes as `extra_attrs`
keyed by `{namespace}name` (or a bare name), so a document survives a read/write round trip.
"""

from __future__ import annotations

from collections import UserList, UserString
from collections.abc import MutableSequence
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

GENI_NS = "http://www.geni.net/resources/rspec/3"
PG2_NS = "http://www.protogeni.net/resources/rspec/2"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
OPSTATE_NS = "http://www.geni.net/resources/rspec/ext/opstate/1"
OPSTATE_SCHEMA = "http://www.geni.net/resources/rspec/ext/opstate/1/ad.xsd"

AD = "advertisement"
REQUEST = "request"
MANIFEST = "manifest"
RSPEC_TYPES = (AD, REQUEST, MANIFEST)

# The schema file of each RSpec type, under the GENI v3 (and PG v2) namespace URL.
SCHEMA_FILE = {AD: "ad.xsd", REQUEST: "request.xsd", MANIFEST: "manifest.xsd"}


def geni_schema_url(rspec_type: str, namespace: str = GENI_NS) -> str:
    """The public schema URL of a GENI v3 (or PG v2) RSpec type."""
    return f"{namespace}/{SCHEMA_FILE[rspec_type]}"


class Extension(UserString):
    """An element the model does not interpret, kept as exclusive canonical XML.

    The reader hands over the parsed element and the text is made on first use, so a document
    full of foreign extensions costs no serialization until someone looks at it. It compares
    and hashes as its text, so it equals a plain string with the same text.
    """

    __slots__ = ("_element", "_text", "parsed")

    def __init__(self, source: str | UserString | etree._Element) -> None:
        self._element: etree._Element | None = None
        self._text: str | None = None
        if isinstance(source, etree._Element):
            self._element = source
        else:
            self._text = str(source)
        self.parsed = self._element is not None  # one well-formed element, known from a parse

    @classmethod
    def of_element(cls, element: etree._Element) -> Extension:
        """The extension of a parsed element (the reader's hot path: no checks). It keeps the
        element, and so its whole document, alive until its text is first used."""
        made = cls.__new__(cls)
        made._element, made._text, made.parsed = element, None, True
        return made

    @property
    def data(self) -> str:  # type: ignore[override]
        """The canonical XML text (made from the element once, then kept)."""
        return self._text if self._text is not None else self._serialize()

    def _serialize(self) -> str:
        self._text = etree.tostring(self._element, method="c14n", exclusive=True,
                                    with_comments=False).decode()
        self._element = None
        return self._text

    def __copy__(self) -> Extension:
        return self  # immutable value

    def __deepcopy__(self, memo: dict[int, object]) -> Extension:
        return self

    def to_element(self) -> etree._Element:
        """A fresh element of this extension (its text parsed by the hardened parser)."""
        from sfa.safexml import parse_xml  # noqa: PLC0415 - keeps the model's imports plain

        return parse_xml(self.data, what="RSpec extension")


ExtensionText = str | Extension


class Extensions(UserList[ExtensionText]):
    """A list of extensions. The reader's are the unknown child elements of a parsed element,
    found when the list is first used: most documents' extensions are never looked at, and the
    reader then never touches them (lxml skips them while picking the known children)."""

    _data: list[ExtensionText]
    _pending: tuple[etree._Element, frozenset[str]] | None = None

    @classmethod
    def of_children(cls, element: etree._Element, known: frozenset[str]) -> Extensions:
        """The child elements of `element` whose tags are not in `known`, read on first use."""
        made = cls.__new__(cls)
        made._pending = (element, known)
        return made

    @property
    def data(self) -> list[ExtensionText]:
        if self._pending is not None:
            element, known = self._pending
            self._pending = None
            self._data = [Extension.of_element(child) for child in element
                          if child.tag.__class__ is str and child.tag not in known]
        return self._data

    @data.setter
    def data(self, value: list[ExtensionText]) -> None:
        self._data, self._pending = value, None

    def __copy__(self) -> Extensions:
        return Extensions(self.data)

    def __deepcopy__(self, memo: dict[int, object]) -> list[ExtensionText]:
        return list(self.data)  # the values are immutable

    def __reduce__(self) -> tuple[type[Extensions], tuple[list[ExtensionText]]]:
        return Extensions, (list(self.data),)


ExtensionList = MutableSequence[ExtensionText]


@dataclass(slots=True)
class ResourceAmounts:
    """Amounts of the resources a node offers or a sliver asks for (our extension)."""

    cpu_share: int | None = None
    memory_mb: int | None = None
    disk_mb: int | None = None
    tasks: int | None = None
    bandwidth_kbps: int | None = None


@dataclass(slots=True)
class NodeResources:
    """A node's capacity, what is still free of it, its load and the resource knobs its node
    manager enforces (our extension)."""

    capacity: ResourceAmounts = field(default_factory=ResourceAmounts)
    free: ResourceAmounts | None = None
    load: float | None = None
    enforced: tuple[str, ...] | None = None  # knobs the node enforces (the others: counted)


@dataclass(slots=True)
class DiskImage:
    name: str | None = None
    os: str | None = None
    version: str | None = None
    description: str | None = None
    default: str | None = None
    extensions: ExtensionList = field(default_factory=list)


@dataclass(slots=True)
class SliverType:
    name: str | None = None
    disk_images: list[DiskImage] = field(default_factory=list)
    extensions: ExtensionList = field(default_factory=list)


@dataclass(slots=True)
class HardwareType:
    name: str | None = None
    extensions: ExtensionList = field(default_factory=list)


@dataclass(slots=True)
class Location:
    country: str | None = None
    latitude: str | None = None
    longitude: str | None = None


@dataclass(slots=True)
class Login:
    authentication: str | None = None
    hostname: str | None = None
    port: int | None = None
    username: str | None = None


@dataclass(slots=True)
class Install:
    url: str | None = None
    install_path: str | None = None
    file_type: str | None = None


@dataclass(slots=True)
class Execute:
    shell: str | None = None
    command: str | None = None


@dataclass(slots=True)
class Services:
    logins: list[Login] = field(default_factory=list)
    installs: list[Install] = field(default_factory=list)
    executes: list[Execute] = field(default_factory=list)
    extensions: ExtensionList = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.logins or self.installs or self.executes or self.extensions)


@dataclass(slots=True)
class IP:
    address: str | None = None
    netmask: str | None = None
    type: str | None = None


@dataclass(slots=True)
class Interface:
    component_id: str | None = None
    client_id: str | None = None
    sliver_id: str | None = None
    component_name: str | None = None
    role: str | None = None
    public_ipv4: str | None = None
    mac_address: str | None = None
    ips: list[IP] = field(default_factory=list)
    extensions: ExtensionList = field(default_factory=list)
    extra_attrs: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Node:
    component_id: str | None = None
    component_manager_id: str | None = None
    component_name: str | None = None
    client_id: str | None = None
    sliver_id: str | None = None
    exclusive: bool | None = None
    hardware_types: list[HardwareType] = field(default_factory=list)
    sliver_types: list[SliverType] = field(default_factory=list)
    location: Location | None = None
    available: bool | None = None
    interfaces: list[Interface] = field(default_factory=list)
    services: Services = field(default_factory=Services)
    resources: NodeResources | None = None
    resource_request: ResourceAmounts | None = None
    extensions: ExtensionList = field(default_factory=list)
    extra_attrs: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class InterfaceRef:
    client_id: str | None = None
    component_id: str | None = None
    sliver_id: str | None = None


@dataclass(slots=True)
class LinkProperty:
    source_id: str | None = None
    dest_id: str | None = None
    capacity: str | None = None
    latency: str | None = None
    packet_loss: str | None = None


@dataclass(slots=True)
class Link:
    component_id: str | None = None
    client_id: str | None = None
    sliver_id: str | None = None
    component_name: str | None = None
    vlantag: str | None = None
    interface_refs: list[InterfaceRef] = field(default_factory=list)
    properties: list[LinkProperty] = field(default_factory=list)
    link_types: list[str] = field(default_factory=list)
    component_managers: list[str] = field(default_factory=list)
    extensions: ExtensionList = field(default_factory=list)
    extra_attrs: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class RSpec:
    """One RSpec document. `schema_locations` keeps foreign (namespace, URL) hints."""

    type: str
    generated: datetime | None = None
    expires: datetime | None = None
    generated_by: str | None = None
    nodes: list[Node] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    init_script: str | None = None
    extensions: ExtensionList = field(default_factory=list)
    extra_attrs: dict[str, str] = field(default_factory=dict)
    schema_locations: dict[str, str] = field(default_factory=dict)

    @property
    def interfaces(self) -> list[Interface]:
        """Every interface of every node, in document order."""
        return [iface for node in self.nodes for iface in node.interfaces]
