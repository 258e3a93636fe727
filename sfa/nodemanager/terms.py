"""What a verified ticket grants, in the node manager's own terms (one adapter over
`sfa.trust.ticket.Ticket`, so the rest of the package never depends on its shape)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sfa.errors import BadArgs
from sfa.nodemanager.backend import UserKeys
from sfa.nodemanager.resources import Resources
from sfa.timeutil import as_utc, format_rfc3339, parse_rfc3339

MAX_INITSCRIPT = 64 * 1024
MAX_KEYS = 256


@dataclass(frozen=True)
class TicketTerms:
    """The fields of a verified ticket the node manager acts on."""

    serial: str
    issuer_urn: str
    slice_urn: str
    slice_gid_pem: str
    node_urn: str
    sliver_urn: str
    valid_from: datetime | None
    expires: datetime
    resources: Resources
    users: tuple[UserKeys, ...]
    slice_public_key: str | None
    initscript: str

    @property
    def digest(self) -> str:
        """A fingerprint of the content: the same serial must always carry the same terms."""
        document = {
            "serial": self.serial, "issuer": self.issuer_urn, "slice": self.slice_urn,
            "slice_gid": self.slice_gid_pem.strip(), "node": self.node_urn,
            "sliver": self.sliver_urn,
            "valid_from": format_rfc3339(self.valid_from) if self.valid_from else "",
            "expires": format_rfc3339(self.expires), "resources": self.resources.to_dict(),
            "users": [[user.urn, list(user.keys)] for user in self.users],
            "slice_key": self.slice_public_key or "", "initscript": self.initscript,
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def terms_of(ticket: Any) -> TicketTerms:
    """Read a `sfa.trust.ticket.Ticket` (already verified) into TicketTerms."""
    initscript = str(_get(ticket, "initscript", "") or "")
    if len(initscript) > MAX_INITSCRIPT:
        raise BadArgs(f"the ticket's init script is over {MAX_INITSCRIPT} bytes")
    users = _users(_get(ticket, "users", ()) or ())
    valid_from = _get(ticket, "valid_from", None)
    return TicketTerms(
        serial=str(_get(ticket, "serial")),
        issuer_urn=str(_get(ticket, "issuer_urn")),
        slice_urn=str(_get(ticket, "slice_urn")),
        slice_gid_pem=_pem(_get(ticket, "slice_gid")),
        node_urn=str(_get(ticket, "node_urn")),
        sliver_urn=str(_get(ticket, "sliver_urn")),
        valid_from=_time(valid_from) if valid_from else None,
        expires=_time(_get(ticket, "expires")),
        resources=_resources(_mapping(_get(ticket, "resources", None))),
        users=users,
        slice_public_key=(str(_get(ticket, "slice_keypair_public", "") or "").strip() or None),
        initscript=initscript,
    )


def users_from_wire(value: Any) -> tuple[UserKeys, ...]:
    """Users from an XML-RPC argument: [{urn, keys: [...]}] (GENI geni_users style also:
    {urn, keys} or {urn, key})."""
    return _users(value)


_MISSING = object()


def _get(ticket: Any, name: str, default: Any = _MISSING) -> Any:
    value = ticket.get(name, default) if isinstance(ticket, Mapping) else getattr(
        ticket, name, default
    )
    if value is _MISSING:
        raise BadArgs(f"the ticket has no {name}")
    return value


def _pem(value: Any) -> str:
    if hasattr(value, "to_pem"):
        return str(value.to_pem())
    return str(value)


def _time(value: Any) -> datetime:
    return as_utc(value) if isinstance(value, datetime) else parse_rfc3339(str(value))


def _mapping(value: Any) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, Mapping):
        return value
    if hasattr(value, "to_dict"):
        return dict(value.to_dict())
    if hasattr(value, "__dataclass_fields__"):
        return {name: getattr(value, name) for name in value.__dataclass_fields__}
    raise BadArgs("the ticket's resources are not readable")


def _resources(values: Mapping[str, Any] | None) -> Resources:
    """A ticket's grant; a field left at 0 takes the node's per-sliver default."""
    given = Resources.from_mapping(values).to_dict()
    defaults = Resources().to_dict()
    return Resources(**{name: given[name] or defaults[name] for name in given})


def _users(value: Any) -> tuple[UserKeys, ...]:
    if isinstance(value, Mapping):
        value = [{"urn": urn, "keys": keys} for urn, keys in value.items()]
    if not isinstance(value, Iterable) or isinstance(value, str | bytes):
        raise BadArgs("users must be a list of {urn, keys}")
    users: list[UserKeys] = []
    for item in value:
        if isinstance(item, UserKeys):
            users.append(item)
            continue
        urn = _get(item, "urn")
        keys = _get(item, "keys", None)
        if keys is None:
            keys = [_get(item, "key", None)] if _get(item, "key", None) else []
        if isinstance(keys, str) or not isinstance(keys, Iterable):
            keys = [keys]
        users.append(UserKeys(str(urn), tuple(_ssh_key(key) for key in keys)))
    if sum(len(user.keys) for user in users) > MAX_KEYS:
        raise BadArgs(f"more than {MAX_KEYS} user keys")
    return tuple(users)


def _ssh_key(key: Any) -> str:
    """One OpenSSH public key line: no newlines (they would add lines to authorized_keys)."""
    text = str(key).strip()
    if not text or "\n" in text or "\r" in text or "\0" in text or len(text) > 16384:
        raise BadArgs("a user key must be one OpenSSH public key line")
    if not text.startswith(("ssh-", "ecdsa-", "sk-")):
        raise BadArgs(f"not an OpenSSH public key: {text[:32]!r}")
    return text
