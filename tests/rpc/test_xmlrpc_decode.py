"""sfa.rpc.xmlrpc_decode gives what xmlrpc.client.loads gives, on generated documents and on the
forms real peers write, and refuses with a clear error what is not XML-RPC."""

from __future__ import annotations

import codecs
import xmlrpc.client
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfa.errors import BadArgs, TooBig
from sfa.rpc.xmlrpc_decode import NotXmlRpc, loads

# Text XML can carry (no other control characters, no surrogates).
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t\n\r"))
SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**31), 2**31 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | TEXT | st.binary(max_size=64)
    | st.datetimes(min_value=datetime(1000, 1, 1)).map(lambda d: d.replace(microsecond=0))
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


def both(document: str | bytes, use_builtin_types: bool = True) -> Any:
    """Our result, after checking it is the standard library's."""
    ours = loads(document, use_builtin_types=use_builtin_types)
    text = document if isinstance(document, str) else document.decode()
    assert ours == xmlrpc.client.loads(text, use_builtin_types=use_builtin_types)
    return ours


@settings(max_examples=300, deadline=None)
@given(params=st.lists(VALUES, max_size=3), builtin=st.booleans())
def test_generated_responses_and_calls_decode_as_the_standard_library(
        params: list[Any], builtin: bool) -> None:
    response = xmlrpc.client.dumps((params,), methodresponse=True, allow_none=True)
    call = xmlrpc.client.dumps(tuple(params), methodname="Some.method", allow_none=True)
    ((value,), method) = both(response, builtin)
    assert method is None and isinstance(value, list) and len(value) == len(params)
    decoded, name = both(call, builtin)
    assert name == "Some.method" and len(decoded) == len(params)
    both(response.replace("\n", ""), builtin)  # the same without any whitespace


@settings(max_examples=100, deadline=None)
@given(code=st.integers(-(2**31), 2**31 - 1), message=TEXT)
def test_a_fault_raises_fault_as_the_standard_library(code: int, message: str) -> None:
    document = xmlrpc.client.dumps(xmlrpc.client.Fault(code, message))
    with pytest.raises(xmlrpc.client.Fault) as ours:
        loads(document)
    with pytest.raises(xmlrpc.client.Fault) as theirs:
        xmlrpc.client.loads(document)
    assert ours.value.faultCode == theirs.value.faultCode == code
    # XML turns a carriage return into a line feed, in both readers
    assert ours.value.faultString == theirs.value.faultString == message.replace("\r", "\n")


def response(value: str, head: str = "<methodResponse>") -> str:
    return f"<?xml version='1.0'?>{head}<params><param>{value}</param></params></methodResponse>"


