"""The reply encoder against the stock Marshaller: the same bytes for every value, the same
errors for the values the stock one refuses, and 32-bit widening."""

from __future__ import annotations

import enum
import xmlrpc.client
from datetime import datetime
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfa.rpc.xmlrpc_decode import loads
from sfa.rpc.xmlrpc_encode import method_response, widen


def stock(value: Any) -> bytes:
    """What the server sent before: the stock Marshaller, widened when it overflows."""
    try:
        text = xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True)
    except OverflowError:
        text = xmlrpc.client.dumps((widen(value),), methodresponse=True, allow_none=True)
    return text.encode()


_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
# text with XML's three special characters, controls, non-ASCII and astral characters
_text = st.text(alphabet=st.characters(blacklist_categories=_SURROGATES), max_size=40) | (
    st.sampled_from(["", "a&b", "<x>", "]]>", "&amp;", "é\u00e9\u4e2d\U0001f600", "\r\n\t",
                     "\x00\x1f"]))
_ints = (st.integers(min_value=-(2**31), max_value=2**31 - 1)
         | st.integers(min_value=-(2**60), max_value=2**60)
         | st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) - 1]))
_scalars = (
    st.none() | st.booleans() | _ints | st.floats(allow_nan=False) | _text
    | st.binary(max_size=100) | st.binary(max_size=100).map(bytearray)
    | st.binary(max_size=60).map(xmlrpc.client.Binary)
    | st.datetimes(min_value=datetime(1, 1, 1)).map(lambda moment: moment.replace(microsecond=0))
    | st.datetimes().map(xmlrpc.client.DateTime)
)


def _nested(scalars: st.SearchStrategy[Any], names: st.SearchStrategy[str]
            ) -> st.SearchStrategy[Any]:
    """Scalars, and lists, tuples and structs (named by `names`) of them, nested."""
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=5) | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(names, inner, max_size=5),
        max_leaves=30,
    )


_values = _nested(_scalars, _text)


@settings(max_examples=600, deadline=None)
@given(_values)
def test_same_bytes_as_the_stock_marshaller(value: Any) -> None:
    assert method_response(value) == stock(value)


def _decoded(value: Any) -> Any:
    """What a client decodes `value` to (builtin types): widened, sequences as lists,
    every base64 as bytes, every dateTime as a datetime to the second."""
    if isinstance(value, int) and not isinstance(value, bool):
        return widen(value)
    if isinstance(value, list | tuple):
        return [_decoded(item) for item in value]
    if isinstance(value, dict):
        return {key: _decoded(item) for key, item in value.items()}
    if isinstance(value, bytearray | xmlrpc.client.Binary):
        return bytes(value.data if isinstance(value, xmlrpc.client.Binary) else value)
    if isinstance(value, xmlrpc.client.DateTime):
        return datetime.strptime(value.value, "%Y%m%dT%H:%M:%S")
    return value


# what XML 1.0 can carry and a parser gives back unchanged (no controls, no bare CR)
_xml_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
_wire_values = _nested(_scalars.filter(lambda value: not isinstance(value, str)) | _xml_text,
                       _xml_text)


@settings(max_examples=300, deadline=None)
@given(_wire_values)
def test_clients_decode_the_value_widened(value: Any) -> None:
    body = method_response(value)
    (stock_decoded,), _ = xmlrpc.client.loads(body, use_builtin_types=True)
    (ours,), _ = loads(body, use_builtin_types=True)
    assert stock_decoded == ours == _decoded(value)


def test_integers_past_32_bits_become_doubles_anywhere_in_the_reply() -> None:
    reply = {"used": [1, 2**40, {"ns": -(2**45)}], "small": 2**31 - 1}
    decoded: Any = xmlrpc.client.loads(method_response(reply))[0][0]
    assert decoded == {"used": [1, float(2**40), {"ns": float(-(2**45))}], "small": 2**31 - 1}
    assert isinstance(decoded["used"][1], float) and isinstance(decoded["small"], int)


def test_special_characters_are_escaped_in_values_and_names() -> None:
    body = method_response({"a<&>b": "x<y & z>w"})
    assert b"<name>a&lt;&amp;&gt;b</name>" in body
    assert b"<string>x&lt;y &amp; z&gt;w</string>" in body
    assert xmlrpc.client.loads(body)[0][0] == {"a<&>b": "x<y & z>w"}


class _Colour(enum.IntEnum):
    RED = 1


class _Record:
    def __init__(self, size: int = 7) -> None:
        self.name = "r"
        self.size = size


@pytest.mark.parametrize("value", [_Record(), [1, {"x": _Record()}]], ids=["object", "nested"])
def test_other_objects_go_through_the_stock_marshaller(value: Any) -> None:
    assert method_response(value) == stock(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (_Colour.RED, TypeError),  # a subclass of int: the stock Marshaller refuses it
        ({1: "a"}, TypeError),
        (10**400, OverflowError),  # past what a double holds
        (_Record(2**40), OverflowError),  # widening does not reach into objects
        ("\ud800", UnicodeEncodeError),
        (object(), TypeError),
    ],
    ids=["int-subclass", "int-key", "huge-int", "wide-object", "surrogate", "object"],
)
def test_refuses_what_the_stock_marshaller_refuses(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        stock(value)
    with pytest.raises(error):
        method_response(value)


def test_recursive_values_are_refused() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    looped: dict[str, Any] = {}
    looped["self"] = looped
    for value in (loop, looped, {"a": [looped]}):
        with pytest.raises(TypeError, match="recursive"):
            method_response(value)


def test_a_value_repeated_but_not_recursive_is_written_each_time() -> None:
    shared = {"k": [1, 2]}
    value = [shared, shared, {"again": shared}]
    assert method_response(value) == stock(value)
