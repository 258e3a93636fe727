"""The aggregate manager's logic, and the kit a testbed needs to write a driver for it.

A driver author imports from here only (see docs/writing-a-driver.md):

    from sfa.aggregate import Driver, DriverContext, SliverResult, Sliver, UserKeys, Node, ...
"""

from sfa.aggregate.driver import (
    Driver,
    DriverContext,
    DriverFactory,
    HealthReport,
    Inventory,
    ReconcileReport,
    SliverResult,
)
from sfa.aggregate.driver_loader import (
    DRIVER_GROUP,
    DriverError,
    build_driver,
    registered_drivers,
    resolve_factory,
)
from sfa.aggregate.inventory import (
    EXCLUSIVE_SLIVER_TYPE,
    SHARED_SLIVER_TYPE,
    Node,
    NodeResources,
    node_urn,
)
from sfa.aggregate.memory_driver import MemoryDriver
from sfa.aggregate.slivers import (
    ACTION_TRANSITIONS,
    Action,
    AllocationState,
    OperationalState,
    Sliver,
    UserKeys,
)
from sfa.aggregate.store import AggregateStore

__all__ = [
    "ACTION_TRANSITIONS",
    "DRIVER_GROUP",
    "EXCLUSIVE_SLIVER_TYPE",
    "SHARED_SLIVER_TYPE",
    "Action",
    "AggregateStore",
    "AllocationState",
    "Driver",
    "DriverContext",
    "DriverError",
    "DriverFactory",
    "HealthReport",
    "Inventory",
    "MemoryDriver",
    "Node",
    "NodeResources",
    "OperationalState",
    "ReconcileReport",
    "Sliver",
    "SliverResult",
    "UserKeys",
    "build_driver",
    "node_urn",
    "registered_drivers",
    "resolve_factory",
]