# Forms other writers use (Apache XML-RPC / jFed, PHP, Perl, hand-made servers), each decoded
# exactly as xmlrpc.client decodes it.
HAND_WRITTEN = {
    "untyped value is a string": response("<value>plain</value>"),
    "untyped value keeps whitespace": response("<value>  two  words \n</value>"),
    "empty untyped value": response("<value></value>"),
    "self-closed value": response("<value/>"),
    "string keeps whitespace": response("<value><string>\n  indented\t</string></value>"),
    "empty string": response("<value><string/></value>"),
    "whitespace around the type": response("<value>\n  <int> 42 </int>\n</value>"),
    "i4": response("<value><i4>-7</i4></value>"),
    "i8 past 32 bits": response("<value><i8>12345678901234</i8></value>"),
    "i1 i2 biginteger": response(
        "<value><array><data><value><i1>1</i1></value><value><i2>2</i2></value>"
        "<value><biginteger>123456789012345678901234567890</biginteger></value>"
        "</data></array></value>"),
    "boolean": response("<value><array><data><value><boolean>1</boolean></value>"
                        "<value><boolean>0</boolean></value></data></array></value>"),
    "double forms": response(
        "<value><array><data><value><double>1.5</double></value><value><double>-2e10"
        "</double></value><value><float>3</float></value></data></array></value>"),
    "bigdecimal": response("<value><bigdecimal>3.14159265358979323846</bigdecimal></value>"),
    "dateTime": response("<value><dateTime.iso8601>20260102T03:04:05</dateTime.iso8601>"
                         "</value>"),
    "base64 with line breaks": response(
        "<value><base64>\naGVsbG8g\nd29ybGQ=\n</base64></value>"),
    "nil": response("<value><nil/></value>"),
    "ex:nil, declared": response(
        "<value><ex:nil/></value>",
        '<methodResponse xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions">'),
    "ex:i8, declared": response(
        "<value><ex:i8>9007199254740993</ex:i8></value>",
        '<methodResponse xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions">'),
    "entities and character references": response(
        "<value><string>a &amp; b &lt;c&gt; &#233; &#x263A; &quot;q&quot;</string></value>"),
    "CDATA": response("<value><string><![CDATA[<not> & markup]]></string></value>"),
    "comments between and inside": response(
        "<!-- c --><value><!-- c --><struct><!-- c --><member><!-- c --><name>k<!-- c -->ey"
        "</name><value><string>v<!-- c -->al</string></value></member></struct></value>"),
    "processing instruction": response("<value><?pi data?><int>3</int></value>"),
    "a comment alone in a value": response("<value>te<!-- c -->xt</value>"),
    "struct and array in a namespace": response(
        "<value><x:struct><x:member><x:name>a</x:name><x:value><x:array><x:data><x:value>1"
        "</x:value></x:data></x:array></x:value></x:member></x:struct></value>",
        '<methodResponse xmlns:x="urn:any">'),
    "empty struct and arrays": response(
        "<value><array><data><value><struct></struct></value><value><array><data/></array>"
        "</value><value><array></array></value></data></array></value>"),
    "duplicate struct names, the last wins": response(
        "<value><struct><member><name>a</name><value>1</value></member><member><name>b"
        "</name><value>2</value></member><member><name>a</name><value><int>3</int></value>"
        "</member></struct></value>"),
    "empty name": response(
        "<value><struct><member><name></name><value>x</value></member></struct></value>"),
    "non-ASCII UTF-8": response("<value>Grüße, 世界</value>"),
    "no params": "<?xml version='1.0'?><methodResponse><params/></methodResponse>",
    "several params": "<methodResponse><params><param><value>a</value></param><param>"
                      "<value><int>2</int></value></param></params></methodResponse>",
    "call without params": "<methodCall><methodName>GetVersion</methodName></methodCall>",
    "call with empty params":
        "<methodCall><methodName>GetVersion</methodName><params/></methodCall>",
    "call as geni-lib writes it": xmlrpc.client.dumps(
        ([{"geni_type": "geni_sfa", "geni_version": 3,
           "geni_value": xmlrpc.client.Binary(b"<signed-credential/>")}],
         {"geni_rspec_version": {"type": "GENI", "version": "3"}, "geni_available": True}),
        methodname="ListResources", allow_none=True),
    "methodName with whitespace": "<methodCall><methodName> Resolve </methodName><params>"
                                  "</params></methodCall>",
}


@pytest.mark.parametrize("name", list(HAND_WRITTEN))
@pytest.mark.parametrize("builtin", [True, False])
def test_forms_real_peers_write_decode_as_the_standard_library(name: str,
                                                                builtin: bool) -> None:
    both(HAND_WRITTEN[name], builtin)


def test_types_come_out_as_the_flag_says() -> None:
    document = response("<value><array><data><value><base64>AAE=</base64></value><value>"
                        "<dateTime.iso8601>20260102T03:04:05</dateTime.iso8601></value>"
                        "</data></array></value>")
    ((raw, when),), _ = both(document, True)
    assert raw == b"\x00\x01" and when == datetime(2026, 1, 2, 3, 4, 5)
    ((wrapped, stamp),), _ = both(document, False)
    assert isinstance(wrapped, xmlrpc.client.Binary) and wrapped.data == b"\x00\x01"
    assert isinstance(stamp, xmlrpc.client.DateTime) and stamp.value == "20260102T03:04:05"


def test_wide_encodings_decode_like_utf8() -> None:
    document = response("<value><string>é 世</string></value>")
    for codec, bom in (("utf-16-le", codecs.BOM_UTF16_LE), ("utf-32-be", b"")):
        assert loads(bom + document.encode(codec)) == ((("é 世",), None))


