"""spec/security.md items 27 and 31 over TLS: a DTD with entities is refused whatever the
encoding of the XML-RPC body or of a credential inside it, before any parser sees it; nesting
of arrays and structs is bounded (BADARGS, never a RecursionError)."""

from __future__ import annotations

import codecs
import xmlrpc.client

import pytest

from sfa.errors import GeniCode
from tests.security.conftest import (
    GENI3,
    World,
    no_traceback,
    post_raw,
    refused_by_aggregate,
    slice_urn,
)

# Ten levels of ten: 10^10 characters if anything expanded it; the server would not answer.
BOMB = "<!DOCTYPE methodCall [<!ENTITY e0 \"aaaaaaaaaa\">" + "".join(
    f"<!ENTITY e{i} \"{f'&e{i - 1};' * 10}\">" for i in range(1, 10)) + "]>"
CALL = ("<methodCall><methodName>GetVersion</methodName><params><param><value>&e9;"
        "</value></param></params></methodCall>")
PLAIN_CALL = "<methodCall><methodName>GetVersion</methodName><params></params></methodCall>"

# (codec, byte-order mark or b"", what the declaration says or None)
ENCODINGS = {
    "utf-16-le-bom": ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16"),
    "utf-16-be-bom": ("utf-16-be", codecs.BOM_UTF16_BE, "UTF-16"),
    "utf-16-le-no-bom": ("utf-16-le", b"", "UTF-16"),
    "utf-16-be-no-bom": ("utf-16-be", b"", "UTF-16"),
    "utf-16-le-no-bom-no-declaration": ("utf-16-le", b"", None),
    "utf-32-le-bom": ("utf-32-le", codecs.BOM_UTF32_LE, "UTF-32"),
    "utf-32-be-bom": ("utf-32-be", codecs.BOM_UTF32_BE, "UTF-32"),
    "utf-32-le-no-bom": ("utf-32-le", b"", "UTF-32"),
    "utf-32-be-no-bom": ("utf-32-be", b"", None),
}


def encoded(text: str, codec: str, bom: bytes, declared: str | None) -> bytes:
    head = f'<?xml version="1.0" encoding="{declared}"?>' if declared else ""
    return bom + (head + text).encode(codec)


def _urls(world: World) -> list[str]:
    return [world.site.registry.url, world.site.aggregate.url + "am/3"]


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_27_dtd_in_a_wide_encoding_is_refused_before_parsing(world: World, name: str) -> None:
    codec, bom, declared = ENCODINGS[name]
    before = world.dump()
    for url in _urls(world):
        reply = post_raw(world, url, encoded(BOMB + CALL, codec, bom, declared))
        # BADARGS (1) as a fault or an envelope; the message is the check done on the decoded
        # text, before parsing: no parser that expands entities ever saw the body.
        assert b"<int>1</int>" in reply, reply[:400]
        assert b"found before parsing" in reply and b"aaaaaaaaaa" not in reply
        no_traceback(reply.decode())
    assert world.dump() == before
    world.answers()


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_27_the_same_call_without_a_dtd_is_answered(world: World, name: str) -> None:
    """The refusal is about the DTD, not the encoding: UTF-16/32 calls work."""
    codec, bom, declared = ENCODINGS[name]
    reply = post_raw(world, world.site.registry.url, encoded(PLAIN_CALL, codec, bom, declared))
    (version,), _ = xmlrpc.client.loads(reply)
    assert isinstance(version, dict) and version["hrn"] == "plc"


@pytest.mark.parametrize("declared", ["UTF-7", "cp037", "UTF-16"])
def test_27_encodings_a_byte_check_cannot_read_are_refused(world: World,
                                                            declared: str) -> None:
    # UTF-7 writes '<!' as '+ADw-!'; an ASCII body that claims UTF-16 is inconsistent.
    body = f'<?xml version="1.0" encoding="{declared}"?>{PLAIN_CALL}'.encode()
    before = world.dump()
    reply = post_raw(world, world.site.registry.url, body)
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(reply)
    assert caught.value.faultCode == GeniCode.BADARGS
    assert declared in caught.value.faultString
    assert world.dump() == before
    world.answers()


@pytest.mark.parametrize("name", ["utf-16-le-no-bom", "utf-32-le-no-bom", "utf-16-be-bom"])
def test_27_credential_with_a_dtd_in_a_wide_encoding(world: World, name: str) -> None:
    """Without a BOM these bytes are valid UTF-8 (ASCII and NULs) and reach the credential
    parser, which finds the DTD; with a BOM they are not UTF-8 text and are refused earlier."""
    codec, bom, declared = ENCODINGS[name]
    document = encoded(BOMB + "<signed-credential>&e9;</signed-credential>", codec, bom,
                       declared)
    creds = [{"geni_type": "geni_sfa", "geni_version": 3,
              "geni_value": xmlrpc.client.Binary(document)}]
    output = refused_by_aggregate(
        world, lambda: world.am().Describe([slice_urn("exp1")], creds,
                                         {"geni_rspec_version": GENI3}),
        GeniCode.CREDENTIAL_INVALID)
    expected = "not UTF-8 text" if not name.endswith("no-bom") else "found before parsing"
    assert expected in output


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _deep_call(method: str, depth: int) -> bytes:
    """A call whose first argument is `depth` nested arrays (no client marshals that deep)."""
    opened = "<value><array><data>" * depth
    closed = "</data></array></value>" * depth
    return (f"<?xml version='1.0'?><methodCall><methodName>{method}</methodName><params>"
            f"<param>{opened}<value><string>x</string></value>{closed}</param>"
            f"</params></methodCall>").encode()


@pytest.mark.parametrize("depth", [33, 5000])
def test_31_deep_nesting_is_badargs_with_bounded_depth(world: World, depth: int) -> None:
    before = world.dump()
    for url, method in ((world.site.registry.url, "Resolve"),
                        (world.site.aggregate.url + "am/3", "ListResources")):
        reply = post_raw(world, url, _deep_call(method, depth))
        assert b"<int>1</int>" in reply and b"deeper than 32 levels" in reply, reply[:400]
        assert b"Recursion" not in reply
        no_traceback(reply.decode())
    assert world.dump() == before
    world.answers()


def test_31_nesting_within_the_bound_reaches_the_handler(world: World) -> None:
    # 30 levels parse; the handler then judges the value (a list is no version struct).
    reply = world.am().ListResources(world.cred("exp1"), {"geni_rspec_version": _nested(30)})
    assert reply["code"]["geni_code"] == GeniCode.BADARGS
    assert "deeper than" not in reply["output"]
