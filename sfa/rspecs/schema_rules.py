"""Which attributes the official GENI v3 schemas allow and require, per RSpec type and element.

The writer consults these tables in strict mode so that every document it emits validates
(`../shared/schemas/rspec/3/{ad,request,manifest}.xsd`).
"""

from __future__ import annotations

from sfa.rspecs.model import AD, MANIFEST, REQUEST

_F = frozenset

_COMMON: dict[str, frozenset[str]] = {
    "rspec": _F({"type", "generated", "expires", "generated_by"}),
    "hardware_type": _F({"name"}),
    "sliver_type": _F({"name"}),
    "disk_image": _F({"name", "os", "version", "description"}),
    "location": _F({"country", "latitude", "longitude"}),
    "ip": _F({"address", "netmask", "type"}),
    "login": _F({"authentication", "hostname", "port"}),
    "install": _F({"url", "install_path"}),
    "execute": _F({"shell", "command"}),
    "property": _F({"source_id", "dest_id", "capacity", "latency", "packet_loss"}),
}

_ALLOWED: dict[str, dict[str, frozenset[str]]] = {
    AD: {
        **_COMMON,
        "node": _F({"component_id", "component_manager_id", "component_name", "exclusive"}),
        "available": _F({"now"}),
        "disk_image": _COMMON["disk_image"] | {"default"},
        "interface": _F({"component_id", "component_name", "role", "public_ipv4"}),
        "install": _F({"file_type"}),
        "execute": _F({"shell"}),
        "link": _F({"component_id", "component_name"}),
        "interface_ref": _F({"component_id"}),
    },
    REQUEST: {
        **_COMMON,
        "node": _F({"client_id", "component_id", "component_manager_id", "component_name",
                    "exclusive"}),
        "interface": _F({"component_id", "client_id"}),
        "link": _F({"client_id"}),
        "interface_ref": _F({"client_id"}),
    },
    MANIFEST: {
        **_COMMON,
        "node": _F({"client_id", "component_id", "component_manager_id", "component_name",
                    "exclusive", "sliver_id"}),
        "login": _COMMON["login"] | {"username"},
        "interface": _F({"component_id", "client_id", "sliver_id", "mac_address"}),
        "link": _F({"client_id", "sliver_id", "vlantag"}),
        "interface_ref": _F({"client_id", "sliver_id", "component_id"}),
    },
}

_COMMON_REQUIRED: dict[str, tuple[str, ...]] = {
    "rspec": ("type",),
    "hardware_type": ("name",),
    "sliver_type": ("name",),
    "disk_image": ("name",),
    "location": ("country",),
    "ip": ("address",),
    "login": ("authentication",),
    "install": ("url", "install_path"),
    "execute": ("shell", "command"),
    "property": ("source_id", "dest_id"),
}

_REQUIRED: dict[str, dict[str, tuple[str, ...]]] = {
    AD: {
        **_COMMON_REQUIRED,
        "node": ("component_id", "component_manager_id", "exclusive"),
        "available": ("now",),
        "interface": ("component_id",),
        "install": ("file_type",),
        "execute": ("shell",),
        "link": ("component_id",),
        "interface_ref": ("component_id",),
    },
    REQUEST: {
        **_COMMON_REQUIRED,
        "node": ("client_id",),
        "interface": ("client_id",),
        "link": ("client_id",),
        "interface_ref": ("client_id",),
    },
    MANIFEST: {
        **_COMMON_REQUIRED,
        "node": ("client_id",),
        "interface": ("client_id",),
        "link": ("client_id", "vlantag"),
        "interface_ref": ("client_id",),
    },
}


def allowed_attributes(rspec_type: str, element: str) -> frozenset[str]:
    """The unqualified attributes `element` may carry in an RSpec of this type."""
    return _ALLOWED[rspec_type].get(element, frozenset())


def required_attributes(rspec_type: str, element: str) -> tuple[str, ...]:
    """The attributes `element` must carry in an RSpec of this type."""
    return _REQUIRED[rspec_type].get(element, ())
