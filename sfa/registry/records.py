"""Registry records (authority, user, slice, node) and their wire form (`spec/registry-api.md`).

`to_wire()` speaks the spec's field names (`reg-urn`, `reg-keys`, `reg-researchers`, ...);
`record_from_wire()` / `parse_wire_fields()` also accept the aliases clients send (`keys`,
`researcher`, `pi`) and refuse a caller-supplied `gid`: the registry issues GIDs itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from sfa.errors import BadArgs, Forbidden, MissingArgs, SfaError
from sfa.timeutil import format_rfc3339, parse_time
from sfa.trust.gid import GID
from sfa.xrn import Xrn, hrn_authority, hrn_to_urn, validate_hrn

RECORD_TYPES = ("authority", "user", "slice", "node")
MAX_TEXT = 4096
MAX_LIST = 1000

# wire name -> canonical field name (aliases included)
_WIRE_ALIASES: dict[str, str] = {
    "email": "email",
    "reg-keys": "keys", "keys": "keys",
    "expires": "expires",
    "description": "description",
    "url": "url",
    "reg-researchers": "researchers", "researcher": "researchers",
    "reg-pis": "pis", "pi": "pis",
    "name": "name",
    "hostname": "hostname",
    "component_manager": "component_manager",
    "site": "site",
}
_LIST_FIELDS = frozenset({"keys", "researchers", "pis"})
_USER_LISTS = frozenset({"researchers", "pis"})


@dataclass(kw_only=True)
class Record:
    """Fields every record has; `urn` and `authority` are derived from `hrn` and the type."""

    TYPE: ClassVar[str] = ""
    WRITABLE: ClassVar[frozenset[str]] = frozenset()
    PRIVATE: ClassVar[frozenset[str]] = frozenset()

    hrn: str
    gid: str | None = None
    date_created: datetime | None = None
    last_updated: datetime | None = None
    id: int | None = field(default=None, compare=False)

    @property
    def type(self) -> str:
        return self.TYPE

    @property
    def urn(self) -> str:
        return hrn_to_urn(self.hrn, self.TYPE)

    @property
    def authority(self) -> str:
        return hrn_authority(self.hrn)

    def to_wire(self, *, include_private: bool = True) -> dict[str, Any]:
        """The record as the spec spells it; None values are left out (XML-RPC has no nil)."""
        wire: dict[str, Any] = {
            "hrn": self.hrn, "type": self.TYPE, "reg-urn": self.urn, "gid": self.gid,
            "authority": self.authority,
            "date_created": _time(self.date_created), "last_updated": _time(self.last_updated),
        }
        wire.update(self._typed_wire())
        for name in () if include_private else self.PRIVATE:
            wire.pop(name, None)
        return {key: value for key, value in wire.items() if value is not None}

    def _typed_wire(self) -> dict[str, Any]:
        return {}


@dataclass(kw_only=True)
class UserRecord(Record):
    TYPE: ClassVar[str] = "user"
    WRITABLE: ClassVar[frozenset[str]] = frozenset({"email", "keys"})
    PRIVATE: ClassVar[frozenset[str]] = frozenset({"email"})

    email: str | None = None
    keys: list[str] = field(default_factory=list)
    slices: list[str] = field(default_factory=list)
    pi_authorities: list[str] = field(default_factory=list)

    def _typed_wire(self) -> dict[str, Any]:
        return {
            "email": self.email, "reg-keys": list(self.keys), "reg-slices": list(self.slices),
            "reg-pi-authorities": list(self.pi_authorities),
        }


@dataclass(kw_only=True)
class SliceRecord(Record):
    TYPE: ClassVar[str] = "slice"
    WRITABLE: ClassVar[frozenset[str]] = frozenset(
        {"researchers", "expires", "description", "url"}
    )

    researchers: list[str] = field(default_factory=list)
    expires: datetime | None = None
    description: str | None = None
    url: str | None = None

    def _typed_wire(self) -> dict[str, Any]:
        return {
            "reg-researchers": list(self.researchers), "expires": _time(self.expires),
            "description": self.description, "url": self.url,
        }


@dataclass(kw_only=True)
class AuthorityRecord(Record):
    TYPE: ClassVar[str] = "authority"
    WRITABLE: ClassVar[frozenset[str]] = frozenset({"pis", "name"})

    pis: list[str] = field(default_factory=list)
    name: str | None = None

    def _typed_wire(self) -> dict[str, Any]:
        return {"reg-pis": list(self.pis), "name": self.name}


@dataclass(kw_only=True)
class NodeRecord(Record):
    TYPE: ClassVar[str] = "node"
    WRITABLE: ClassVar[frozenset[str]] = frozenset({"hostname", "component_manager", "site"})

    hostname: str | None = None
    component_manager: str | None = None
    site: str | None = None

    def _typed_wire(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname, "component_manager": self.component_manager,
            "site": self.site,
        }


RECORD_CLASSES: dict[str, type[Record]] = {
    cls.TYPE: cls for cls in (AuthorityRecord, UserRecord, SliceRecord, NodeRecord)
}


def _time(value: datetime | None) -> str | None:
    return format_rfc3339(value) if value is not None else None


def record_class(type: str) -> type[Record]:
    """The Record class of a registry type; BadArgs for anything else."""
    if not isinstance(type, str) or type not in RECORD_CLASSES:
        choices = ", ".join(RECORD_TYPES)
        raise BadArgs(f"unknown record type {str(type)[:40]!r}: use one of {choices}")
    return RECORD_CLASSES[type]


def wire_name(data: Mapping[str, Any]) -> Xrn:
    """The name (and type) a wire record is about: `hrn` + `type`, or `reg-urn` / `urn`."""
    if not isinstance(data, Mapping):
        raise BadArgs(f"a record must be a struct, got {type(data).__name__}")
    urn = data.get("reg-urn") or data.get("urn")
    type_ = data.get("type")
    if urn:
        xrn = Xrn.parse(_text(urn, "reg-urn"), None)
        if type_ is not None and type_ != xrn.type:
            raise BadArgs(f"record type {type_!r} does not match its URN {xrn.urn}")
        if data.get("hrn") is not None and data["hrn"] != xrn.hrn:
            raise BadArgs(f"record hrn {data['hrn']!r} does not match its URN {xrn.urn}")
        record_class(xrn.type)
        return xrn
    if data.get("hrn") is None:
        raise MissingArgs("a record needs 'hrn' and 'type' (or 'reg-urn')")
    if type_ is None:
        raise MissingArgs("a record needs a 'type' (authority, user, slice or node)")
    record_class(type_)
    return Xrn.from_hrn(validate_hrn(_text(data["hrn"], "hrn")), type_)


def parse_wire_fields(
    data: Mapping[str, Any], type: str, stored_gid: str | None = None
) -> dict[str, Any]:
    """The writable fields present in `data`, canonical names, values checked and normalized.

    Fields the registry computes (`reg-slices`, dates, ...) are ignored; a `gid` is refused
    unless it is `stored_gid` itself (clients such as omni send back the record they resolved).
    """
    if "gid" in data and not _same_gid(data["gid"], stored_gid):
        raise Forbidden(
            "the registry issues GIDs itself: remove the 'gid' field (send your public key in "
            "'reg-keys' instead)"
        )
    writable = record_class(type).WRITABLE
    parsed: dict[str, Any] = {}
    for wire, canonical in _WIRE_ALIASES.items():
        if wire not in data or canonical not in writable:
            continue
        if canonical in parsed:
            raise BadArgs(f"field {canonical!r} given twice (under two of its names)")
        parsed[canonical] = _parse_value(canonical, data[wire])
    return parsed


def record_from_wire(data: Mapping[str, Any]) -> Record:
    """A new Record from a client's struct (Register): name, type and writable fields."""
    xrn = wire_name(data)
    cls = record_class(xrn.type)
    return cls(hrn=xrn.hrn, **parse_wire_fields(data, xrn.type))


