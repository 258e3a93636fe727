"""The reader's fast path: plain advertised nodes read straight from the text.

This mirrors the writer's one-template fast path. A node whose text matches the template
exactly (attributes in the writer's order, values of printable ASCII without `"&<>` so that
no entity, character reference or whitespace normalisation can change them) becomes a model
Node here, with the same conversions as the general reader. Each run of such nodes is cut out
of the document and replaced by an empty marker element; the rest of the document goes
through the hardened parser and the general reader, which splices each run in at its marker.

The fast path is taken only when it is provably the same document: every marker must come
back as a direct child of the root, in order, with GENI v3 as the default namespace and the
`sfa` prefix bound to our extension (when a run uses it). Otherwise the caller reads the
whole document on the general path. The markers cannot be spoofed: a document that already
contains the marker's name is never split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from sfa.rspecs import extension as ext
from sfa.rspecs.model import (
    GENI_NS,
    HardwareType,
    Interface,
    Location,
    Node,
    NodeResources,
    ResourceAmounts,
    SliverType,
)

MARKER_NAME = "_sfa_plain_nodes_run"
MARKER_TAG = f"{{{GENI_NS}}}{MARKER_NAME}"
_NODE_START = '<node component_id="'

_WS = r"[ \t\r\n]*"
# Printable ASCII except " & < > : the attribute value is then exactly the text.
_VALUE = r"""[ !#-%'-;=?-~]*"""
_V = f"({_VALUE})"
# Amounts as plain decimal integers only, so that int() cannot fail (others: general path).
_AMOUNTS = "".join(f'(?: {name}="(-?[0-9]+)")?' for name in ext.AMOUNT_FIELDS)
_NODE_RE = re.compile(
    _WS + '<node component_id="' + _V + '" component_manager_id="' + _V + '"'
    + '(?: component_name="' + _V + '")? exclusive="(true|false)">'
    + f'((?:{_WS}<hardware_type name="{_VALUE}"/>)*)'
    + f'((?:{_WS}<sliver_type name="{_VALUE}"/>)*)'
    + f'(?:{_WS}<location country="{_V}"(?: latitude="{_V}")?(?: longitude="{_V}")?/>)?'
    + f'(?:{_WS}<available now="(true|false)"/>)?'
    + f'((?:{_WS}<interface component_id="{_VALUE}"/>)*)'
    + f'(?:{_WS}(<)sfa:resources(?: load="{_V}")?>{_WS}<sfa:capacity{_AMOUNTS}/>'
    + f'(?:{_WS}(<)sfa:free{_AMOUNTS}/>)?{_WS}</sfa:resources>)?'
    + _WS + "</node>"
)
_ENCODING_RE = re.compile(rb"""\A(?:\xef\xbb\xbf)?<\?xml[^>]*?encoding=["']([^"']*)["']""")


@dataclass(slots=True)
class PlainSplit:
    """The document without its plain node runs, and the runs read into the model."""

    remainder: str
    runs: list[list[Node]] = field(default_factory=list)
    uses_sfa_prefix: bool = False

    @property
    def node_count(self) -> int:
        return sum(len(run) for run in self.runs)


def split_plain_nodes(text: str | bytes, max_nodes: int) -> PlainSplit | None:
    """Cut the runs of plain nodes out of `text`; None when there is nothing to gain.

    None also when the document has more than `max_nodes` plain nodes (the general path
    then refuses it with the full count) or is not UTF-8 text.
    """
    document = _as_text(text)
    if document is None or MARKER_NAME in document:
        return None
    split = PlainSplit(remainder="")
    pieces: list[str] = []
    done = 0
    count = 0
    start = document.find(_NODE_START)
    while start != -1:
        match = _NODE_RE.match(document, start)
        if match is None:
            start = document.find(_NODE_START, start + 1)
            continue
        run: list[Node] = []
        end = start
        while match is not None:
            node = _node(match.groups())
            split.uses_sfa_prefix = split.uses_sfa_prefix or node.resources is not None
            run.append(node)
            end = match.end()
            match = _NODE_RE.match(document, end)
        count += len(run)
        if count > max_nodes:
            return None
        pieces.append(document[done:start])
        pieces.append(f'<{MARKER_NAME} i="{len(split.runs)}"/>')
        split.runs.append(run)
        done = end
        start = document.find(_NODE_START, end)
    if not split.runs:
        return None
    pieces.append(document[done:])
    split.remainder = "".join(pieces)
    return split


def markers_in_place(root: etree._Element, split: PlainSplit) -> bool:
    """Did every run's marker land as a child of the root, in order, in the right namespaces?"""
    markers = list(root.iter(MARKER_TAG))
    if len(markers) != len(split.runs):
        return False
    for index, marker in enumerate(markers):
        if marker.getparent() is not root or marker.get("i") != str(index):
            return False
        nsmap = marker.nsmap
        if split.uses_sfa_prefix and nsmap.get(ext.SFA_EXT_PREFIX) != ext.SFA_EXT_NS:
            return False
    return True


def _as_text(text: str | bytes) -> str | None:
    if isinstance(text, str):
        return text
    if not isinstance(text, bytes):
        return None
    declared = _ENCODING_RE.match(text[:200])
    if declared is not None and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        return None
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _node(groups: tuple[str | None, ...]) -> Node:
    (component_id, manager, name, exclusive, hardware, slivers, country, latitude, longitude,
     available, interfaces, resources, load, *amounts) = groups
    node = Node(
        component_id,
        manager,
        name,
        None,
        None,
        exclusive == "true",
        [HardwareType(value) for value in hardware.split('"')[1::2]] if hardware else [],
        [SliverType(value) for value in slivers.split('"')[1::2]] if slivers else [],
        Location(country, latitude, longitude) if country is not None else None,
        None if available is None else available == "true",
        [Interface(value) for value in interfaces.split('"')[1::2]] if interfaces else [],
    )
    if resources is not None:
        capacity, free = amounts[:5], amounts[6:]
        node.resources = NodeResources(
            _amounts(capacity),
            _amounts(free) if amounts[5] is not None else None,
            ext.load_from_text(load),
        )
    return node


def _amounts(values: list[str | None]) -> ResourceAmounts:
    if None in values:
        return ResourceAmounts(*[None if value is None else int(value) for value in values])
    cpu, memory, disk, tasks, bandwidth = values
    return ResourceAmounts(int(cpu), int(memory), int(disk), int(tasks),  # type: ignore[arg-type]
                           int(bandwidth))  # type: ignore[arg-type]
