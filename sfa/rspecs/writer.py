"""Write the model as a GENI v3 RSpec — strictly, and fast enough for big advertisements.

The document is built as text in one pass (no element tree), which is what makes a
10,000-node advertisement cheap. With `strict=True` (the default) the writer emits only the
attributes the official schema of the RSpec's type allows and refuses (BadArgs) a model that
lacks one the schema requires, so what it writes validates. `strict=False` writes everything the
model holds, for relaying foreign documents unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sfa.errors import BadArgs
from sfa.rspecs import extension as ext
from sfa.rspecs.model import (
    AD,
    GENI_NS,
    OPSTATE_NS,
    OPSTATE_SCHEMA,
    RSPEC_TYPES,
    XSI_NS,
    Extension,
    ExtensionText,
    Interface,
    Link,
    Node,
    RSpec,
    Services,
    SliverType,
    geni_schema_url,
)
from sfa.rspecs.schema_rules import allowed_attributes, required_attributes
from sfa.safexml import parse_xml
from sfa.timeutil import format_rfc3339

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;",
     "\r": "&#13;"}
)
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_KNOWN_PREFIXES = {
    ext.SFA_EXT_NS: ext.SFA_EXT_PREFIX,
    OPSTATE_NS: "opstate",
    XSI_NS: "xsi",
    "http://www.protogeni.net/resources/rspec/ext/emulab/1": "emulab",
}
_OPSTATE_START = f"<rspec_opstate xmlns=\"{OPSTATE_NS}\""


def write_rspec(rspec: RSpec, *, strict: bool = True) -> str:
    """The model as a GENI v3 document (UTF-8 text with an XML declaration)."""
    if rspec.type not in RSPEC_TYPES:
        raise BadArgs(f"RSpec type {rspec.type!r} is not one of {', '.join(RSPEC_TYPES)}")
    writer = _Writer(rspec.type, strict)
    text = writer.document(rspec)
    bad = _INVALID_XML.search(text)
    if bad:
        raise BadArgs(
            f"the RSpec holds a character XML cannot carry (code {ord(bad.group()):#x}); "
            "remove NUL and control characters from names and values"
        )
    return text


_NEEDS_ESCAPE = re.compile('[&<>"\t\n\r]').search


def _attr(value: str) -> str:
    """An attribute value, escaped (most values need nothing: skip the translation)."""
    return value.translate(_ATTR_ESCAPES) if _NEEDS_ESCAPE(value) else value


class _Writer:
    def __init__(self, rspec_type: str, strict: bool) -> None:
        self.type = rspec_type
        self.strict = strict
        self.out: list[str] = []
        self._rules: dict[str, tuple[frozenset[str] | None, tuple[str, ...]]] = {}

    # -- helpers -------------------------------------------------------------------------
    def attrs(self, element: str, pairs: Iterable[tuple[str, object]],
              extra: dict[str, str] | None = None) -> str:
        """` name="value"` for each pair that is set (and allowed, when strict)."""
        allowed, required = self.rules(element)
        parts = []
        names = []
        for name, value in pairs:
            if value is None or (allowed is not None and name not in allowed):
                continue
            if value is True or value is False:
                text = "true" if value else "false"
            else:
                text = _attr(str(value))
            parts.append(f' {name}="{text}"')
            names.append(name)
        for name in required:
            if name not in names:
                raise BadArgs(
                    f"{self.type} RSpec: <{element}> needs {name} "
                    f"(has {', '.join(names) or 'nothing'})"
                )
        if extra:
            parts.append(self.extra_attrs(extra))
        return "".join(parts)

    def rules(self, element: str) -> tuple[frozenset[str] | None, tuple[str, ...]]:
        """(allowed attributes or None for any, required attributes) of an element."""
        rule = self._rules.get(element)
        if rule is None:
            if self.strict:
                rule = (allowed_attributes(self.type, element),
                        required_attributes(self.type, element))
            else:
                rule = (None, ())
            self._rules[element] = rule
        return rule

    def extra_attrs(self, extra: dict[str, str]) -> str:
        declared: dict[str, str] = {}
        parts = []
        for key, value in extra.items():
            if key.startswith("{"):
                namespace, _, local = key[1:].partition("}")
                prefix = declared.get(namespace)
                if prefix is None:
                    prefix = _KNOWN_PREFIXES.get(namespace, f"x{len(declared)}")
                    declared[namespace] = prefix
                    parts.append(f' xmlns:{prefix}="{_attr(namespace)}"')
                parts.append(f' {prefix}:{local}="{_attr(value)}"')
            elif not self.strict:
                parts.append(f' {key}="{_attr(value)}"')
        return "".join(parts)

    def extensions(self, items: Sequence[ExtensionText], indent: str) -> None:
        out = self.out
        for item in items:
            if self.strict and not (isinstance(item, Extension) and item.parsed):
                _check_extension(str(item))
            out.append(f"{indent}{item}\n")

    # -- document ------------------------------------------------------------------------
    def document(self, rspec: RSpec) -> str:
        out = self.out
        out.append('<?xml version="1.0" encoding="UTF-8"?>\n')
        out.append(self.root_start(rspec))
        for node in rspec.nodes:
            self.node(node)
        for link in rspec.links:
            self.link(link)
        if rspec.init_script is not None:
            out.append(f"  <{ext.SFA_EXT_PREFIX}:init_script>"
                       f"{rspec.init_script.translate(_TEXT_ESCAPES)}"
                       f"</{ext.SFA_EXT_PREFIX}:init_script>\n")
        self.extensions(rspec.extensions, "  ")
        out.append("</rspec>\n")
        return "".join(out)

    def root_start(self, rspec: RSpec) -> str:
        locations = [(GENI_NS, geni_schema_url(self.type))]
        if _uses_sfa_extension(rspec):
            locations.append((ext.SFA_EXT_NS, ext.SFA_EXT_SCHEMA))
        if any(item.startswith(_OPSTATE_START) for item in rspec.extensions):
            locations.append((OPSTATE_NS, OPSTATE_SCHEMA))
        known = {ns for ns, _ in locations}
        locations += [(ns, url) for ns, url in rspec.schema_locations.items() if ns not in known]
        schema_location = " ".join(f"{ns} {url}" for ns, url in locations)
        extra = {k: v for k, v in rspec.extra_attrs.items() if not k.startswith(f"{{{XSI_NS}}}")}
        attrs = self.attrs("rspec", [
            ("type", self.type),
            ("generated", format_rfc3339(rspec.generated) if rspec.generated else None),
            ("expires", format_rfc3339(rspec.expires) if rspec.expires else None),
            ("generated_by", rspec.generated_by),
        ], extra)
        return (
            f'<rspec xmlns="{GENI_NS}" xmlns:xsi="{XSI_NS}" '
            f'xmlns:{ext.SFA_EXT_PREFIX}="{ext.SFA_EXT_NS}" '
            f'xsi:schemaLocation="{_attr(schema_location)}"{attrs}>\n'
        )

    def node(self, node: Node) -> None:
        if self.type == AD and self.strict and self.plain_ad_node(node):
            return
        out = self.out
        out.append("  <node" + self.attrs("node", [
            ("component_id", node.component_id),
            ("component_manager_id", node.component_manager_id),
            ("component_name", node.component_name),
            ("client_id", node.client_id),
            ("sliver_id", node.sliver_id),
            ("exclusive", node.exclusive),
        ], node.extra_attrs) + ">\n")
        for hardware_type in node.hardware_types:
            self.simple("hardware_type", [("name", hardware_type.name)],
                        hardware_type.extensions, "    ")
        for sliver_type in node.sliver_types:
            self.sliver_type(sliver_type)
        if node.location is not None:
            loc = node.location
            out.append("    <location" + self.attrs("location", [
                ("country", loc.country), ("latitude", loc.latitude),
                ("longitude", loc.longitude)]) + "/>\n")
        if node.available is not None and (self.type == AD or not self.strict):
            out.append("    <available" + self.attrs("available", [("now", node.available)])
                       + "/>\n")
        for iface in node.interfaces:
            self.interface(iface)
        if node.services:
            self.services(node.services)
        self.sfa_node_extension(node)
        self.extensions(node.extensions, "    ")
        out.append("  </node>\n")

    def plain_ad_node(self, node: Node) -> bool:
        """The fast path: an advertised node with nothing unusual, from one template each.

        Returns False (having written nothing) when the node needs the general path.
        """
        if (node.extra_attrs or node.extensions or node.services or node.component_id is None
                or node.component_manager_id is None or node.exclusive is None):
            return False
        name = node.component_name
        parts = [
            f'  <node component_id="{_attr(node.component_id)}" '
            f'component_manager_id="{_attr(node.component_manager_id)}"'
            + (f' component_name="{_attr(name)}"' if name is not None else "")
            + (' exclusive="true">\n' if node.exclusive else ' exclusive="false">\n')
        ]
        for hardware in node.hardware_types:
            if hardware.extensions or hardware.name is None:
                return False
            parts.append(f'    <hardware_type name="{_attr(hardware.name)}"/>\n')
        for sliver in node.sliver_types:
            if sliver.extensions or sliver.disk_images or sliver.name is None:
                return False
            parts.append(f'    <sliver_type name="{_attr(sliver.name)}"/>\n')
        loc = node.location
        if loc is not None:
            if loc.country is None:
                return False
            parts.append(
                f'    <location country="{_attr(loc.country)}"'
                + (f' latitude="{_attr(loc.latitude)}"' if loc.latitude is not None
                   else "")
                + (f' longitude="{_attr(loc.longitude)}"' if loc.longitude is not None
                   else "")
                + "/>\n"
            )
        if node.available is not None:
            parts.append('    <available now="true"/>\n' if node.available
                         else '    <available now="false"/>\n')
        for iface in node.interfaces:
            if (iface.ips or iface.extensions or iface.extra_attrs or iface.component_id is None
                    or iface.component_name or iface.role or iface.public_ipv4):
                return False
            parts.append(f'    <interface component_id="{_attr(iface.component_id)}"/>\n')
        self.out.extend(parts)
        self.sfa_node_extension(node)
        self.out.append("  </node>\n")
        return True

    def simple(self, element: str, pairs: list[tuple[str, object]],
               extensions: Sequence[ExtensionText],
               indent: str) -> None:
        attrs = self.attrs(element, pairs)
        if not extensions:
            self.out.append(f"{indent}<{element}{attrs}/>\n")
            return
        self.out.append(f"{indent}<{element}{attrs}>\n")
        self.extensions(extensions, indent + "  ")
        self.out.append(f"{indent}</{element}>\n")

    def sliver_type(self, sliver_type: SliverType) -> None:
        attrs = self.attrs("sliver_type", [("name", sliver_type.name)])
        if not sliver_type.disk_images and not sliver_type.extensions:
            self.out.append(f"    <sliver_type{attrs}/>\n")
            return
        self.out.append(f"    <sliver_type{attrs}>\n")
        for image in sliver_type.disk_images:
            self.simple("disk_image", [
                ("name", image.name), ("os", image.os), ("version", image.version),
                ("description", image.description), ("default", image.default),
            ], image.extensions, "      ")
        self.extensions(sliver_type.extensions, "      ")
        self.out.append("    </sliver_type>\n")

    def interface(self, iface: Interface) -> None:
        attrs = self.attrs("interface", [
            ("component_id", iface.component_id), ("client_id", iface.client_id),
            ("sliver_id", iface.sliver_id), ("component_name", iface.component_name),
            ("role", iface.role), ("public_ipv4", iface.public_ipv4),
            ("mac_address", iface.mac_address),
        ], iface.extra_attrs)
        if not iface.ips and not iface.extensions:
            self.out.append(f"    <interface{attrs}/>\n")
            return
        self.out.append(f"    <interface{attrs}>\n")
        for ip in iface.ips:
            self.out.append("      <ip" + self.attrs("ip", [
                ("address", ip.address), ("netmask", ip.netmask), ("type", ip.type)]) + "/>\n")
        self.extensions(iface.extensions, "      ")
        self.out.append("    </interface>\n")

    def services(self, services: Services) -> None:
        out = self.out
        out.append("    <services>\n")
        for login in services.logins:
            out.append("      <login" + self.attrs("login", [
                ("authentication", login.authentication), ("hostname", login.hostname),
                ("port", login.port), ("username", login.username)]) + "/>\n")
        for install in services.installs:
            out.append("      <install" + self.attrs("install", [
                ("url", install.url), ("install_path", install.install_path),
                ("file_type", install.file_type)]) + "/>\n")
        for execute in services.executes:
            out.append("      <execute" + self.attrs("execute", [
                ("shell", execute.shell), ("command", execute.command)]) + "/>\n")
        self.extensions(services.extensions, "      ")
        out.append("    </services>\n")

    def sfa_node_extension(self, node: Node) -> None:
        p = ext.SFA_EXT_PREFIX
        if node.resources is not None:
            res = node.resources
            load = f' load="{res.load!r}"' if res.load is not None else ""
            if res.enforced is not None:
                load += f' enforced="{" ".join(res.enforced)}"'
            self.out.append(f"    <{p}:resources{load}>\n      <{p}:capacity"
                            + _amounts(res.capacity) + "/>\n")
            if res.free is not None:
                self.out.append(f"      <{p}:free" + _amounts(res.free) + "/>\n")
            self.out.append(f"    </{p}:resources>\n")
        if node.resource_request is not None:
            self.out.append(f"    <{p}:request" + _amounts(node.resource_request) + "/>\n")

    def link(self, link: Link) -> None:
        out = self.out
        out.append("  <link" + self.attrs("link", [
            ("component_id", link.component_id), ("client_id", link.client_id),
            ("sliver_id", link.sliver_id), ("component_name", link.component_name),
            ("vlantag", link.vlantag),
        ], link.extra_attrs) + ">\n")
        for manager in link.component_managers:
            out.append(f'    <component_manager name="{_attr(manager)}"/>\n')
        for ref in link.interface_refs:
            out.append("    <interface_ref" + self.attrs("interface_ref", [
                ("client_id", ref.client_id), ("component_id", ref.component_id),
                ("sliver_id", ref.sliver_id)]) + "/>\n")
        for prop in link.properties:
            out.append("    <property" + self.attrs("property", [
                ("source_id", prop.source_id), ("dest_id", prop.dest_id),
                ("capacity", prop.capacity), ("latency", prop.latency),
                ("packet_loss", prop.packet_loss)]) + "/>\n")
        for link_type in link.link_types:
            out.append(f'    <link_type name="{_attr(link_type)}"/>\n')
        self.extensions(link.extensions, "    ")
        out.append("  </link>\n")


def _amounts(amounts: ext.ResourceAmounts) -> str:
    a = amounts
    return (
        (f' cpu_share="{int(a.cpu_share)}"' if a.cpu_share is not None else "")
        + (f' memory_mb="{int(a.memory_mb)}"' if a.memory_mb is not None else "")
        + (f' disk_mb="{int(a.disk_mb)}"' if a.disk_mb is not None else "")
        + (f' tasks="{int(a.tasks)}"' if a.tasks is not None else "")
        + (f' bandwidth_kbps="{int(a.bandwidth_kbps)}"' if a.bandwidth_kbps is not None else "")
    )


def _uses_sfa_extension(rspec: RSpec) -> bool:
    if rspec.init_script is not None:
        return True
    return any(node.resources is not None or node.resource_request is not None
               for node in rspec.nodes)


def _check_extension(item: str) -> None:
    """An extension string must be one well-formed element (it is pasted verbatim)."""
    try:
        parse_xml(item, what="RSpec extension")
    except BadArgs as exc:
        raise BadArgs(f"an extension is not one well-formed XML element: {exc}") from None

