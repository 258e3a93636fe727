"""Experiment descriptions (ED): a TOML file naming resource groups and the steps to run.

    [experiment]
    slice = "plc.princeton.exp1"
    name = "pingpong"               # the experiment id is NAME-<time>
    timeout_seconds = 60            # the whole run

    [groups]
    receivers = ["plc.node1", "plc.node2"]
    senders = ["plc.node3", "plc.node4"]

    [properties.receivers]          # configured on each member; apps see them as environment
    PORT = "9000"

    [[step]]
    group = "receivers"
    app = "listen"
    command = ["python3", "-c", "..."]
    env = { MODE = "tcp" }
    wait = "started"                # "exit" (default), "started" or "none"

    [[step]]
    wait_for = "listen"             # until that app has exited on every member of its group

Every app sees OMF_SLICE, OMF_NODE, OMF_GROUP, OMF_INDEX (its node's place in the group, from
0) and OMF_EXPERIMENT beside the group's properties and its own `env`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sfa.errors import BadArgs
from sfa.omf.tree import check_label
from sfa.xrn import validate_hrn

Wait = Literal["exit", "started", "none"]
_WAITS = ("exit", "started", "none")
MAX_TIMEOUT_SECONDS = 24 * 3600


@dataclass(frozen=True)
class AppStep:
    """Start an application on every member of a group."""

    group: str
    app: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    wait: Wait = "exit"


@dataclass(frozen=True)
class WaitStep:
    """Wait until an earlier step's application has exited everywhere."""

    app: str


Step = AppStep | WaitStep


@dataclass(frozen=True)
class Experiment:
    slice_hrn: str
    name: str
    groups: Mapping[str, tuple[str, ...]]
    properties: Mapping[str, Mapping[str, str]]
    steps: tuple[Step, ...]
    timeout_seconds: float = 60.0

    @property
    def nodes(self) -> list[str]:
        """Every node of every group, once, in order of appearance."""
        return list(dict.fromkeys(n for members in self.groups.values() for n in members))


def load_experiment(path: Path | str) -> Experiment:
    """Read and check an ED file (BadArgs naming the first problem)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BadArgs(f"cannot read the experiment description {path}: {exc.strerror}") from None
    return parse_experiment(text, source=str(path))


def parse_experiment(text: str, source: str = "ED") -> Experiment:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadArgs(f"{source}: not valid TOML: {exc}") from None
    _only(data, {"experiment", "groups", "properties", "step"}, source)
    head = _table(data.get("experiment"), f"{source} [experiment]")
    _only(head, {"slice", "name", "timeout_seconds"}, f"{source} [experiment]")
    slice_hrn = validate_hrn(_str(head.get("slice"), f"{source} [experiment] slice"))
    name = check_label(_str(head.get("name", "exp"), f"{source} [experiment] name"),
                       "experiment name")
    timeout = head.get("timeout_seconds", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (
            0 < timeout <= MAX_TIMEOUT_SECONDS):
        raise BadArgs(f"{source}: timeout_seconds must be a number in (0, {MAX_TIMEOUT_SECONDS}]")
    groups = _groups(data.get("groups"), source)
    properties = _properties(data.get("properties", {}), groups, source)
    steps = _steps(data.get("step"), groups, source)
    return Experiment(slice_hrn, name, groups, properties, steps, float(timeout))


def _groups(value: Any, source: str) -> dict[str, tuple[str, ...]]:
    table = _table(value, f"{source} [groups]")
    if not table:
        raise BadArgs(f"{source}: [groups] names no group")
    groups = {}
    for name, members in table.items():
        check_label(name, "group name")
        if not isinstance(members, list) or not members:
            raise BadArgs(f"{source}: group {name} must list node HRNs")
        groups[name] = tuple(validate_hrn(_str(m, f"{source}: group {name}")) for m in members)
    return groups


def _properties(value: Any, groups: Mapping[str, Any], source: str) -> dict[str, dict[str, str]]:
    table = _table(value, f"{source} [properties]")
    out = {}
    for group, props in table.items():
        if group not in groups:
            raise BadArgs(f"{source}: [properties.{group}] names no group")
        out[group] = _env(props, f"{source} [properties.{group}]")
    return out


def _steps(value: Any, groups: Mapping[str, Any], source: str) -> tuple[Step, ...]:
    if not isinstance(value, list) or not value:
        raise BadArgs(f"{source}: at least one [[step]] is needed")
    steps: list[Step] = []
    apps: set[str] = set()
    for index, raw in enumerate(value, 1):
        where = f"{source} step {index}"
        table = _table(raw, where)
        if "wait_for" in table:
            _only(table, {"wait_for"}, where)
            app = _str(table["wait_for"], f"{where} wait_for")
            if app not in apps:
                raise BadArgs(f"{where}: wait_for {app!r} names no earlier app")
            steps.append(WaitStep(app))
            continue
        _only(table, {"group", "app", "command", "env", "wait"}, where)
        group = _str(table.get("group"), f"{where} group")
        if group not in groups:
            raise BadArgs(f"{where}: group {group!r} is not in [groups]")
        app = check_label(_str(table.get("app"), f"{where} app"), "app name")
        if app in apps:
            raise BadArgs(f"{where}: app {app!r} is started twice")
        command = table.get("command")
        if not isinstance(command, list) or not command or not all(
                isinstance(c, str) for c in command):
            raise BadArgs(f"{where}: command must be a non-empty list of strings")
        wait = table.get("wait", "exit")
        if wait not in _WAITS:
            raise BadArgs(f"{where}: wait must be one of {', '.join(_WAITS)}")
        apps.add(app)
        steps.append(AppStep(group, app, tuple(command), _env(table.get("env", {}), where), wait))
    return tuple(steps)


def _env(value: Any, where: str) -> dict[str, str]:
    table = _table(value, where)
    for key, item in table.items():
        if not key.replace("_", "").isalnum() or not key.isascii() or key[0].isdigit():
            raise BadArgs(f"{where}: {key!r} is not an environment variable name")
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise BadArgs(f"{where}: {key} must be a string or a number")
    return {key: str(item) for key, item in table.items()}


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadArgs(f"{where}: expected a table")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadArgs(f"{where}: expected a non-empty string")
    return value


def _only(table: Mapping[str, Any], keys: set[str], where: str) -> None:
    unknown = set(table) - keys
    if unknown:
        raise BadArgs(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                      f"(known: {', '.join(sorted(keys))})")
