"""Rights: the privileges a credential grants, the operations each allows, and which operation
each API method needs (`spec/trust.md`, "Rights")."""

from __future__ import annotations

from collections.abc import Iterable

ALL_OPERATIONS = "*"

RIGHTS: dict[str, frozenset[str]] = {
    "authority": frozenset(
        {"register", "remove", "update", "resolve", "list", "getcredential", ALL_OPERATIONS}
    ),
    "refresh": frozenset({"remove", "update"}),
    "resolve": frozenset({"resolve", "list", "getcredential"}),
    "sa": frozenset(
        {
            "getticket", "redeemticket", "createslice", "createsliver", "deleteslice",
            "deletesliver", "updateslice", "getsliceresources", "stopslice", "startslice",
            "renewsliver", "resetslice", "listslices", "listnodes", "sliverstatus",
        }
    ),
    "embed": frozenset(
        {
            "getticket", "redeemticket", "createslice", "createsliver", "renewsliver",
            "deleteslice", "deletesliver", "updateslice", "sliverstatus", "getsliceresources",
            "shutdown",
        }
    ),
    "bind": frozenset({"getticket", "redeemticket"}),
    "control": frozenset(
        {
            "updateslice", "createslice", "createsliver", "renewsliver", "sliverstatus",
            "stopslice", "startslice", "deleteslice", "deletesliver", "resetslice",
            "getsliceresources", "getgids",
        }
    ),
    "info": frozenset({"listslices", "listnodes"}),
    "ma": frozenset({"getgids", "gettrustedcerts"}),
    "operator": frozenset({"gettrustedcerts", "getgids"}),
}

DEFAULT_RIGHTS: dict[str, tuple[str, ...]] = {
    "user": ("refresh", "resolve", "info"),
    "slice": ("refresh", "embed", "bind", "control", "info"),
    "authority": ("authority", "sa", "ma"),
    "node": ("operator",),
}

OPERATION_FOR_METHOD: dict[str, str | None] = {
    # AM API v3 and v2
    "Allocate": "createsliver",
    "Provision": "createsliver",
    "PerformOperationalAction": "createsliver",
    "CreateSliver": "createsliver",
    "Delete": "deleteslice",
    "DeleteSliver": "deleteslice",
    "Status": "getsliceresources",
    "Describe": "getsliceresources",
    "SliverStatus": "getsliceresources",
    "ListResources": None,
    "Renew": "renewsliver",
    "RenewSliver": "renewsliver",
    "Shutdown": "shutdown",
    "GetVersion": None,
    # registry
    "Resolve": "resolve",
    "List": "list",
    "Register": "register",
    "Update": "update",
    "Remove": "remove",
    "GetCredential": "getcredential",
    "CreateGid": "update",
    "GetGids": "getgids",
    "get_trusted_certs": "gettrustedcerts",
}

KNOWN_OPERATIONS: frozenset[str] = frozenset().union(*RIGHTS.values()) - {ALL_OPERATIONS}


def default_rights(target_type: str) -> tuple[str, ...]:
    """The rights `*` stands for on a target of this type (`authority+am` counts as authority)."""
    base = target_type.split("+", 1)[0]
    return DEFAULT_RIGHTS.get(base, ())


def expand_privileges(names: Iterable[str], target_type: str) -> frozenset[str]:
    """Right names with `*` replaced by the default rights of the target type."""
    result: set[str] = set()
    for name in names:
        result.update(default_rights(target_type) if name == "*" else (name,))
    return frozenset(result)


def operations_granted(privileges: Iterable[str]) -> frozenset[str]:
    """Every operation the rights allow; contains `*` when one of them allows everything."""
    granted: set[str] = set()
    for name in privileges:
        granted.update(RIGHTS.get(name, ()))
    return frozenset(granted)


def allows(privileges: Iterable[str], operation: str) -> bool:
    """True when these rights allow `operation` (an operation name of the table)."""
    granted = operations_granted(privileges)
    return ALL_OPERATIONS in granted or operation.lower() in granted


def operation_for(method_or_operation: str) -> str | None:
    """An operation name, given either an API method (`Allocate`) or an operation."""
    if method_or_operation in OPERATION_FOR_METHOD:
        return OPERATION_FOR_METHOD[method_or_operation]
    return method_or_operation.lower()
