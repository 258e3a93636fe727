"""XML-RPC documents to Python values: one hardened parse (`sfa.safexml.parse_xml`) and an
iterative walk of the tree, about twice as fast as `xmlrpc.client.loads` and its Python
callback per parser event.

For every well-formed XML-RPC call or response the result is what
`xmlrpc.client.loads(data, use_builtin_types=...)` gives (a fault raises
`xmlrpc.client.Fault`). Where the standard library is lenient about structure (unknown
elements, a member without a name, two values in one `<value>`) this refuses with
`NotXmlRpc`; so does lxml for a prefix with no namespace declaration (`<ex:nil/>` alone).
"""

from __future__ import annotations

import binascii
import xmlrpc.client
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from lxml import etree

from sfa.errors import BadArgs
from sfa.safexml import parse_xml

# parse_xml's default cap; libxml2 itself stops at 256 levels of elements.
MAX_BYTES = 10 * 1024 * 1024
_UNBOUNDED = 1 << 30


class NotXmlRpc(BadArgs):
    """The document is XML but not the XML-RPC this reader accepts."""


def loads(data: str | bytes, *, use_builtin_types: bool = True, what: str = "the document",
          max_depth: int = _UNBOUNDED, max_bytes: int = MAX_BYTES
          ) -> tuple[tuple[Any, ...], str | None]:
    """(params, method name or None) of an XML-RPC call or response; arrays and structs nested
    deeper than `max_depth` are refused. BadArgs (NotXmlRpc) or TooBig on refusal."""
    root = parse_xml(data, what=what, max_bytes=max_bytes, max_depth=_UNBOUNDED)
    scalars = _BUILTIN if use_builtin_types else _WRAPPED
    kind = _local(root.tag)
    if kind == "methodResponse":
        (body,) = _elements(root, ("params", "fault"), what, exactly_one=True)
        if _local(body.tag) == "fault":
            (value,) = _elements(body, ("value",), what, exactly_one=True)
            raise _fault(_decode(value, scalars, max_depth, what), what)
        return _params(body, scalars, max_depth, what), None
    if kind == "methodCall":
        parts = _elements(root, ("methodName", "params"), what)
        if not parts or _local(parts[0].tag) != "methodName" or len(parts) > 2 or (
                len(parts) == 2 and _local(parts[1].tag) != "params"):
            raise NotXmlRpc(f"{what}: a methodCall holds a methodName, then params")
        params = _params(parts[1], scalars, max_depth, what) if len(parts) == 2 else ()
        return params, _text(parts[0], what)
    raise NotXmlRpc(f"{what} is not an XML-RPC call or response (root <{kind}>)")


def _params(params: etree._Element, scalars: dict[str, Callable[[str], Any]], max_depth: int,
            what: str) -> tuple[Any, ...]:
    values = []
    for param in _elements(params, ("param",), what):
        (value,) = _elements(param, ("value",), what, exactly_one=True)
        values.append(_decode(value, scalars, max_depth, what))
    return tuple(values)


def _decode(top: etree._Element, scalars: dict[str, Callable[[str], Any]], max_depth: int,
            what: str) -> Any:
    """The Python value of one <value> element, walked with a stack (no recursion): each
    entry is a <value> still to decode, the list or dict it goes into, its key, its depth."""
    result: list[Any] = [None]
    stack: list[tuple[etree._Element, Any, Any, int]] = [(top, result, 0, 0)]
    while stack:
        element, into, key, depth = stack.pop()
        count = len(element)
        if count == 0:
            into[key] = element.text or ""
            continue
        typed = element[0] if count == 1 else _typed(element, what)
        if typed is None:
            into[key] = _text(element, what)
            continue
        tag = typed.tag
        if tag == "struct":
            into[key] = _struct(typed, stack, _deeper(depth, max_depth, what), what)
            continue
        convert = scalars.get(tag) if tag.__class__ is str else None
        if convert is None:
            kind = _local(tag)
            convert = scalars.get(kind)
        if convert is not None:
            text = (typed.text or "") if len(typed) == 0 else _text(typed, what)
            try:
                into[key] = convert(text)
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise NotXmlRpc(f"{what}: bad <{_local(tag)}> value {text[:40]!r} "
                                f"({exc})") from None
            continue
        if kind not in ("struct", "array"):
            raise NotXmlRpc(f"{what}: unknown XML-RPC type <{kind}>")
        maker = _struct if kind == "struct" else _array
        into[key] = maker(typed, stack, _deeper(depth, max_depth, what), what)
    return result[0]


def _deeper(depth: int, max_depth: int, what: str) -> int:
    """The depth of the values inside a struct or array at `depth`."""
    if depth >= max_depth:
        raise BadArgs(f"{what} nests arrays and structs deeper than {max_depth} levels")
    return depth + 1


