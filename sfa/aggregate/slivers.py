"""Sliver records and their allocation and operational state machines (AM API v3)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum

from sfa.errors import Unsupported


class AllocationState(StrEnum):
    """Where a sliver is in its reservation life."""

    UNALLOCATED = "geni_unallocated"
    ALLOCATED = "geni_allocated"
    PROVISIONED = "geni_provisioned"


class OperationalState(StrEnum):
    """What a provisioned sliver is doing."""

    PENDING_ALLOCATION = "geni_pending_allocation"
    NOTREADY = "geni_notready"
    CONFIGURING = "geni_configuring"
    STOPPING = "geni_stopping"
    READY = "geni_ready"
    READY_BUSY = "geni_ready_busy"
    FAILED = "geni_failed"


class Action(StrEnum):
    """The operational actions an aggregate performs on provisioned slivers."""

    START = "geni_start"
    RESTART = "geni_restart"
    STOP = "geni_stop"
    UPDATE_USERS = "geni_update_users"


# action -> (states it may start from, transient state, state it ends in)
ACTION_TRANSITIONS: dict[Action, tuple[frozenset[OperationalState], OperationalState,
                                       OperationalState]] = {
    Action.START: (frozenset({OperationalState.NOTREADY}), OperationalState.CONFIGURING,
                   OperationalState.READY),
    Action.RESTART: (frozenset({OperationalState.READY, OperationalState.FAILED}),
                     OperationalState.CONFIGURING,
                     OperationalState.READY),
    Action.STOP: (frozenset({OperationalState.READY}), OperationalState.STOPPING,
                  OperationalState.NOTREADY),
    Action.UPDATE_USERS: (frozenset({OperationalState.READY, OperationalState.NOTREADY,
                                     OperationalState.CONFIGURING}),
                          OperationalState.READY, OperationalState.READY),
}


@dataclass(frozen=True)
class UserKeys:
    """A user allowed to log into a sliver and their SSH public keys."""

    urn: str
    keys: tuple[str, ...]
    login: str = ""


@dataclass(frozen=True)
class Sliver:
    """One slice's share of one node, as the aggregate records it."""

    urn: str
    slice_urn: str
    node_urn: str
    client_id: str
    sliver_type: str
    exclusive: bool
    expires: datetime
    created: datetime
    allocation: AllocationState = AllocationState.ALLOCATED
    operational: OperationalState = OperationalState.PENDING_ALLOCATION
    error: str = ""
    users: tuple[UserKeys, ...] = ()
    bound: bool = False
    login_port: int = 22
    login_user: str = ""
    initscript: str = ""

    def with_changes(self, **changes: object) -> Sliver:
        """A copy with some fields changed (slivers are immutable values).

        What `dataclasses.replace` gives, at a quarter of its cost (it is asked several times
        per sliver per call): the fields copied, then the changes; Sliver has no __post_init__
        for a copy to skip."""
        unknown = changes.keys() - _SLIVER_FIELDS
        if unknown:
            raise TypeError(f"Sliver has no field {sorted(unknown)[0]!r}")
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy


_SLIVER_FIELDS = frozenset(f.name for f in fields(Sliver))


def parse_action(name: object) -> Action:
    """The action for `name`; UNSUPPORTED for an unknown or empty one."""
    if not isinstance(name, str) or not name:
        raise Unsupported("PerformOperationalAction needs an action such as geni_start")
    try:
        return Action(name)
    except ValueError:
        known = ", ".join(a.value for a in Action)
        raise Unsupported(f"unknown operational action {name[:64]!r}; supported: {known}") from None


def check_action_allowed(sliver: Sliver, action: Action) -> None:
    """UNSUPPORTED unless `sliver` is provisioned and in a state `action` may start from."""
    if sliver.allocation is not AllocationState.PROVISIONED:
        raise Unsupported(
            f"sliver {sliver.urn} is {sliver.allocation.value}; provision it before {action.value}"
        )
    allowed, _, _ = ACTION_TRANSITIONS[action]
    if sliver.operational not in allowed:
        states = ", ".join(sorted(s.value for s in allowed))
        raise Unsupported(
            f"sliver {sliver.urn} is {sliver.operational.value}; {action.value} needs one of: "
            f"{states}"
        )


def final_state(action: Action) -> OperationalState:
    """The operational state a sliver reaches when `action` completes."""
    return ACTION_TRANSITIONS[action][2]
