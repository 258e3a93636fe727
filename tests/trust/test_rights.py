"""The rights table, default rights by type and the operation each method needs."""

from __future__ import annotations

import pytest

from sfa.trust.rights import (
    DEFAULT_RIGHTS,
    OPERATION_FOR_METHOD,
    RIGHTS,
    allows,
    default_rights,
    expand_privileges,
    operation_for,
    operations_granted,
)


def test_default_rights_by_type() -> None:
    assert DEFAULT_RIGHTS["slice"] == ("refresh", "embed", "bind", "control", "info")
    assert DEFAULT_RIGHTS["user"] == ("refresh", "resolve", "info")
    assert DEFAULT_RIGHTS["authority"] == ("authority", "sa", "ma")
    assert default_rights("authority+am") == DEFAULT_RIGHTS["authority"]
    assert default_rights("unknown") == ()


@pytest.mark.parametrize(
    ("method", "operation"),
    [("Allocate", "createsliver"), ("Provision", "createsliver"), ("Delete", "deleteslice"),
     ("Describe", "getsliceresources"), ("Renew", "renewsliver"), ("Shutdown", "shutdown"),
     ("ListResources", None), ("Resolve", "resolve"), ("Register", "register"),
     ("GetCredential", "getcredential")],
)
def test_operation_for_method(method: str, operation: str | None) -> None:
    assert OPERATION_FOR_METHOD[method] == operation
    assert operation_for(method) == operation


def test_operation_for_passes_operations_through() -> None:
    assert operation_for("CreateSliver") == "createsliver"
    assert operation_for("renewsliver") == "renewsliver"


def test_slice_rights_allow_the_slice_operations_and_not_registry_writes() -> None:
    rights = DEFAULT_RIGHTS["slice"]
    for operation in ("createsliver", "deleteslice", "getsliceresources", "renewsliver",
                      "shutdown", "redeemticket"):
        assert allows(rights, operation)
    assert not allows(rights, "register")
    assert not allows(("info",), "createsliver")


def test_authority_right_allows_everything() -> None:
    assert "*" in operations_granted(["authority"])
    assert allows(["authority"], "createsliver")
    assert allows(["authority"], "anything-at-all")


def test_user_rights() -> None:
    assert allows(DEFAULT_RIGHTS["user"], "resolve")
    assert allows(DEFAULT_RIGHTS["user"], "update")
    assert not allows(DEFAULT_RIGHTS["user"], "createsliver")


def test_star_expands_by_target_type() -> None:
    assert expand_privileges(["*"], "slice") == frozenset(DEFAULT_RIGHTS["slice"])
    assert expand_privileges(["*", "pi"], "user") == frozenset({*DEFAULT_RIGHTS["user"], "pi"})


def test_unknown_rights_grant_nothing() -> None:
    assert operations_granted(["nonsense"]) == frozenset()
    assert set(RIGHTS) >= {"authority", "refresh", "resolve", "sa", "embed", "bind", "control",
                           "info", "ma", "operator"}
