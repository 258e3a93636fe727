"""What every AM API call shares: settings, the store, the driver, the trust door, the clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sfa.errors import BadArgs, Refused, SearchFailed
from sfa.timeutil import utcnow
from sfa.trust.gid import GID
from sfa.trust.verify import TrustPolicy, VerifiedCall, authorize
from sfa.xrn import Xrn

from .advertisement import AdvertisementCache
from .driver import Driver
from .inventory import AdmissionPolicy
from .lifetimes import LifetimePolicy
from .mapping import Mapper
from .reaper import Reaper
from .slivers import Sliver
from .store import AggregateStore

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, Any]], Any]


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a driver coroutine to completion outside any event loop (tests, tools, threads)."""
    return asyncio.run(coroutine)


def loop_runner(loop: asyncio.AbstractEventLoop) -> Runner:
    """A runner for calls served in threads: each driver coroutine runs as an asyncio task
    on `loop` (the server's event loop) and the calling thread waits for its result."""

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    return run


@dataclass(frozen=True)
class AggregateSettings:
    """Who this aggregate is and its policies (from `sfa.toml`)."""

    authority_hrn: str
    am_urn: str
    hrn: str
    api_urls: dict[str, str] = field(default_factory=dict)
    lifetimes: LifetimePolicy = field(default_factory=LifetimePolicy)
    admission: AdmissionPolicy = field(default_factory=AdmissionPolicy)

    @property
    def own_managers(self) -> frozenset[str]:
        """The component_manager_id values that name this aggregate (am and cm forms)."""
        base = self.am_urn.rsplit("+", 1)[0]
        return frozenset({self.am_urn, f"{base}+am", f"{base}+cm"})


@dataclass(frozen=True)
class Target:
    """What a call's `urns` name: one slice and, when sliver URNs were given, those slivers."""

    slice_urn: str
    slivers: tuple[Sliver, ...]
    whole_slice: bool


class AggregateContext:
    """The aggregate's parts, shared by the v3 core, the v2 adapter and the reaper."""

    def __init__(self, store: AggregateStore, driver: Driver, settings: AggregateSettings,
                 policy: TrustPolicy, *, run: Runner = run_coroutine,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.driver = driver
        self.settings = settings
        self.policy = policy
        self.run = run
        self.clock = clock
        self.mapper = Mapper(settings.own_managers, settings.admission)
        self.reaper = Reaper(store, driver, run, clock)
        self.ads = AdvertisementCache(store, am_urn=settings.am_urn,
                                      admission=settings.admission)

    def authorize(self, credentials: Sequence[Any], peer: GID | None, operation: str | None,
                  targets: Sequence[str], options: Any, *, match: str = "exact",
                  allow_empty: bool = False) -> VerifiedCall:
        """The one trust door, with this aggregate's policy."""
        if peer is None:
            raise BadArgs("this call needs a TLS client certificate (your GID)")
        return authorize(credentials, peer, self.policy, operation=operation, targets=targets,
                         target_match=match,  # type: ignore[arg-type]
                         options=options, allow_empty=allow_empty)

    def resolve(self, urns: Sequence[str]) -> Target:
        """The slice and slivers named by `urns` (one slice URN, or slivers of one slice)."""
        xrns = [_parse_urn(urn) for urn in urns]
        slices = [x for x in xrns if x.type == "slice"]
        if slices:
            if len(xrns) != 1:
                raise BadArgs("name either one slice URN or sliver URNs, not both or several")
            slice_urn = slices[0].urn
            return Target(slice_urn, tuple(self.store.slivers_of(slice_urn)), True)
        slivers = []
        for xrn in xrns:
            if xrn.type != "sliver":
                raise BadArgs(f"{xrn.urn[:120]} is a {xrn.type} URN; name a slice or its slivers")
            sliver = self.store.sliver(xrn.urn)
            if sliver is None:
                raise SearchFailed(f"no sliver {xrn.urn[:120]} at this aggregate")
            slivers.append(sliver)
        slice_urns = {s.slice_urn for s in slivers}
        if len(slice_urns) != 1:
            raise BadArgs("the slivers named belong to several slices; name one slice at a time")
        return Target(slice_urns.pop(), tuple(slivers), False)

    def refuse_if_shut_down(self, slice_urn: str) -> None:
        if self.store.is_shutdown(slice_urn):
            raise Refused(f"slice {slice_urn} was shut down by its aggregate; an operator of "
                          f"{self.settings.hrn} must lift the shutdown first")

    def reap(self) -> list[Sliver]:
        """Delete expired slivers through the driver before a call looks at them."""
        return self.reaper.tick()


def slice_urn_argument(value: object) -> str:
    """A slice URN argument, checked (BADARGS otherwise)."""
    if not isinstance(value, str) or not value:
        raise BadArgs("a slice URN (urn:publicid:IDN+authority+slice+name) is required")
    xrn = _parse_urn(value)
    if xrn.type != "slice":
        raise BadArgs(f"{value[:120]} is a {xrn.type} URN, not a slice URN")
    return xrn.urn


def _parse_urn(urn: str) -> Xrn:
    try:
        return Xrn.from_urn(urn)
    except BadArgs as exc:
        raise BadArgs(f"not a valid URN: {urn[:120]!r} ({exc.message})") from None