# Not XML-RPC, where xmlrpc.client guesses or fails with an obscure error: a clear refusal.
REFUSED = {
    "unknown type": (response("<value><money>3</money></value>"), "unknown XML-RPC type"),
    "two types in one value": (response("<value><int>1</int><int>2</int></value>"),
                               "one type element"),
    "member without name": (response(
        "<value><struct><member><value>1</value></member></struct></value>"),
        "a name, then a value"),
    "member value before name": (response(
        "<value><struct><member><value>1</value><name>a</name></member></struct></value>"),
        "a name, then a value"),
    "stray element in struct": (response("<value><struct><x/></struct></value>"),
                                "<x> inside <struct>"),
    "stray element in params": (
        "<methodResponse><params><foo/></params></methodResponse>", "<foo> inside <params>"),
    "param without value": ("<methodResponse><params><param/></params></methodResponse>",
                            "exactly one"),
    "element inside a string": (response("<value><string>a<b/>c</string></value>"),
                                "holds an element"),
    "bad int": (response("<value><int>4x</int></value>"), "bad <int> value '4x'"),
    "empty int": (response("<value><int/></value>"), "bad <int> value"),
    "bad boolean": (response("<value><boolean>true</boolean></value>"), "bad <boolean>"),
    "bad double": (response("<value><double>one</double></value>"), "bad <double>"),
    "bad base64": (response("<value><base64>é</base64></value>"), "bad <base64>"),
    "bad dateTime": (response("<value><dateTime.iso8601>tomorrow</dateTime.iso8601></value>"),
                     "bad <dateTime.iso8601>"),
    "two data in an array": (response(
        "<value><array><data/><data/></array></value>"), "one <data>"),
    "fault without faultString": (
        "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1"
        "</int></value></member></struct></value></fault></methodResponse>", "faultString"),
    "empty response": ("<methodResponse/>", "exactly one"),
    "params and fault": ("<methodResponse><params/><fault/></methodResponse>", "exactly one"),
    "call without methodName": ("<methodCall><params/></methodCall>", "methodName"),
    "another root": ("<rss><channel/></rss>", "not an XML-RPC call or response"),
    "undeclared prefix": (response("<value><ex:nil/></value>"), "not well-formed"),
    "not XML": ("HTTP/1.1 500 oops", "does not start with '<'"),
    "truncated": (response("<value><int>1</int></value>")[:-20], "not well-formed"),
    "empty": ("", "empty"),
}


# refused by the hardened parser itself, as BadArgs; the rest by the walk, as NotXmlRpc
NOT_XML = {"undeclared prefix", "not XML", "truncated", "empty"}


@pytest.mark.parametrize("name", list(REFUSED))
def test_what_is_not_xml_rpc_is_refused_clearly(name: str) -> None:
    document, message = REFUSED[name]
    with pytest.raises(BadArgs) as refused:
        loads(document, what="the reply")
    assert message in str(refused.value) and "the reply" in str(refused.value)
    assert isinstance(refused.value, NotXmlRpc) == (name not in NOT_XML)


DTD = '<!DOCTYPE methodResponse [<!ENTITY e "xxxxxxxxxx">]>'


@pytest.mark.parametrize("codec, bom", [("utf-8", b""), ("utf-16-le", codecs.BOM_UTF16_LE),
                                        ("utf-32-be", b"")])
def test_dtds_and_entities_are_refused_before_parsing_in_any_encoding(codec: str,
                                                                      bom: bytes) -> None:
    document = bom + (DTD + response("<value>&e;</value>").replace(
        "<?xml version='1.0'?>", "")).encode(codec)
    with pytest.raises(BadArgs, match="found before parsing"):
        loads(document)


def nested(depth: int) -> str:
    return response("<value><array><data>" * depth + "<value>x</value>"
                    + "</data></array></value>" * depth)


def test_nesting_is_bounded_without_recursion() -> None:
    assert loads(nested(32), max_depth=32)[0][0] is not None
    with pytest.raises(BadArgs, match="deeper than 32 levels"):
        loads(nested(33), max_depth=32)
    # beyond what libxml2 parses at all: a refusal, never a RecursionError, that names the
    # nesting when there is a bound
    with pytest.raises(BadArgs, match="Excessive depth"):
        loads(nested(5000))
    with pytest.raises(BadArgs, match="deeper than 32 levels"):
        loads(nested(5000), max_depth=32)
    with pytest.raises(BadArgs, match="deeper than 32 levels"):
        loads(nested(5000).replace("<array>", "<x:array>").replace("</array>", "</x:array>"),
              max_depth=32)
    with pytest.raises(BadArgs, match="not well-formed"):  # not deep, only broken
        loads(nested(20)[:-30], max_depth=32)
    value = loads(nested(80))[0][0]  # deeper than Python's recursion would like here, walked
    for _ in range(80):
        (value,) = value
    assert value == "x"


def test_size_is_bounded() -> None:
    with pytest.raises(TooBig):
        loads(response(f"<value>{'x' * 2000}</value>"), max_bytes=1000)
