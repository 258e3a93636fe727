"""The hardened parser refuses what security.md items 13 and 14 list."""

from __future__ import annotations

import pytest

from sfa.errors import BadArgs, TooBig
from sfa.safexml import parse_xml, xml_text

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<lolz>&lol2;</lolz>"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, XXE, '<!DOCTYPE r><r/>'])
def test_dtds_and_entities_are_refused(document: str) -> None:
    with pytest.raises(BadArgs, match="DOCTYPE"):
        parse_xml(document)


def test_xinclude_is_refused() -> None:
    doc = ('<r xmlns:xi="http://www.w3.org/2001/XInclude">'
           '<xi:include href="file:///etc/passwd" parse="text"/></r>')
    with pytest.raises(BadArgs, match="XInclude"):
        parse_xml(doc)


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(TooBig, match="limit is 100"):
        parse_xml("<r>" + "x" * 200 + "</r>", max_bytes=100)


def test_nesting_is_bounded() -> None:
    assert parse_xml("<a>" + "<b>" * 9 + "</b>" * 9 + "</a>", max_depth=10).tag == "a"
    with pytest.raises(TooBig, match="deeper than 10"):
        parse_xml("<a>" + "<b>" * 10 + "</b>" * 10 + "</a>", max_depth=10)


@pytest.mark.parametrize("document", ["", "   ", "<r>", "not xml", b"<r>\x00</r>"])
def test_malformed_input_is_badargs(document: str | bytes) -> None:
    with pytest.raises(BadArgs):
        parse_xml(document)


def test_non_text_is_refused() -> None:
    with pytest.raises(BadArgs, match="got int"):
        parse_xml(42)  # type: ignore[arg-type]


def test_plain_document_parses() -> None:
    root = parse_xml('<rspec type="request"><node client_id="n1"/></rspec>')
    assert root.get("type") == "request"
    assert root[0].get("client_id") == "n1"


def test_blank_text_is_kept_unless_asked() -> None:
    """Signed documents are canonicalized with their whitespace: kept by default. RSpecs ask
    for it to go, except where it is an element's whole text or part of mixed content."""
    document = "<a>\n <b>  </b>\n <c>x <d/> y</c>\n <e>\n  <f/>\n </e>\n</a>"
    kept = parse_xml(document)
    assert kept.text == "\n " and kept[2].text == "\n  "
    dropped = parse_xml(document, keep_blank_text=False)
    assert dropped.text is None and dropped[2].text is None and dropped[2][0].tail is None
    assert dropped[0].text == "  " and (dropped[1].text, dropped[1][0].tail) == ("x ", " y")


XINCLUDE_UTF16 = ('<r xmlns:xi="http://www.w3.org/2001/XInclude">'
                  '<xi:include href="file:///etc/passwd"/></r>')


@pytest.mark.parametrize(
    "document",
    [
        XINCLUDE_UTF16.encode("utf-16"),  # BOM, no declaration: the byte shortcut must not apply
        XINCLUDE_UTF16.encode("utf-32"),
        XINCLUDE_UTF16.replace("XInclude", "X&#73;nclude"),  # the name written with a char ref
        XINCLUDE_UTF16.replace("XInclude", "X&#x49;nclude").encode("latin-1"),
    ],
)
def test_xinclude_is_refused_however_it_is_written(document: str | bytes) -> None:
    with pytest.raises(BadArgs, match="XInclude"):
        parse_xml(document)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_nesting_is_bounded_in_every_encoding(encoding: str) -> None:
    deep = "<a>" + "<b>" * 10 + "</b>" * 10 + "</a>"
    with pytest.raises(TooBig, match="deeper than 10"):
        parse_xml(deep.encode(encoding), max_depth=10)
    shallow = "<a>" + "<b>" * 9 + "</b>" * 9 + "</a>"
    assert parse_xml(shallow.encode(encoding), max_depth=10).tag == "a"


def test_depth_at_the_limit_with_few_tags() -> None:
    # No more '<' than the limit: the byte count alone lets it through, correctly.
    document = "<a>" + "<b>" * 4 + "</b>" * 4 + "</a>"
    assert document.count("<") == 10
    assert parse_xml(document, max_depth=10).tag == "a"
    assert parse_xml(document, max_depth=5).tag == "a"
    with pytest.raises(TooBig, match="deeper than 4"):
        parse_xml(document, max_depth=4)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
@pytest.mark.parametrize("bom", [True, False])
def test_a_dtd_is_found_on_the_decoded_text(codec: str, bom: bool) -> None:
    document = BILLION_LAUGHS.replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
    data = ("\ufeff" if bom else "").encode(codec) + document.encode(codec)
    with pytest.raises(BadArgs, match="found before parsing"):
        xml_text(data)


def test_wide_encodings_are_handed_on_as_utf8_without_declaration() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?><r>é</r>'.encode("utf-16")
    assert xml_text(data) == "<r>é</r>".encode()
    assert parse_xml(data).text == "é"


@pytest.mark.parametrize("document", [
    b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE r+AD4-<r/>',
    b'<?xml version="1.0" encoding="UTF-16"?><r/>',  # ASCII bytes that claim UTF-16
    "<r/>".encode("cp037"),  # EBCDIC: a parser could detect it, the byte check cannot read it
])
def test_encodings_the_check_cannot_read_are_refused(document: bytes) -> None:
    with pytest.raises(BadArgs, match="encoding"):
        xml_text(document)
