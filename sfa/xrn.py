"""Names: HRN <-> URN, escaping, RFC 3151 transcription and validation (`spec/naming.md`).

An HRN is dot-separated, top authority first; a literal dot (or backslash) inside a component is
escaped with a backslash. A URN is `urn:publicid:IDN+<authority>+<type>+<name>`, the authority's
components joined with `:`. Both spell one name and round-trip exactly on canonical forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from sfa.errors import BadArgs

URN_PREFIX = "urn:publicid:IDN"
AUTHORITY_SERVICES = ("sa", "am", "sm", "cm", "ma")
MAX_HRN_LENGTH = 256
MAX_URN_LENGTH = 4096
# Parsed names kept per process (pure functions of the text; a node host's thousand node
# managers parse the same few slice, node and authority names on every call).
NAME_CACHE_SIZE = 4096
CACHED_NAME_LENGTH = 512  # longer names are parsed every time (the caches stay ~4 MB at most)

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Characters a URN may carry literally (RFC 2141 <trans> and reserved), besides %-escapes.
_URN_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789()+,-.:=@;$_!*'%/?#"
)
# Characters GENI always %-escapes inside a field (`;` stands for `::`).
_ALWAYS_ESCAPED = frozenset("%;'#?")
_AUTHORITY_ESCAPED = frozenset(":+/")
_HEX = frozenset("0123456789abcdefABCDEF")


def _class_of(chars: frozenset[str]) -> str:
    return "[" + "".join(re.escape(ch) for ch in sorted(chars)) + "]"


# Fast paths of the character loops below (the loops still decide every other case).
_URN_UNSAFE_RE = re.compile(_class_of(_URN_SAFE).replace("[", "[^", 1))
_PLAIN_FIELD_RE = {
    "name": re.compile(_class_of(_URN_SAFE - _ALWAYS_ESCAPED) + "*"),
    "authority": re.compile(_class_of(_URN_SAFE - _ALWAYS_ESCAPED - _AUTHORITY_ESCAPED) + "*"),
}

_SLICE_NAME_RE = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]{0,18}$")
_SLIVER_NAME_RE = re.compile(r"^[-a-zA-Z0-9_.]{1,256}$")
_USER_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]{0,63}$")

Field = Literal["authority", "name"]


# --- HRN components ---------------------------------------------------------------------------


def _cached(function: Any, *texts: str) -> Any:
    """`function(*texts)` through its cache unless a text is too long to be worth keeping."""
    for text in texts:
        if len(text) > CACHED_NAME_LENGTH:
            return function.__wrapped__(*texts)
    return function(*texts)


def _check_text(text: str, what: str) -> None:
    # The space is the only whitespace character str.isprintable() accepts.
    if " " in text or not text.isprintable():
        raise BadArgs(f"{what} contains whitespace or a control character: {text[:80]!r}")


def hrn_split(hrn: str) -> list[str]:
    """The unescaped components of an HRN (`emulab\\.net.proj` -> `['emulab.net', 'proj']`)."""
    if not isinstance(hrn, str):
        raise BadArgs(f"an HRN must be a string, got {type(hrn).__name__}")
    return list(_cached(_hrn_split, str(hrn)))


@lru_cache(maxsize=NAME_CACHE_SIZE)
def _hrn_split(hrn: str) -> tuple[str, ...]:
    if not hrn:
        raise BadArgs("empty HRN")
    if len(hrn) > MAX_HRN_LENGTH:
        raise BadArgs(f"HRN longer than {MAX_HRN_LENGTH} characters: {hrn[:64]!r}...")
    _check_text(hrn, "HRN")
    if "\\" not in hrn:
        plain = tuple(hrn.split("."))
        if not all(plain):
            raise BadArgs(f"HRN has an empty component: {hrn!r}")
        return plain
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(hrn):
        ch = hrn[index]
        if ch == "\\":
            if index + 1 >= len(hrn) or hrn[index + 1] not in ".\\":
                raise BadArgs(f"HRN has a stray backslash (only \\. and \\\\ escape): {hrn!r}")
            current.append(hrn[index + 1])
            index += 2
            continue
        if ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        index += 1
    parts.append("".join(current))
    if any(not part for part in parts):
        raise BadArgs(f"HRN has an empty component: {hrn!r}")
    return tuple(parts)


def _escape_component(component: str) -> str:
    return component.replace("\\", "\\\\").replace(".", "\\.")


def hrn_join(parts: list[str] | tuple[str, ...]) -> str:
    """The HRN of unescaped components (the inverse of `hrn_split`)."""
    if not parts or any(not part for part in parts):
        raise BadArgs(f"cannot build an HRN from empty components: {list(parts)!r}")
    hrn = ".".join(_escape_component(part) for part in parts)
    validate_hrn(hrn)
    return hrn


def validate_hrn(hrn: str) -> str:
    """Return the HRN when well formed; BadArgs otherwise."""
    hrn_split(hrn)
    return hrn


def hrn_authority(hrn: str) -> str:
    """Everything but the leaf (`plc.princeton.alice` -> `plc.princeton`; `plc` -> ``)."""
    parts = hrn_split(hrn)
    return hrn_join(parts[:-1]) if len(parts) > 1 else ""


def hrn_leaf(hrn: str) -> str:
    """The last component, unescaped (`ple.inria.node1\\.inria\\.fr` -> `node1.inria.fr`)."""
    return hrn_split(hrn)[-1]


_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def name_key(name: str) -> str:
    """The form in which names (HRNs and URNs) compare: GENI URNs compare case-insensitively,
    so `plc.lab.ASLICE` and `plc.lab.aslice` are one name. ASCII letters only are folded, as
    SQLite's NOCASE collation does, so the registry's unique index agrees with this."""
    return name.translate(_ASCII_FOLD)


def same_name(a: str, b: str) -> bool:
    """True when the names `a` and `b` (two HRNs or two URNs) are one name."""
    return name_key(a) == name_key(b)


def is_authority_for(authority_hrn: str, hrn: str) -> bool:
    """True when `authority_hrn` is `hrn` or one of its ancestors, compared component-wise."""
    if not authority_hrn or not hrn:
        return False
    try:
        authority = hrn_split(name_key(authority_hrn))
        name = hrn_split(name_key(hrn))
    except BadArgs:
        return False
    return len(authority) <= len(name) and name[: len(authority)] == authority


# --- URN fields -------------------------------------------------------------------------------


def _encode_field(text: str, field: Field) -> str:
    if _PLAIN_FIELD_RE[field].fullmatch(text) and (field != "name" or "::" not in text):
        return text
    out: list[str] = []
    index = 0
    while index < len(text):
        ch = text[index]
        if field == "name" and text.startswith("::", index):
            out.append(";")
            index += 2
            continue
        escaped = ch in _ALWAYS_ESCAPED or (field == "authority" and ch in _AUTHORITY_ESCAPED)
        if escaped or ch not in _URN_SAFE:
            out.extend(f"%{byte:02X}" for byte in ch.encode("utf-8"))
        else:
            out.append(ch)
        index += 1
    return "".join(out)


def _decode_field(text: str, urn: str) -> str:
    if text.isascii() and "%" not in text and ";" not in text:
        return text
    out = bytearray()
    index = 0
    while index < len(text):
        ch = text[index]
        if ch == "%":
            pair = text[index + 1 : index + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise BadArgs(f"URN has a bad %-escape at {text[index:index + 3]!r}: {urn[:120]!r}")
            out.append(int(pair, 16))
            index += 3
            continue
        out.extend(b"::" if ch == ";" else ch.encode())
        index += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise BadArgs(f"URN %-escapes are not UTF-8: {urn[:120]!r}") from None


def _normalize_type(type: str) -> tuple[str, str | None]:
    """(base type, authority service or None); `authority` means `authority+sa`."""
    if isinstance(type, str) and 0 < len(type) <= 64:
        return _cached_type(str(type))
    return _normalized_type(type)


@lru_cache(maxsize=256)
def _cached_type(type: str) -> tuple[str, str | None]:
    return _normalized_type(type)


def _normalized_type(type: str) -> tuple[str, str | None]:
    if not isinstance(type, str) or not type:
        raise BadArgs("a name type is required (user, slice, node, authority, ...)")
    lowered = type.lower()
    if lowered == "authority":
        return "authority", "sa"
    if lowered.startswith("authority+"):
        service = lowered.split("+", 1)[1]
        if service not in AUTHORITY_SERVICES:
            raise BadArgs(
                f"unknown authority service {service!r}: use one of {', '.join(AUTHORITY_SERVICES)}"
            )
        return "authority", service
    if not _TYPE_RE.match(lowered):
        raise BadArgs(f"not a valid name type: {type[:40]!r}")
    return lowered, None


def is_authority_type(type: str) -> bool:
    """True for `authority` and every `authority+<service>` (`am`, but also a foreign `ca`)."""
    return type == "authority" or type.startswith("authority+")


def _public_type(service: str | None, base: str) -> str:
    if base != "authority":
        return base
    return "authority" if service == "sa" else f"authority+{service}"


def hrn_to_urn(hrn: str, type: str) -> str:
    """The URN of an HRN of a type (`authority` == `authority+sa`; `authority+am`, ...)."""
    if not (isinstance(hrn, str) and isinstance(type, str)):
        return str(_hrn_to_urn.__wrapped__(hrn, type))  # refused there, never cached
    return _cached(_hrn_to_urn, str(hrn), str(type))


@lru_cache(maxsize=NAME_CACHE_SIZE)
def _hrn_to_urn(hrn: str, type: str) -> str:
    base, service = _normalize_type(type)
    parts = hrn_split(hrn)
    if base == "authority":
        authority, name = parts, service or "sa"
    else:
        if len(parts) < 2:
            raise BadArgs(f"a {base} name needs an authority: {hrn!r} has a single component")
        authority, name = parts[:-1], parts[-1]
    encoded_authority = ":".join(_encode_field(part, "authority") for part in authority)
    return f"{URN_PREFIX}+{encoded_authority}+{base}+{_encode_field(name, 'name')}"


def _check_urn_text(urn: str) -> None:
    if not isinstance(urn, str):
        raise BadArgs(f"a URN must be a string, got {type(urn).__name__}")
    if len(urn) > MAX_URN_LENGTH:
        raise BadArgs(f"URN longer than {MAX_URN_LENGTH} characters: {urn[:64]!r}...")
    if not urn[: len(URN_PREFIX) + 1].lower() == URN_PREFIX.lower() + "+":
        raise BadArgs(f"not a URN (expected {URN_PREFIX}+...): {urn[:120]!r}")
    bad = sorted({ch for ch in urn if ch not in _URN_SAFE}) if _URN_UNSAFE_RE.search(urn) else []
    if bad:
        raise BadArgs(f"URN contains characters that must be %-escaped {bad!r}: {urn[:120]!r}")


def urn_to_hrn(urn: str) -> tuple[str, str]:
    """(hrn, type) of a URN; type is `authority` for `+authority+sa`, `authority+am` etc.
    (`authority+ca` and any other `+authority+<name>` read, though never written)."""
    if not isinstance(urn, str):
        raise BadArgs(f"a URN must be a string, got {type(urn).__name__}")
    return _cached(_urn_to_hrn, str(urn))


@lru_cache(maxsize=NAME_CACHE_SIZE)
def _urn_to_hrn(urn: str) -> tuple[str, str]:
    _check_urn_text(urn)
    fields = urn[len(URN_PREFIX) + 1 :].split("+", 2)
    if len(fields) != 3 or not all(fields):
        raise BadArgs(f"a URN needs +authority+type+name: {urn[:120]!r}")
    authority_text, type_text, name_text = fields
    base_service: str | None
    components = [_decode_field(part, urn) for part in authority_text.split(":")]
    name = _decode_field(name_text, urn)
    if type_text.lower() == "authority":
        # Read leniently: other software names authorities `+authority+ca` (C-BAS, the GENI
        # clearinghouse) and so on; only the services of AUTHORITY_SERVICES are ever written.
        if not _TYPE_RE.match(name.lower()):
            services = "|".join(AUTHORITY_SERVICES)
            raise BadArgs(f"authority URN must end in +authority+{services} (or another "
                          f"plain service name): {urn[:120]!r}")
        base, base_service = "authority", name.lower()
    else:
        base, base_service = _normalize_type(type_text)
        components.append(name)
    if any(not part for part in components):
        raise BadArgs(f"URN has an empty authority component: {urn[:120]!r}")
    return hrn_join(components), _public_type(base_service, base)


# --- RFC 3151 transcription -------------------------------------------------------------------

_PUBLICID_TO_URN = (
    ("%", "%25"),
    (";", "%3B"),
    ("+", "%2B"),
    ("#", "%23"),
    ("?", "%3F"),
    ("'", "%27"),
    (":", "%3A"),
    ("/", "%2F"),
)


def publicid_to_urn(publicid: str) -> str:
    """RFC 3151: `IDN plc//princeton user alice` -> `urn:publicid:IDN+plc:princeton+user+alice`."""
    words = publicid.split()
    text = " ".join(words)
    text = text.replace("::", "\x00").replace("//", "\x01")
    for plain, escaped in _PUBLICID_TO_URN:
        text = text.replace(plain, escaped)
    text = text.replace(" ", "+").replace("\x00", ";").replace("\x01", ":")
    return f"urn:publicid:{text}"


def urn_to_publicid(urn: str) -> str:
    """RFC 3151, the other way: `+` -> space, `:` -> `//`, `;` -> `::`, %-escapes decoded."""
    _check_urn_text(urn)
    text = urn[len("urn:publicid:") :]
    return _decode_field(text.replace("+", " ").replace(":", "//"), urn)


# --- Xrn --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Xrn:
    """One name in both spellings, with its type."""

    hrn: str
    type: str
    urn: str

    @classmethod
    def from_urn(cls, urn: str) -> Xrn:
        hrn, type = urn_to_hrn(urn)
        return cls(hrn=hrn, type=type, urn=hrn_to_urn(hrn, type))

    @classmethod
    def from_hrn(cls, hrn: str, type: str) -> Xrn:
        base, service = _normalize_type(type)
        return cls(hrn=hrn, type=_public_type(service, base), urn=hrn_to_urn(hrn, type))

    @classmethod
    def parse(cls, hrn_or_urn: str, type: str | None = None) -> Xrn:
        """An Xrn from a URN (its type must equal `type` when given) or an HRN and a type."""
        if isinstance(hrn_or_urn, str) and hrn_or_urn[:16].lower() == URN_PREFIX.lower():
            return validate_urn(hrn_or_urn, type)
        if type is None:
            raise BadArgs(f"{hrn_or_urn!r} is not a URN; an HRN needs a type")
        return cls.from_hrn(hrn_or_urn, type)

    @property
    def leaf(self) -> str:
        return hrn_leaf(self.hrn)

    @property
    def authority_hrn(self) -> str:
        """The HRN of the authority above this name (`` for a top-level authority)."""
        return hrn_authority(self.hrn)

    @property
    def authority_urn(self) -> str:
        """The URN (`+authority+sa`) of the authority above this name (`` for a top-level one)."""
        authority = self.authority_hrn
        return hrn_to_urn(authority, "authority") if authority else ""

    @property
    def is_authority(self) -> bool:
        return self.type.startswith("authority")

    def __str__(self) -> str:
        return self.urn


def validate_urn(urn: str, expected_type: str | tuple[str, ...] | None = None) -> Xrn:
    """The Xrn of a well-formed URN; BadArgs if malformed or not of the expected type."""
    xrn = Xrn.from_urn(urn)
    if expected_type is None:
        return xrn
    wanted = (expected_type,) if isinstance(expected_type, str) else expected_type
    normalized = {_public_type(s, b) for b, s in map(_normalize_type, wanted)}
    if xrn.type not in normalized:
        raise BadArgs(
            f"expected a {' or '.join(sorted(normalized))} URN, got a {xrn.type} URN: {urn[:120]}"
        )
    return xrn


def validate_slice_name(name: str) -> str:
    """A GENI AM API v3 slice name: at most 19 of [-a-zA-Z0-9], starting alphanumeric."""
    if not isinstance(name, str) or not _SLICE_NAME_RE.match(name):
        raise BadArgs(
            f"invalid slice name {str(name)[:40]!r}: use 1-19 letters, digits or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_sliver_name(name: str) -> str:
    """A sliver name: letters, digits, `-`, `_`, `.` only."""
    if not isinstance(name, str) or not _SLIVER_NAME_RE.match(name):
        raise BadArgs(f"invalid sliver name {str(name)[:40]!r}: use letters, digits, '-', '_', '.'")
    return name


def validate_user_name(name: str) -> str:
    """A user name: a letter, then letters, digits, `_`, `.`, `-` (GENI recommends <= 8)."""
    if not isinstance(name, str) or not _USER_NAME_RE.match(name):
        raise BadArgs(
            f"invalid user name {str(name)[:40]!r}: start with a letter, then up to 63 letters, "
            "digits, '_', '.' or '-'"
        )
    return name
