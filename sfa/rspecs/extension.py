"""Our RSpec extension (node resources, sliver resource requests, slice init script) and the
opstate declaration every advertisement carries.

Namespace `SFA_EXT_NS`, prefix `sfa`, schema `schemas/sfa-ext-1.xsd` (public URL
`SFA_EXT_SCHEMA`). Elements:
- `<sfa:resources load="0.3"><sfa:capacity .../><sfa:free .../></sfa:resources>` in a node;
- `<sfa:request cpu_share=".." memory_mb=".." .../>` in a node of a request or manifest;
- `<sfa:init_script>text</sfa:init_script>` at the top of a request or manifest;
- `<sfa:omf enabled="true"/>` at the top of a request: OMF experiment control for the slice.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from lxml import etree

from sfa.rspecs.model import OPSTATE_NS, NodeResources, ResourceAmounts, RSpec
from sfa.safexml import parse_xml

SFA_EXT_NS = "http://sfa.dev/resources/rspec/ext/sfa/1"
SFA_EXT_PREFIX = "sfa"
SFA_EXT_SCHEMA = "http://sfa.dev/resources/rspec/ext/sfa/1/sfa-ext.xsd"

RESOURCES_TAG = f"{{{SFA_EXT_NS}}}resources"
CAPACITY_TAG = f"{{{SFA_EXT_NS}}}capacity"
FREE_TAG = f"{{{SFA_EXT_NS}}}free"
REQUEST_TAG = f"{{{SFA_EXT_NS}}}request"
INIT_SCRIPT_TAG = f"{{{SFA_EXT_NS}}}init_script"
OMF_TAG = f"{{{SFA_EXT_NS}}}omf"

AMOUNT_FIELDS = ("cpu_share", "memory_mb", "disk_mb", "tasks", "bandwidth_kbps")


def omf_requested(rspec: RSpec) -> bool:
    """True when a request carries `<sfa:omf/>` (enabled unless enabled="false"/"0")."""
    for item in rspec.extensions:
        if "omf" not in str(item):
            continue
        element = parse_xml(str(item), what="an RSpec extension")
        if element.tag == OMF_TAG:
            return element.get("enabled", "true").strip() not in ("false", "0")
    return False


def sfa_ext_schema_path() -> Path:
    """The packaged XSD of our extension."""
    return Path(str(resources.files("sfa.rspecs").joinpath("schemas/sfa-ext-1.xsd")))


def int_or_none(text: str | None) -> int | None:
    """The integer in `text`, or None when there is none (missing or not a number)."""
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def amounts_from_values(values: list[str | None]) -> ResourceAmounts:
    """Amounts from attribute texts in AMOUNT_FIELDS order (missing or bad numbers -> None)."""
    try:
        return ResourceAmounts(*[None if v is None else int(v) for v in values])
    except ValueError:
        return ResourceAmounts(*[int_or_none(v) for v in values])


def load_from_text(text: str | None) -> float | None:
    """The `load` attribute of `<sfa:resources>` (a bad number -> None)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def knobs_from_text(text: str | None) -> tuple[str, ...] | None:
    """The `enforced` attribute of `<sfa:resources>`: knob names (None when absent)."""
    return None if text is None else tuple(text.split())


def amounts_from_element(element: etree._Element) -> ResourceAmounts:
    """Read the amount attributes of `capacity`, `free` or `request`."""
    get = element.get
    return amounts_from_values([get("cpu_share"), get("memory_mb"), get("disk_mb"),
                                get("tasks"), get("bandwidth_kbps")])


def resources_from_element(element: etree._Element) -> NodeResources:
    """Read `<sfa:resources>`."""
    result = NodeResources(load=load_from_text(element.get("load")),
                           enforced=knobs_from_text(element.get("enforced")))
    for child in element:
        if child.tag == CAPACITY_TAG:
            result.capacity = amounts_from_element(child)
        elif child.tag == FREE_TAG:
            result.free = amounts_from_element(child)
    return result


def amount_attributes(amounts: ResourceAmounts) -> list[tuple[str, str]]:
    """(name, value) pairs of the amounts that are set."""
    pairs = []
    for name in AMOUNT_FIELDS:
        value = getattr(amounts, name)
        if value is not None:
            pairs.append((name, str(int(value))))
    return pairs


# Our operational state machine (spec/am-api.md, "States"), as opstate declares it:
# state -> [(kind, name-or-wait-type, next state, description)]
OPSTATE_MACHINE: dict[str, list[tuple[str, str, str, str]]] = {
    "geni_notready": [("action", "geni_start", "geni_configuring", "Start the sliver")],
    "geni_configuring": [
        ("wait", "geni_success", "geni_ready", "The sliver finished starting"),
        ("wait", "geni_failure", "geni_failed", "The sliver failed to start"),
    ],
    "geni_ready": [
        ("action", "geni_restart", "geni_configuring", "Restart the sliver"),
        ("action", "geni_stop", "geni_stopping", "Stop the sliver"),
    ],
    "geni_stopping": [("wait", "geni_success", "geni_notready", "The sliver stopped")],
    "geni_failed": [("action", "geni_restart", "geni_configuring", "Try to start it again")],
}
OPSTATE_START = "geni_notready"


def opstate_extension(aggregate_manager_id: str, sliver_types: Iterable[str]) -> str:
    """The `rspec_opstate` element (as an extension string) declaring our state machine."""
    opstate = f"{{{OPSTATE_NS}}}"
    root = etree.Element(
        opstate + "rspec_opstate",
        {"aggregate_manager_id": aggregate_manager_id, "start": OPSTATE_START},
        nsmap={None: OPSTATE_NS},
    )
    for name in sliver_types:
        etree.SubElement(root, opstate + "sliver_type", {"name": name})
    for state, moves in OPSTATE_MACHINE.items():
        state_el = etree.SubElement(root, opstate + "state", {"name": state})
        for kind, name, next_state, description in moves:
            attrs = {"name": name} if kind == "action" else {"type": name}
            attrs["next"] = next_state
            move = etree.SubElement(state_el, opstate + kind, attrs)
            etree.SubElement(move, opstate + "description").text = description
    return canonical_xml(root)


def canonical_xml(element: etree._Element) -> str:
    """An element as exclusive canonical XML: the stable string form of an extension."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False).decode()
