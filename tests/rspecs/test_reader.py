"""The lenient reader: real samples, ProtoGENI v2, and refusals (security.md 13-16)."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from pathlib import Path

import pytest
from lxml import etree

from sfa.errors import BadArgs, BadVersion, GeniCode, SfaError, TooBig
from sfa.rspecs.builder import Request
from sfa.rspecs.model import GENI_NS, PG2_NS, Extension, Node
from sfa.rspecs.reader import read_rspec
from sfa.rspecs.summary import rspec_to_dict
from sfa.rspecs.writer import write_rspec

NS = {"r": GENI_NS}


def _count(path: Path, xpath: str) -> int:
    return int(etree.parse(str(path)).xpath(f"count({xpath})", namespaces=NS))


def test_every_sample_reads_with_counts_equal_to_xpath(sample_files: list[Path]) -> None:
    for path in sample_files:
        model = read_rspec(path.read_bytes())
        assert len(model.nodes) == _count(path, "/r:rspec/r:node"), path.name
        assert len(model.links) == _count(path, "/r:rspec/r:link"), path.name
        assert len(model.interfaces) == _count(path, "/r:rspec/r:node/r:interface"), path.name
        refs = sum(len(link.interface_refs) for link in model.links)
        assert refs == _count(path, "/r:rspec/r:link/r:interface_ref"), path.name


def test_every_sample_survives_a_round_trip(sample_files: list[Path]) -> None:
    for path in sample_files:
        model = read_rspec(path.read_bytes())
        again = read_rspec(write_rspec(model, strict=False))
        assert again == model, path.name


def test_unknown_extensions_are_kept(samples_dir: Path) -> None:
    path = samples_dir / "rspecs/manifest/KDahlgren_ceph-deploy-popper__geni__manifest.xml"
    model = read_rspec(path.read_bytes())
    node = model.nodes[0]
    assert any("vnode" in item and 'hardware_type="c220g5"' in item for item in node.extensions)
    assert any("console" in item for item in node.services.extensions)
    assert node.services.logins[0].port == 22
    assert (node.sliver_types[0].disk_images[0].name or "").endswith("UBUNTU18-64-STD")
    # The re-written document still carries the emulab elements, in their namespace.
    rewritten = etree.fromstring(write_rspec(model, strict=False).encode())
    emulab = "http://www.protogeni.net/resources/rspec/ext/emulab/1"
    assert len(rewritten.findall(f".//{{{emulab}}}vnode")) == 3


def test_lenient_on_schema_breakage(samples_dir: Path) -> None:
    exogeni = samples_dir / (
        "rspecs/ad/GENI-NSF_geni-portal__portal__www__common__map__"
        "rspec-exogeni-net-bbnvmsite.xml")
    model = read_rspec(exogeni.read_bytes(), expected_type="advertisement")
    assert any(hw.name is None for node in model.nodes for hw in node.hardware_types)
    mislabelled = samples_dir / "rspecs/manifest/brihand_geni-mini__rspec.xml"
    model = read_rspec(mislabelled.read_bytes())
    assert model.type == "request"
    assert model.nodes[0].sliver_id == "urn:publicid:IDN+instageni.wisc.edu+sliver+84846"


def test_protogeni_v2_reads_into_the_same_model(samples_dir: Path) -> None:
    path = samples_dir / "rspecs/request" / (
        "kaimast_geni-lib3__tools__scaleup__sample_output_rspec__custom5-2LAN.xml")
    text = path.read_text()
    pg2 = text.replace(GENI_NS, PG2_NS)
    assert read_rspec(pg2) == read_rspec(text)


def test_type_is_case_insensitive_and_checked() -> None:
    doc = f'<rspec xmlns="{GENI_NS}" type="Manifest"><node client_id="a"/></rspec>'
    assert read_rspec(doc, expected_type="manifest").type == "manifest"
    with pytest.raises(BadArgs) as info:
        read_rspec(doc, expected_type="request")
    assert info.value.code == GeniCode.BADARGS
    assert "expected a request" in info.value.message


@pytest.mark.parametrize("doc, error", [
    ('<rspec xmlns="http://www.geni.net/resources/rspec/4" type="request"/>', BadVersion),
    ('<rspec type="request"/>', BadVersion),
    (f'<credential xmlns="{GENI_NS}"/>', BadArgs),
    (f'<rspec xmlns="{GENI_NS}"/>', BadArgs),
    (f'<rspec xmlns="{GENI_NS}" type="wish-list"/>', BadArgs),
    ("<rspec", BadArgs),
    ("", BadArgs),
])
def test_wrong_namespace_version_or_shape_is_refused(doc: str, error: type[SfaError]) -> None:
    with pytest.raises(error) as info:
        read_rspec(doc)
    assert info.value.code == error.code


@pytest.mark.parametrize("doc", [
    f'<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    f'<rspec xmlns="{GENI_NS}" type="request"><node client_id="&b;"/></rspec>',
    f'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    f'<rspec xmlns="{GENI_NS}" type="request"><node client_id="&x;"/></rspec>',
    f'<rspec xmlns="{GENI_NS}" xmlns:xi="http://www.w3.org/2001/XInclude" type="request">'
    f'<xi:include href="file:///etc/passwd"/></rspec>',
])
def test_entities_dtds_and_xinclude_are_refused(doc: str) -> None:
    with pytest.raises(BadArgs) as info:
        read_rspec(doc)
    assert info.value.code == GeniCode.BADARGS


def test_size_limits() -> None:
    padding = "<!--" + "x" * 2000 + "-->"
    doc = f'<rspec xmlns="{GENI_NS}" type="request">{padding}</rspec>'
    with pytest.raises(TooBig) as info:
        read_rspec(doc, max_bytes=1000)
    assert info.value.code == GeniCode.TOOBIG
    deep = "<a>" * 100 + "</a>" * 100
    with pytest.raises(TooBig):
        read_rspec(f'<rspec xmlns="{GENI_NS}" type="request">{deep}</rspec>')


def test_a_request_of_100000_nodes_is_refused() -> None:
    nodes = "".join(f'<node client_id="n{i}"/>' for i in range(100_000))
    doc = f'<rspec xmlns="{GENI_NS}" type="request">{nodes}</rspec>'
    with pytest.raises(TooBig) as info:
        read_rspec(doc)
    assert info.value.code == GeniCode.TOOBIG
    assert "100000 nodes" in info.value.message
    fifty = "".join(f'<node client_id="n{i}"/>' for i in range(50))
    small = f'<rspec xmlns="{GENI_NS}" type="request">{fifty}</rspec>'
    assert len(read_rspec(small, max_nodes=50).nodes) == 50
    with pytest.raises(TooBig):
        read_rspec(small, max_nodes=49)


HOSTILE = ["a'b", 'a"b', "a<b>", "../../etc/passwd", "x\ny", "$(rm -rf /); `id` | &", "é✓"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_data(name: str) -> None:
    text = Request().node(name, component_id=f"urn:publicid:IDN+x+node+{name}").to_xml()
    node = read_rspec(text).nodes[0]
    assert node.client_id == name
    assert node.component_id == f"urn:publicid:IDN+x+node+{name}"


def test_nul_cannot_be_written(ad_model) -> None:
    before = copy.deepcopy(ad_model)
    bad = copy.deepcopy(ad_model)
    bad.nodes[0].component_name = "n\x00"
    with pytest.raises(BadArgs) as info:
        write_rspec(bad)
    assert "NUL" in info.value.message
    assert ad_model == before


def test_a_login_port_that_is_not_a_number_reads_as_none() -> None:
    body = (f'<rspec xmlns="{GENI_NS}" type="manifest"><node client_id="n"><services>'
            '<login authentication="ssh-keys" hostname="h" port="{port}" username="u"/>'
            '</services></node></rspec>')
    assert read_rspec(body.replace("{port}", " 2222 ")).nodes[0].services.logins[0].port == 2222
    for port in ("ssh", ""):
        login = read_rspec(body.replace("{port}", port)).nodes[0].services.logins[0]
        assert (login.port, login.hostname, login.username) == (None, "h", "u")


_FOREIGN = (
    f'<rspec xmlns="{GENI_NS}" xmlns:e="http://example.org/e" type="advertisement">'
    '<node component_id="urn:publicid:IDN+x+node+n1"><e:fd name="cpu" weight="2"/>'
    '<e:fd  weight="1" name="ram"><!-- c --></e:fd></node>'
    '<e:top b="2" a="1"/></rspec>'
)
_FD_CPU = '<e:fd xmlns:e="http://example.org/e" name="cpu" weight="2"></e:fd>'
_FD_RAM = '<e:fd xmlns:e="http://example.org/e" name="ram" weight="1"></e:fd>'


def test_extensions_read_as_their_canonical_xml() -> None:
    model = read_rspec(_FOREIGN)
    node = model.nodes[0]
    assert node.extensions == [_FD_CPU, _FD_RAM]  # attribute order, comments, blanks: canonical
    assert [str(item) for item in node.extensions] == [_FD_CPU, _FD_RAM]
    assert model.extensions == ['<e:top xmlns:e="http://example.org/e" a="1" b="2"></e:top>']
    assert {node.extensions[0]: 1}[_FD_CPU] == 1  # hashes as its text
    assert node.extensions[1].startswith("<e:fd")


def test_an_extension_is_a_value_and_makes_a_fresh_element() -> None:
    node = read_rspec(_FOREIGN).nodes[0]
    assert copy.deepcopy(node).extensions == node.extensions
    extension = node.extensions[0]
    assert isinstance(extension, Extension)
    element = extension.to_element()
    assert (element.tag, element.get("name")) == ("{http://example.org/e}fd", "cpu")
    again = read_rspec(_FOREIGN).nodes[0]
    assert again.extensions == node.extensions and again.extensions[0] is not node.extensions[0]


def test_extensions_written_back_read_the_same() -> None:
    model = read_rspec(_FOREIGN)
    text = write_rspec(model, strict=False)
    assert read_rspec(text) == model
    assert _FD_RAM in text


def test_the_enforced_knobs_of_a_node_read_back(ad_model) -> None:
    """`<sfa:resources enforced="...">`: the knobs a node enforces; absent means unknown."""
    ad_model.nodes[0].resources.enforced = ("cpu_share", "memory_mb", "tasks")
    ad_model.nodes[1].resources.enforced = ()
    text = write_rspec(ad_model)
    assert 'enforced="cpu_share memory_mb tasks"' in text and 'enforced=""' in text
    assert read_rspec(text) == ad_model
    third = read_rspec(text).nodes[2].resources
    assert third is not None and third.enforced is None


_OUT_OF_PLACE = (
    f'<rspec xmlns="{GENI_NS}" xmlns:e="http://example.org/e" type="advertisement">'
    '<node component_id="n1">'
    '<ip address="10.0.0.9"/>'  # an ip belongs in an interface
    '<e:wrap><interface component_id="hidden"/></e:wrap>'
    '<interface component_id="i1"><ip address="10.0.0.1"/><e:x/><ip address="10.0.0.2"/>'
    '</interface>'
    '<sliver_type name="vm"><disk_image name="img"/><location country="US"/></sliver_type>'
    '</node>'
    '<link component_id="l1"><node component_id="not-a-node"/><link_type name="lan"/></link>'
    '<e:top><node component_id="not-a-node-either"/></e:top>'
    '</rspec>'
)


def test_known_elements_count_only_where_they_belong() -> None:
    """A known element elsewhere than its place is part of an extension, not of the model."""
    model = read_rspec(_OUT_OF_PLACE)
    assert [n.component_id for n in model.nodes] == ["n1"]
    node = model.nodes[0]
    assert [i.component_id for i in node.interfaces] == ["i1"]
    assert [ip.address for ip in node.interfaces[0].ips] == ["10.0.0.1", "10.0.0.2"]
    assert node.location is None
    assert [str(e).split(">")[0] for e in node.extensions] == [
        f'<ip xmlns="{GENI_NS}" address="10.0.0.9"', '<e:wrap xmlns:e="http://example.org/e"']
    assert 'component_id="hidden"' in node.extensions[1]
    assert node.interfaces[0].extensions == ['<e:x xmlns:e="http://example.org/e"></e:x>']
    assert "location" in node.sliver_types[0].extensions[0]
    assert [d.name for d in node.sliver_types[0].disk_images] == ["img"]
    link = model.links[0]
    assert link.link_types == ["lan"] and "not-a-node" in link.extensions[0]
    assert len(model.extensions) == 1 and "not-a-node-either" in model.extensions[0]
    assert read_rspec(write_rspec(model, strict=False)) == model


def test_lazy_extensions_behave_as_lists() -> None:
    """The reader's extension lists are found on first use; copies, pickles, dicts see them."""
    def node() -> Node:
        return read_rspec(_FOREIGN).nodes[0]

    assert copy.copy(node()).extensions == [_FD_CPU, _FD_RAM]
    assert pickle.loads(pickle.dumps(node())).extensions  # noqa: S301 - our own bytes == [_FD_CPU, _FD_RAM]
    assert dataclasses.asdict(node())["extensions"] == [_FD_CPU, _FD_RAM]
    assert rspec_to_dict(read_rspec(_FOREIGN))["nodes"][0]["extensions"] == [_FD_CPU, _FD_RAM]
    edited = node()
    edited.extensions.append("<e:more/>")
    del edited.extensions[0]
    assert edited.extensions == [_FD_RAM, "<e:more/>"] and len(edited.extensions) == 2
    assert not read_rspec(f'<rspec xmlns="{GENI_NS}" type="request"><node client_id="a"/>'
                          '</rspec>').nodes[0].extensions


def test_blank_text_goes_but_not_the_text_of_an_element() -> None:
    """Whitespace between elements means nothing in an RSpec and is not kept; whitespace that
    is an element's whole text, and mixed content, are."""
    doc = (f'<rspec xmlns="{GENI_NS}" xmlns:e="http://example.org/e" '
           'xmlns:sfa="http://sfa.dev/resources/rspec/ext/sfa/1" type="request">\n'
           '  <sfa:init_script>   </sfa:init_script>\n'
           '  <node client_id="a">\n    <e:note>  </e:note>\n'
           '    <e:mixed>one <e:b/> two</e:mixed>\n    <e:list>\n      <e:i/>\n    </e:list>\n'
           '  </node>\n</rspec>')
    model = read_rspec(doc)
    assert model.init_script == "   "
    assert model.nodes[0].extensions == [
        '<e:note xmlns:e="http://example.org/e">  </e:note>',
        '<e:mixed xmlns:e="http://example.org/e">one <e:b></e:b> two</e:mixed>',
        '<e:list xmlns:e="http://example.org/e"><e:i></e:i></e:list>',
    ]
