"""The one hardened path for every untrusted XML document (XML-RPC bodies, credentials,
tickets, RSpecs).

`xml_text` finds the encoding (byte-order mark, UTF-16/32 byte pattern, XML declaration), and
refuses DTDs and entity declarations on the decoded text, before any parser sees the bytes; a
UTF-16 or UTF-32 document is handed on as UTF-8 without its declaration, so the parser reads the
very text that was checked. `parse_xml` then parses with no entities, no DTD, no network, no
XInclude, bounded size and depth.
"""

from __future__ import annotations

import codecs
import functools
import re

from lxml import etree

from sfa.errors import BadArgs, TooBig

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64


def _parser(huge: bool, keep_blank_text: bool = True) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=huge,
        remove_blank_text=not keep_blank_text,
        remove_comments=False,
        remove_pis=False,
        collect_ids=False,
    )


# (huge, keep_blank_text) -> parser
_PARSERS = {(huge, keep): _parser(huge, keep) for huge in (False, True) for keep in (False, True)}


def _as_bytes(document: str | bytes) -> bytes:
    if isinstance(document, str):
        return document.encode("utf-8")
    if isinstance(document, bytes | bytearray | memoryview):
        return bytes(document)
    raise BadArgs(f"expected an XML document as text, got {type(document).__name__}")


# Encodings in which every ASCII character is the same single byte, so a check on the bytes is
# a check on the text. Anything else a declaration names (UTF-7, EBCDIC, ...) is refused: a
# parser would decode it with a codec and could find a DOCTYPE the byte check cannot see.
_ASCII_BASED = frozenset(
    ("UTF-8", "UTF8", "US-ASCII", "ASCII", "ISO-8859-1", "ISO_8859-1", "LATIN1", "LATIN-1")
)
# (prefix, codec, prefix is a byte-order mark), longest first: UTF-32 LE's BOM starts like
# UTF-16 LE's. Without a BOM, the first character '<' gives the byte pattern.
_WIDE_PATTERNS = (
    (codecs.BOM_UTF32_BE, "utf-32-be", True),
    (codecs.BOM_UTF32_LE, "utf-32-le", True),
    (b"\x00\x00\x00<", "utf-32-be", False),
    (b"<\x00\x00\x00", "utf-32-le", False),
    (codecs.BOM_UTF16_BE, "utf-16-be", True),
    (codecs.BOM_UTF16_LE, "utf-16-le", True),
    (b"\x00<", "utf-16-be", False),
    (b"<\x00", "utf-16-le", False),
)
_DECLARATION = re.compile(rb"<\?xml[ \t\r\n][^>]{0,200}?\?>")
_DECLARED_ENCODING = re.compile(rb"""encoding[ \t\r\n]*=[ \t\r\n]*["']([A-Za-z0-9._-]{1,40})["']""")
# "<!" opens a DOCTYPE, ENTITY, ELEMENT, ATTLIST or NOTATION unless it opens a comment or CDATA.
_MARKUP_DECLARATION = re.compile(rb"<!(?!--|\[CDATA\[)")


def xml_text(document: str | bytes, *, what: str = "document") -> bytes:
    """The document as bytes a parser may read: ASCII-based encodings as they are, UTF-16/32
    transcoded to UTF-8 without declaration. BadArgs for an unsupported encoding or a DTD or
    entity declaration, whatever the encoding."""
    data = _as_bytes(document)
    for prefix, codec, is_bom in _WIDE_PATTERNS:
        if data.startswith(prefix):
            data = _transcode(data[len(prefix) if is_bom else 0:], codec, what)
            break
    else:
        _check_ascii_based(data, what)
    if b"<!" in data and _MARKUP_DECLARATION.search(data):
        raise BadArgs(f"{what} carries a DOCTYPE or markup declaration; DTDs and entities "
                      "are refused (found before parsing)")
    return data


def _transcode(data: bytes, codec: str, what: str) -> bytes:
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        raise BadArgs(f"{what} is not valid {codec.upper()}") from None
    encoded = text.encode("utf-8")
    declaration = _DECLARATION.match(encoded)
    return encoded[declaration.end():] if declaration else encoded


def _check_ascii_based(data: bytes, what: str) -> None:
    body = data.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")
    if body and not body.startswith(b"<"):
        raise BadArgs(f"{what} does not start with '<': not XML, or in an encoding that is "
                      "refused (send UTF-8, UTF-16 or UTF-32)")
    declaration = _DECLARATION.match(body)
    if declaration is None:
        return
    named = _DECLARED_ENCODING.search(declaration.group())
    if named is not None and named.group(1).decode().upper() not in _ASCII_BASED:
        raise BadArgs(f"{what} declares the encoding {named.group(1).decode()!r}, which is "
                      "refused here (send UTF-8, UTF-16 or UTF-32)")


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
    keep_blank_text: bool = True,
) -> etree._Element:
    """Parse untrusted XML and return its root element; BadArgs/TooBig on refusal.

    `keep_blank_text=False` drops whitespace-only text between elements (never the only text
    of an element): for documents where it means nothing (RSpecs), a smaller tree, parsed
    faster. Signed documents keep it: their canonical form includes it.
    """
    data = _as_bytes(document)
    if len(data) > max_bytes:
        raise TooBig(f"{what} is {len(data)} bytes; the limit is {max_bytes}")
    if not data.strip():
        raise BadArgs(f"{what} is empty")
    data = xml_text(data, what=what)
    parser = _PARSERS[len(data) > DEFAULT_MAX_BYTES, keep_blank_text]
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
    # Shortcuts on the bytes, valid since xml_text leaves only ASCII-based encodings: without
    # '&' or "XInclude" neither can be in the tree; each level of elements takes one '<'.
    if b"&" in data or b"XInclude" in data:
        _refuse_entities_and_xinclude(root, what)
    if data.count(b"<") > max_depth:
        _max_depth(root, max_depth)
    return root


def character_data(element: etree._Element) -> str:
    """An element's text with the comments and processing instructions inside it skipped, as
    an XML application reads it (`.text` alone stops at the first of them). The text of
    element children is not part of it."""
    if len(element) == 0:
        return element.text or ""
    parts = [element.text or ""]
    parts += [child.tail or "" for child in element if child.tag.__class__ is not str]
    return "".join(parts)


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
