"""The one hardened XML parser for every untrusted document (credentials, tickets, RSpecs).

No entities, no DTD, no network, no XInclude, bounded size and depth. lxml still parses a
document that carries a DOCTYPE when DTD loading is off, so a DOCTYPE is refused explicitly.
"""

from __future__ import annotations

import functools

from lxml import etree

from sfa.errors import BadArgs, TooBig

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64


def _parser(huge: bool) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=huge,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        collect_ids=False,
    )


_PARSER = _parser(huge=False)
_HUGE_PARSER = _parser(huge=True)


def _as_bytes(document: str | bytes) -> bytes:
    if isinstance(document, str):
        return document.encode("utf-8")
    if isinstance(document, bytes | bytearray | memoryview):
        return bytes(document)
    raise BadArgs(f"expected an XML document as text, got {type(document).__name__}")


@functools.lru_cache(maxsize=8)
def _deeper_than(limit: int) -> etree.XPath:
    # Compiled once per limit: is there an element below `limit` levels of elements?
    return etree.XPath("boolean(" + "/*" * (limit + 1) + ")")


def _max_depth(root: etree._Element, limit: int) -> None:
    if _deeper_than(limit)(root):
        raise TooBig(f"XML nesting deeper than {limit} levels")


def parse_xml(
    document: str | bytes,
    *,
    what: str = "document",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> etree._Element:
    """Parse untrusted XML and return its root element; BadArgs/TooBig on refusal."""
    data = _as_bytes(document)
    if len(data) > max_bytes:
        raise TooBig(f"{what} is {len(data)} bytes; the limit is {max_bytes}")
    if not data.strip():
        raise BadArgs(f"{what} is empty")
    parser = _HUGE_PARSER if len(data) > DEFAULT_MAX_BYTES else _PARSER
    try:
        tree = etree.fromstring(data, parser).getroottree()
    except etree.XMLSyntaxError as exc:
        raise BadArgs(f"{what} is not well-formed XML: {exc.msg}") from None
    except ValueError as exc:
        raise BadArgs(f"{what} could not be parsed: {exc}") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise BadArgs(f"{what} carries a DOCTYPE; DTDs and entities are refused")
    root = tree.getroot()
    if root is None:
        raise BadArgs(f"{what} has no root element")
    # Shortcuts on the bytes, valid where ASCII characters are single bytes: without '&' or
    # "XInclude" neither can be in the tree; each level of elements takes at least one '<'.
    # UTF-16/32 (even when a BOM, not a declaration, says so) put NULs beside ASCII.
    plain = (tree.docinfo.encoding or "").upper() in _ASCII_BASED and b"\x00" not in data
    if not plain or b"&" in data or b"XInclude" in data:
        _refuse_entities_and_xinclude(root, what)
    if not plain or data.count(b"<") > max_depth:
        _max_depth(root, max_depth)
    return root


_ASCII_BASED = frozenset(("UTF-8", "US-ASCII", "ASCII", "ISO-8859-1", "LATIN1"))


_XINCLUDE_TAGS = (
    "{http://www.w3.org/2001/XInclude}include",
    "{http://www.w3.org/2003/XInclude}include",
)


def _refuse_entities_and_xinclude(root: etree._Element, what: str) -> None:
    # One pass inside lxml over the only node kinds that matter.
    found = next(root.iter(etree.Entity, *_XINCLUDE_TAGS), None)
    if found is None:
        return
    if isinstance(found, etree._Entity):
        raise BadArgs(f"{what} uses entity references; they are refused")
    raise BadArgs(f"{what} uses XInclude; it is refused")