def _struct(struct: etree._Element, stack: list[tuple[etree._Element, Any, Any, int]],
            depth: int, what: str) -> dict[str, Any]:
    """The dict with its keys in document order; its values are pushed to be decoded in
    document order, so that of two equal names the last wins, as in xmlrpc.client."""
    decoded: dict[str, Any] = {}
    pending = []
    for member in struct:
        if member.tag != "member" and _skipped(member, "member", struct, what):
            continue
        if len(member) == 2:  # the usual <name>text</name><value>...</value>, inline
            name_element, value = member
            if name_element.tag == "name" and value.tag == "value" and not len(name_element):
                name = name_element.text or ""
            else:
                name, value = _member(member, what)
        else:
            name, value = _member(member, what)
        decoded[name] = None
        pending.append((value, decoded, name, depth))
    stack.extend(reversed(pending))
    return decoded


def _member(member: etree._Element, what: str) -> tuple[str, etree._Element]:
    """(name, <value>) of a struct member."""
    parts = _elements(member, ("name", "value"), what)
    if len(parts) != 2 or _local(parts[0].tag) != "name" or _local(parts[1].tag) != "value":
        raise NotXmlRpc(f"{what}: a struct member holds a name, then a value")
    return _text(parts[0], what), parts[1]


def _skipped(child: etree._Element, allowed: str, parent: etree._Element, what: str) -> bool:
    """True for a comment or processing instruction; False for an element named `allowed`
    in some namespace; NotXmlRpc for any other element."""
    if not isinstance(child.tag, str):
        return True
    if _local(child.tag) == allowed:
        return False
    raise NotXmlRpc(f"{what}: <{_local(child.tag)}> inside <{_local(parent.tag)}>, where "
                    f"only {allowed} may be")


def _array(array: etree._Element, stack: list[tuple[etree._Element, Any, Any, int]],
           depth: int, what: str) -> list[Any]:
    holders = _elements(array, ("data",), what)
    if len(holders) > 1:
        raise NotXmlRpc(f"{what}: an array holds one <data>")
    values = _elements(holders[0], ("value",), what) if holders else []
    decoded: list[Any] = [None] * len(values)
    stack.extend((values[index], decoded, index, depth)
                 for index in range(len(values) - 1, -1, -1))
    return decoded


def _typed(value: etree._Element, what: str) -> etree._Element | None:
    """The one type element inside a <value> with several children, or None when the rest
    are comments (a bare string)."""
    inside = [child for child in value if isinstance(child.tag, str)]
    if len(inside) > 1:
        raise NotXmlRpc(f"{what}: a <value> holds one type element")
    return inside[0] if inside else None


def _elements(parent: etree._Element, allowed: tuple[str, ...], what: str, *,
              exactly_one: bool = False) -> list[etree._Element]:
    """The element children of `parent` (comments and processing instructions skipped),
    each of which must have one of the `allowed` names."""
    found = [child for child in parent if isinstance(child.tag, str)]
    for child in found:
        if _local(child.tag) not in allowed:
            raise NotXmlRpc(f"{what}: <{_local(child.tag)}> inside "
                            f"<{_local(parent.tag)}>, where only {', '.join(allowed)} may be")
    if exactly_one and len(found) != 1:
        raise NotXmlRpc(f"{what}: <{_local(parent.tag)}> must hold exactly one of "
                        f"{', '.join(allowed)}")
    return found


def _text(element: etree._Element, what: str) -> str:
    """The character data of an element with no element inside (comments are skipped, as
    expat's character data skips them)."""
    if len(element) == 0:
        return element.text or ""
    if any(isinstance(child.tag, str) for child in element):
        raise NotXmlRpc(f"{what}: <{_local(element.tag)}> holds an element; it holds text")
    return (element.text or "") + "".join(child.tail or "" for child in element)


def _local(tag: Any) -> str:
    """The element's name without namespace or prefix."""
    return str(tag).rpartition("}")[2].rpartition(":")[2]


def _fault(value: Any, what: str) -> xmlrpc.client.Fault:
    try:
        return xmlrpc.client.Fault(**value)
    except TypeError:
        raise NotXmlRpc(f"{what}: a fault is a struct with faultCode and faultString") from None


def _boolean(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError("a boolean is 0 or 1")
    return text == "1"


def _nil(_text: str) -> None:
    return None


def _wrapped_datetime(text: str) -> xmlrpc.client.DateTime:
    value = xmlrpc.client.DateTime()
    value.decode(text)
    return value


def _builtin_datetime(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H:%M:%S")


def _bytes(text: str) -> bytes:
    return binascii.a2b_base64(text.encode("ascii"))


def _binary(text: str) -> xmlrpc.client.Binary:
    return xmlrpc.client.Binary(_bytes(text))


def _string(text: str) -> str:
    return text


_COMMON: dict[str, Callable[[str], Any]] = {
    "string": _string,
    "int": int, "i4": int, "i8": int, "i1": int, "i2": int, "biginteger": int,
    "double": float, "float": float, "bigdecimal": Decimal,
    "boolean": _boolean,
    "nil": _nil,
}
_BUILTIN = {**_COMMON, "base64": _bytes, "dateTime.iso8601": _builtin_datetime}
_WRAPPED = {**_COMMON, "base64": _binary, "dateTime.iso8601": _wrapped_datetime}
