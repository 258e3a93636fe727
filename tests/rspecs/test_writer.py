"""The strict writer: what we write validates against the official schemas and round-trips."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from sfa.errors import BadArgs
from sfa.rspecs.builder import Request, manifest
from sfa.rspecs.model import (
    GENI_NS,
    IP,
    OPSTATE_NS,
    XSI_NS,
    Interface,
    InterfaceRef,
    Link,
    Login,
    Node,
    ResourceAmounts,
    RSpec,
    Services,
    SliverType,
)
from sfa.rspecs.reader import read_rspec
from sfa.rspecs.validate import validate
from sfa.rspecs.writer import write_rspec

from .conftest import make_node


def _schema_location(text: str) -> str:
    return etree.fromstring(text.encode()).get(f"{{{XSI_NS}}}schemaLocation")


def test_advertisement_validates_and_round_trips(ad_model: RSpec, schemas_dir: Path) -> None:
    ad_model.expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    text = write_rspec(ad_model)
    assert validate(text, schemas_dir) == []
    assert read_rspec(text, expected_type="advertisement") == ad_model
    assert f"{GENI_NS} {GENI_NS}/ad.xsd" in _schema_location(text)
    assert 'expires="2030-01-02T03:04:05Z"' in text


def test_advertisement_declares_our_opstate_machine(ad_model: RSpec, schemas_dir: Path) -> None:
    root = etree.fromstring(write_rspec(ad_model).encode())
    opstate = root.find(f"{{{OPSTATE_NS}}}rspec_opstate")
    assert opstate is not None and opstate.get("start") == "geni_notready"
    moves = {
        (state.get("name"), move.get("name") or move.get("type"), move.get("next"))
        for state in opstate.iter(f"{{{OPSTATE_NS}}}state") for move in state
        if move.get("next")
    }
    assert ("geni_notready", "geni_start", "geni_configuring") in moves
    assert ("geni_configuring", "geni_success", "geni_ready") in moves
    assert ("geni_configuring", "geni_failure", "geni_failed") in moves
    assert ("geni_ready", "geni_stop", "geni_stopping") in moves
    assert ("geni_ready", "geni_restart", "geni_configuring") in moves
    assert OPSTATE_NS in _schema_location(etree.tostring(root).decode())
    # The opstate XSD itself accepts it (validated through the catalog, strictly).
    xsd = etree.XMLSchema(etree.parse(str(schemas_dir / "rspec/ext/opstate/1/ad.xsd")))
    assert xsd.validate(etree.ElementTree(opstate)), xsd.error_log


def test_request_from_builder_validates(schemas_dir: Path) -> None:
    text = (Request()
            .node("n1", component_id="urn:publicid:IDN+plc:site+node+n1",
                  component_manager_id="urn:publicid:IDN+plc+authority+am",
                  sliver_type="sfa-vm", disk_image="ubuntu-22", exclusive=False)
            .node("n2", sliver_type="sfa-vm", hardware_type="pc", cpu_share=20, memory_mb=512)
            .interface("n1", "n1:data", ip="10.0.0.1", netmask="255.255.255.0")
            .link("lan", "n1", "n2", link_type="lan", capacity_kbps=100_000)
            .install("n1", "http://example.org/x.tgz", "/local")
            .execute("n1", "echo 'hi' > /tmp/x && true")
            .init_script("#!/bin/sh\necho <ready> & done\n")
            .to_xml())
    assert validate(text, schemas_dir) == []
    model = read_rspec(text, expected_type="request")
    assert [n.client_id for n in model.nodes] == ["n1", "n2"]
    assert model.nodes[1].resource_request == ResourceAmounts(cpu_share=20, memory_mb=512)
    assert model.init_script == "#!/bin/sh\necho <ready> & done\n"
    assert [r.client_id for r in model.links[0].interface_refs] == ["n1:if1", "n2:if0"]
    assert model.nodes[0].services.executes[0].command == "echo 'hi' > /tmp/x && true"
    assert read_rspec(write_rspec(model)) == model


def test_manifest_validates_and_drops_what_the_type_cannot_carry(schemas_dir: Path) -> None:
    node = make_node(1)
    node.client_id = "n1"
    node.sliver_id = "urn:publicid:IDN+plc+sliver+7"
    node.resource_request = ResourceAmounts(cpu_share=10)
    node.interfaces = [Interface(client_id="n1:if0", sliver_id="urn:publicid:IDN+plc+sliver+8",
                                 mac_address="02:00:00:00:00:01", role="experimental",
                                 ips=[IP("10.0.0.1", "255.255.255.0", "ipv4")])]
    node.services = Services(logins=[Login("ssh-keys", "n1.example.org", 22, "alice")])
    link = Link(client_id="l1", vlantag="any", interface_refs=[InterfaceRef("n1:if0")])
    text = write_rspec(manifest([node], links=[link]))
    assert validate(text, schemas_dir) == []
    back = read_rspec(text, expected_type="manifest").nodes[0]
    assert back.available is None  # only advertisements carry availability
    assert back.interfaces[0].role is None  # not a manifest attribute
    assert back.services.logins[0] == Login("ssh-keys", "n1.example.org", 22, "alice")
    assert back.resources == node.resources and back.resource_request == node.resource_request


@pytest.mark.parametrize("rspec, missing", [
    (RSpec("request", nodes=[Node(component_id="urn:x")]), "client_id"),
    (RSpec("advertisement", nodes=[Node(component_id="urn:x", component_manager_id="urn:am")]),
     "exclusive"),
    (RSpec("request", nodes=[Node(client_id="a", sliver_types=[SliverType()])]), "name"),
    (RSpec("manifest", links=[Link(client_id="l")]), "vlantag"),
])
def test_strict_writer_refuses_what_would_not_validate(rspec: RSpec, missing: str) -> None:
    before = copy.deepcopy(rspec)
    with pytest.raises(BadArgs) as info:
        write_rspec(rspec)
    assert missing in info.value.message
    assert rspec == before


def test_strict_writer_refuses_a_broken_extension() -> None:
    rspec = RSpec("request", nodes=[Node(client_id="a", extensions=["<x:y"])])
    with pytest.raises(BadArgs):
        write_rspec(rspec)
    assert "<x:y" in write_rspec(rspec, strict=False)


def test_unknown_type_is_refused() -> None:
    with pytest.raises(BadArgs):
        write_rspec(RSpec("wish-list"))


def test_foreign_attributes_round_trip() -> None:
    emulab = "http://www.protogeni.net/resources/rspec/ext/emulab/1"
    node = Node(client_id="a", extra_attrs={f"{{{emulab}}}routable_control_ip": "true"})
    text = write_rspec(RSpec("request", nodes=[node]))
    assert read_rspec(text).nodes[0] == node
