"""Choosing the aggregate's driver by configuration: a registered name or `module:factory`.

`[aggregate] driver` in sfa.toml names either an entry point of the `sfa.drivers` group (sfa's
own are listed in `BUILTIN_DRIVERS`, so they resolve from a source tree too) or a factory as
`package.module:function`. There is no default and no fallback: an unset, unknown or broken
driver is refused with one message saying what to fix.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib import metadata
from typing import Any, cast

from sfa.errors import BadArgs

from .driver import Driver, DriverContext, DriverFactory

DRIVER_GROUP = "sfa.drivers"
# sfa's own drivers; pyproject.toml registers the same names in the entry-point group
BUILTIN_DRIVERS: Mapping[str, str] = {
    "nodemanager": "sfa.server.nm_driver_factory:node_manager_driver",
    "memory": "sfa.aggregate.memory_driver:memory_driver",
}
GUIDE = "see docs/writing-a-driver.md"


class DriverError(BadArgs):
    """The configured driver cannot be found or built."""


def registered_drivers() -> dict[str, str]:
    """Driver name -> `module:factory`, sfa's own and those other packages register."""
    found = dict(BUILTIN_DRIVERS)
    found.update({ep.name: ep.value for ep in metadata.entry_points(group=DRIVER_GROUP)})
    return found


def resolve_factory(spec: str) -> DriverFactory:
    """The factory `spec` names (a registered name or `package.module:factory`)."""
    spec = spec.strip()
    if not spec:
        names = ", ".join(sorted(registered_drivers()))
        raise DriverError(f"[aggregate] driver is not set: name the aggregate's driver, e.g. "
                          f"driver = \"nodemanager\" (registered: {names}) or "
                          f"\"package.module:factory\"; {GUIDE}")
    target = spec if ":" in spec else registered_drivers().get(spec)
    if target is None:
        names = ", ".join(sorted(registered_drivers()))
        raise DriverError(f"[aggregate] driver {spec!r} is not a registered driver "
                          f"(registered: {names}) nor a \"package.module:factory\"; {GUIDE}")
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the configuration's problem to report
        raise DriverError(f"[aggregate] driver {spec!r}: cannot import {module_name}: "
                          f"{type(exc).__name__}: {exc}") from None
    factory = getattr(module, attribute, None) if attribute else None
    if not callable(factory):
        raise DriverError(f"[aggregate] driver {spec!r}: {module_name} has no callable "
                          f"{attribute or '(missing after the colon)'}; {GUIDE}")
    return cast(DriverFactory, factory)


def build_driver(spec: str, context: DriverContext) -> Driver:
    """The driver `spec` names, made by its factory from `context`."""
    factory = resolve_factory(spec)
    try:
        driver: Any = factory(context)
    except BadArgs as exc:
        raise DriverError(f"[aggregate] driver {spec!r} refused its settings: "
                          f"{exc.message}") from None
    except Exception as exc:
        raise DriverError(f"[aggregate] driver {spec!r} could not be built: "
                          f"{type(exc).__name__}: {exc}") from None
    missing = [m for m in _DRIVER_METHODS if not callable(getattr(driver, m, None))]
    if missing:
        raise DriverError(f"[aggregate] driver {spec!r}: its factory returned "
                          f"{type(driver).__name__}, which lacks {', '.join(missing)}; "
                          f"{GUIDE}")
    return cast(Driver, driver)


_DRIVER_METHODS = ("start", "stop", "nodes", "check_health", "reconcile", "allocate",
                   "provision", "perform_action", "status", "renew", "delete", "update_users")