def _same_gid(sent: Any, stored: str | None) -> bool:
    """True when `sent` is the stored GID's certificate (compared as certificates, not text)."""
    if not stored or not isinstance(sent, str | bytes):
        return False
    try:
        return GID.from_pem(sent).certificate == GID.from_pem(stored).certificate
    except (SfaError, ValueError):
        return False


def _parse_value(name: str, value: Any) -> Any:
    if name == "expires":
        return parse_time(value)
    if name in _LIST_FIELDS:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or len(items) > MAX_LIST:
            raise BadArgs(f"{name!r} must be a list of at most {MAX_LIST} strings")
        texts = [_text(item, name) for item in items]
        if name in _USER_LISTS:
            return [Xrn.parse(t, "user").hrn for t in texts]
        return texts
    if value == "":
        return None
    text = _text(value, name)
    if name == "email" and ("@" not in text or any(c.isspace() for c in text)):
        raise BadArgs(f"not an e-mail address: {text[:80]!r}")
    return text


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BadArgs(f"{name!r} must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise BadArgs(f"{name!r} is longer than {MAX_TEXT} characters")
    if any(not ch.isprintable() and ch not in "\t\r\n" for ch in value):
        raise BadArgs(f"{name!r} contains control characters")
    return value


def record_fields(record: Record) -> dict[str, Any]:
    """The typed fields of a record (everything but the common ones), by canonical name."""
    common = {f.name for f in fields(Record)}
    return {f.name: getattr(record, f.name) for f in fields(record) if f.name not in common}
