"""The builder's extension hook: typed objects with `to_element()` placed at the top, in a node
or in a link; our own namespace and a foreign one (shared VLAN) are validated against their
schemas, and a broken one is caught by validation, not hidden by the hook."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from sfa.errors import BadArgs
from sfa.rspecs import builder
from sfa.rspecs.builder import Request
from sfa.rspecs.extension import SFA_EXT_NS, SFA_EXT_SCHEMA
from sfa.rspecs.reader import read_rspec
from sfa.rspecs.validate import validate

VLAN_NS = "http://www.protogeni.net/resources/rspec/ext/shared-vlan/1"


@dataclass
class SliverRequest:
    """Ours: what one sliver asks for, as <sfa:request .../>."""

    cpu_share: int
    schema_location = SFA_EXT_SCHEMA

    def to_element(self) -> etree._Element:
        return etree.Element(f"{{{SFA_EXT_NS}}}request", cpu_share=str(self.cpu_share))


@dataclass
class SharedVlan:
    """Foreign (ProtoGENI): attach a link to a shared VLAN."""

    name: str | None
    schema_location = f"{VLAN_NS}/request.xsd"

    def to_element(self) -> etree._Element:
        element = etree.Element(f"{{{VLAN_NS}}}link_shared_vlan", nsmap={"s": VLAN_NS})
        if self.name is not None:
            element.set("name", self.name)
        return element


@dataclass
class Raw:
    element: etree._Element

    def to_element(self) -> etree._Element:
        return self.element


def _two_nodes() -> Request:
    return Request().node("n1", sliver_type="sfa-container").node("n2").link("l1", "n1", "n2")


def test_ours_and_a_foreign_extension_validate_and_round_trip(schemas_dir: Path) -> None:
    text = (_two_nodes()
            .extend(SliverRequest(cpu_share=7), node="n1")
            .extend(SharedVlan("mesoscale"), link="l1")
            .to_xml())
    assert validate(text, schemas_dir) == []
    assert f"{VLAN_NS} {VLAN_NS}/request.xsd" in text  # its schema is declared
    model = read_rspec(text, expected_type="request")
    assert model.nodes[0].resource_request is not None
    assert model.nodes[0].resource_request.cpu_share == 7
    assert any("link_shared_vlan" in item and 'name="mesoscale"' in item
               for item in model.links[0].extensions)


def test_a_top_level_extension_validates(schemas_dir: Path) -> None:
    text = _two_nodes().extend(SharedVlan("top")).to_xml()
    assert validate(text, schemas_dir) == []
    assert any("link_shared_vlan" in item for item in read_rspec(text).extensions)


@pytest.mark.parametrize("extension", [SliverRequest(cpu_share=-1), SharedVlan(None)],
                         ids=["ours-negative-amount", "foreign-missing-name"])
def test_a_broken_extension_is_caught_by_validation(extension: Any, schemas_dir: Path) -> None:
    text = _two_nodes().extend(extension, node="n2").to_xml()
    assert validate(text, schemas_dir) != []


def test_extend_refuses_what_it_cannot_place() -> None:
    request = _two_nodes()
    with pytest.raises(BadArgs, match="its own namespace"):
        request.extend(Raw(etree.Element("bare")))
    with pytest.raises(BadArgs, match="its own namespace"):
        request.extend(Raw(etree.Element("{http://www.geni.net/resources/rspec/3}node")))
    with pytest.raises(BadArgs, match="no node 'n9'"):
        request.extend(SharedVlan("x"), node="n9")
    with pytest.raises(BadArgs, match="no link 'l9'"):
        request.extend(SharedVlan("x"), link="l9")
    with pytest.raises(BadArgs, match="not both"):
        request.extend(SharedVlan("x"), node="n1", link="l1")
    assert "link_shared_vlan" not in request.to_xml()


def docstring_example() -> str:
    """The builder module's example, run as written; the request text it builds."""
    doc = builder.__doc__ or ""
    block = doc.split("as geni-lib's extension objects do:\n", 1)[1]
    code = "\n".join(line[4:] for line in block.splitlines() if re.match(r"^( {4}|$)", line))
    namespace: dict[str, Any] = {}
    exec(compile(code, "builder docstring", "exec"), namespace)  # noqa: S102 - our own docs
    return str(namespace["xml"])


def test_the_builder_docstring_example_runs_and_validates(schemas_dir: Path) -> None:
    text = docstring_example()
    assert validate(text, schemas_dir) == []
    assert [n.client_id for n in read_rspec(text).nodes] == ["n1", "n2"]
