"""The reader's fast path for plain advertised nodes gives exactly what the general path gives.

The general path is forced by putting the marker's name in a comment: such a document is never
split, and the reader ignores comments between the root's children.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfa.errors import BadArgs, GeniCode, TooBig
from sfa.rspecs.builder import advertisement
from sfa.rspecs.model import (
    GENI_NS,
    HardwareType,
    Interface,
    Location,
    Node,
    NodeResources,
    ResourceAmounts,
    RSpec,
    SliverType,
)
from sfa.rspecs.plain_nodes import MARKER_NAME, split_plain_nodes
from sfa.rspecs.reader import read_rspec
from sfa.rspecs.writer import write_rspec

from .conftest import AM, make_node

NODE = ('<node component_id="urn:publicid:IDN+x+node+{i}" component_manager_id="{am}" '
        'exclusive="false"><hardware_type name="pc"/></node>')


def general(text: str) -> RSpec:
    """Read `text` on the general path only."""
    after_root_tag = text.index(">", text.index("<rspec")) + 1
    return read_rspec(f"{text[:after_root_tag]}<!-- {MARKER_NAME} -->{text[after_root_tag:]}")


def document(body: str, extra_ns: str = "") -> str:
    return (f'<rspec xmlns="{GENI_NS}" xmlns:sfa="http://sfa.dev/resources/rspec/ext/sfa/1"'
            f'{extra_ns} type="advertisement">{body}</rspec>')


def plain(i: int) -> str:
    return NODE.format(i=i, am=AM)


def test_the_writers_advertisement_takes_the_fast_path_and_reads_back_equal(
        ad_model: RSpec) -> None:
    text = write_rspec(ad_model)
    split = split_plain_nodes(text, max_nodes=100)
    assert split is not None and split.node_count == 3
    assert "<node" not in split.remainder
    assert read_rspec(text) == ad_model == general(text)
    assert read_rspec(text.encode()) == ad_model


def test_unusual_nodes_take_the_general_path_in_document_order(ad_model: RSpec) -> None:
    odd = make_node(7)
    odd.extra_attrs = {"{urn:odd}flag": "1"}
    odd.hardware_types[0].extensions = ['<x xmlns="urn:odd"></x>']
    ad_model.nodes.insert(1, odd)
    ad_model.nodes.append(Node(component_id="urn:publicid:IDN+x+node+tab",
                               component_manager_id=AM, exclusive=True,
                               component_name="tab\there & <there>"))
    text = write_rspec(ad_model, strict=False)
    split = split_plain_nodes(text, max_nodes=100)
    assert split is not None and [len(run) for run in split.runs] == [1, 2]
    assert read_rspec(text) == ad_model == general(text)


@pytest.mark.parametrize("body", [
    # inside a comment, a CDATA section or a processing instruction: not nodes
    "<!-- " + plain(1) + " -->" + plain(2),
    '<x xmlns="urn:other"><![CDATA[' + plain(1) + "]]></x>" + plain(2),
    "<?pi " + plain(1) + "?>" + plain(2),
    # below an extension element, or where the default namespace is another one
    '<x xmlns="urn:other">' + plain(1) + "</x>" + plain(2),
    f'<wrap xmlns="{GENI_NS}">' + plain(1) + "</wrap>",
    # a node that looks plain but the sfa prefix means something else there
    plain(1).replace("</node>", '<sfa:resources><sfa:capacity tasks="1"/></sfa:resources>'
                     "</node>").replace("<node ", '<node xmlns:sfa="urn:not-ours" ', 1),
])
def test_text_that_is_not_a_plain_node_is_read_as_the_document_says(body: str) -> None:
    text = document(body)
    assert read_rspec(text) == general(text)


def test_sfa_prefix_bound_elsewhere_falls_back() -> None:
    body = plain(1).replace("</node>", '<sfa:resources><sfa:capacity tasks="1"/>'
                                       "</sfa:resources></node>")
    text = document(body).replace("http://sfa.dev/resources/rspec/ext/sfa/1", "urn:not-ours")
    model = read_rspec(text)
    assert model == general(text)
    assert model.nodes[0].resources is None and len(model.nodes[0].extensions) == 1


def test_a_document_naming_the_marker_is_not_split() -> None:
    text = document(f"<{MARKER_NAME} i=\"0\"/>" + plain(1))
    assert split_plain_nodes(text, max_nodes=10) is None
    model = read_rspec(text)
    assert len(model.nodes) == 1 and MARKER_NAME in model.extensions[0]


def test_bad_numbers_and_odd_values_read_like_the_general_path() -> None:
    body = plain(1).replace("</node>", '<sfa:resources load="high"><sfa:capacity cpu_share="1"'
                            ' memory_mb="1_000" tasks="-3"/><sfa:free cpu_share="x"/>'
                            "</sfa:resources></node>")
    text = document(body + plain(2))
    model = read_rspec(text)
    assert model == general(text)
    assert model.nodes[0].resources == NodeResources(
        ResourceAmounts(cpu_share=1, memory_mb=1000, tasks=-3), ResourceAmounts(), None)


def test_ill_formed_text_around_a_run_is_refused_like_the_general_path() -> None:
    for text in [document('<x a="' + plain(1) + '"/>'), document(plain(1) + "<x>"),
                 f'<!DOCTYPE r [<!ENTITY e "x">]>{document(plain(1) + "<x>&e;</x>")}']:
        with pytest.raises(BadArgs) as info:
            read_rspec(text)
        assert info.value.code == GeniCode.BADARGS


def test_node_limit_counts_fast_nodes() -> None:
    text = document("".join(plain(i) for i in range(30)) + '<node client_id="odd"/>')
    assert len(read_rspec(text, max_nodes=31).nodes) == 31
    with pytest.raises(TooBig) as info:
        read_rspec(text, max_nodes=30)
    assert info.value.code == GeniCode.TOOBIG and "31 nodes" in info.value.message
    with pytest.raises(TooBig, match="30 nodes"):
        read_rspec(document("".join(plain(i) for i in range(30))), max_nodes=29)


def test_byte_limit_applies_before_the_fast_path() -> None:
    text = document(plain(1))
    with pytest.raises(TooBig):
        read_rspec(text, max_bytes=len(text) - 1)
    assert len(read_rspec(text, max_bytes=len(text)).nodes) == 1


def test_bytes_in_another_encoding_take_the_general_path() -> None:
    text = '<?xml version="1.0" encoding="ISO-8859-1"?>' + document(
        plain(1).replace('name="pc"', 'name="caf\u00e9"'))
    model = read_rspec(text.encode("latin-1"))
    assert model.nodes[0].hardware_types[0].name == "caf\u00e9"


TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
               max_size=12).filter(lambda s: all(c >= " " or c in "\t\n\r" for c in s))
OPTIONAL_TEXT = st.none() | TEXT
AMOUNTS = st.builds(ResourceAmounts, *[st.none() | st.integers(-10, 10**12)] * 5)


@st.composite
def plain_like_nodes(draw: st.DrawFn) -> Node:
    return Node(
        component_id=draw(TEXT), component_manager_id=draw(TEXT),
        component_name=draw(OPTIONAL_TEXT), exclusive=draw(st.booleans()),
        hardware_types=[HardwareType(name) for name in draw(st.lists(TEXT, max_size=2))],
        sliver_types=[SliverType(name) for name in draw(st.lists(TEXT, max_size=2))],
        location=draw(st.none() | st.builds(Location, TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT)),
        available=draw(st.none() | st.booleans()),
        interfaces=[Interface(cid) for cid in draw(st.lists(TEXT, max_size=2))],
        resources=draw(st.none() | st.builds(
            NodeResources, AMOUNTS, st.none() | AMOUNTS,
            st.none() | st.floats(allow_nan=False, allow_infinity=False))),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(plain_like_nodes(), min_size=1, max_size=4))
def test_any_plain_like_advertisement_reads_the_same_on_both_paths(nodes: list[Node]) -> None:
    text = write_rspec(advertisement(nodes, aggregate_manager_id=AM), strict=False)
    fast = read_rspec(text)
    assert fast == general(text)
    assert len(fast.nodes) == len(nodes)
