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
import re
import xmlrpc.client
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from lxml import etree

from sfa.errors import BadArgs
from sfa.safexml import character_data, parse_xml

# parse_xml's default cap; libxml2 itself stops at 256 levels of elements.
MAX_BYTES = 10 * 1024 * 1024
_UNBOUNDED = 1 << 30
_CONTAINERS = frozenset(("struct", "array"))


class NotXmlRpc(BadArgs):
    """The document is XML but not the XML-RPC this reader accepts."""


def loads(data: str | bytes, *, use_builtin_types: bool = True, what: str = "the document",
          max_depth: int = _UNBOUNDED, max_bytes: int = MAX_BYTES
          ) -> tuple[tuple[Any, ...], str | None]:
    """(params, method name or None) of an XML-RPC call or response; arrays and structs nested
    deeper than `max_depth` are refused. BadArgs (NotXmlRpc) or TooBig on refusal."""
    try:
        root = parse_xml(data, what=what, max_bytes=max_bytes, max_depth=_UNBOUNDED)
    except BadArgs:
        # libxml2 stops at 256 levels of elements: name the likelier cause when it is that
        if max_depth < _UNBOUNDED and _nesting(data) > max_depth:
            raise _too_deep(what, max_depth) from None
        raise
    scalars = _BUILTIN if use_builtin_types else _WRAPPED
    kind = _local(root.tag)
    if kind == "methodResponse":
        (body,) = _elements(root, ("params", "fault"), what, exactly_one=True)
        if _local(body.tag) == "fault":
            (value,) = _elements(body, ("value",), what, exactly_one=True)
            raise _fault(_Walk(scalars, max_depth, what).decode(value), what)
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
        values.append(_Walk(scalars, max_depth, what).decode(value))
    return tuple(values)


class _Walk:
    """The walk of one <value>: scalars are decoded where they stand; a struct or array is
    made empty where it stands and filled later from a stack (no recursion). Values go in in
    document order, so of two equal struct names the last wins, as in xmlrpc.client."""

    def __init__(self, scalars: dict[str, Callable[[str], Any]], max_depth: int,
                 what: str) -> None:
        self.scalars = scalars
        self.max_depth = max_depth
        self.what = what
        # (<struct> or <array>, the dict or list to fill, the depth of its values)
        self.to_fill: list[tuple[etree._Element, Any, int]] = []

    def decode(self, top: etree._Element) -> Any:
        decoded = self.value(top, 0)
        to_fill = self.to_fill
        while to_fill:
            element, into, depth = to_fill.pop()
            if into.__class__ is dict:
                self.fill_struct(element, into, depth)
            else:
                self.fill_array(element, into, depth)
        return decoded

    def value(self, element: etree._Element, depth: int) -> Any:
        """The value of one <value> at `depth` (an empty dict or list for a container)."""
        count = len(element)
        if count == 0:
            return element.text or ""
        typed = element[0] if count == 1 else _typed(element, self.what)
        if typed is None or typed.tag.__class__ is not str:  # text and comments only
            return _text(element, self.what)
        tag = typed.tag
        if tag not in self.scalars and tag not in _CONTAINERS:
            tag = _local(tag)  # ex:nil, or a type in a namespace
        convert = self.scalars.get(tag)
        if convert is not None:
            text = (typed.text or "") if len(typed) == 0 else _text(typed, self.what)
            try:
                return convert(text)
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise NotXmlRpc(f"{self.what}: bad <{tag}> value {text[:40]!r} "
                                f"({exc})") from None
        if tag not in _CONTAINERS:
            raise NotXmlRpc(f"{self.what}: unknown XML-RPC type <{tag}>")
        if depth >= self.max_depth:
            raise _too_deep(self.what, self.max_depth)
        container: Any = {} if tag == "struct" else []
        self.to_fill.append((typed, container, depth + 1))
        return container

    def fill_struct(self, struct: etree._Element, decoded: dict[str, Any], depth: int) -> None:
        what = self.what
        for member in struct:
            if member.tag != "member" and _skipped(member, "member", struct, what):
                continue
            if len(member) == 2:  # the usual <name>text</name><value>...</value>, inline
                name_element, value = member
                if name_element.tag == "name" and value.tag == "value" and not len(
                        name_element):
                    decoded[name_element.text or ""] = self.value(value, depth)
                    continue
            name, value = _member(member, what)
            decoded[name] = self.value(value, depth)

    def fill_array(self, array: etree._Element, decoded: list[Any], depth: int) -> None:
        holders = _elements(array, ("data",), self.what)
        if len(holders) > 1:
            raise NotXmlRpc(f"{self.what}: an array holds one <data>")
        if holders:
            value = self.value
            decoded.extend(value(element, depth)
                           for element in _elements(holders[0], ("value",), self.what))


def _too_deep(what: str, max_depth: int) -> BadArgs:
    return BadArgs(f"{what} nests arrays and structs deeper than {max_depth} levels")


_CONTAINER_TAG = re.compile(rb"<(/?)(?:[A-Za-z_][\w.-]*:)?(?:array|struct)[\s/>]")


def _nesting(data: str | bytes) -> int:
    """How deep <array> and <struct> tags nest, read from the text (for a document the
    parser refused)."""
    text = data.encode("utf-8", "replace") if isinstance(data, str) else data
    depth = deepest = 0
    for tag in _CONTAINER_TAG.finditer(text):
        depth += -1 if tag.group(1) else 1
        deepest = max(deepest, depth)
    return deepest


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
    if any(isinstance(child.tag, str) for child in element):
        raise NotXmlRpc(f"{what}: <{_local(element.tag)}> holds an element; it holds text")
    return character_data(element)


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
