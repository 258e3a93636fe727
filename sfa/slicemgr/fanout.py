"""One call sent to several aggregates at once, each with a deadline, each reported apart."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from sfa.errors import GeniCode, ServerError, SfaError, TimedOut

log = logging.getLogger(__name__)


class AggregateLink(Protocol):
    """One aggregate as the slice manager reaches it: `call` returns the envelope's value or
    raises the sfa.errors exception its GENI code names (transport failures included)."""

    @property
    def urn(self) -> str: ...

    @property
    def url(self) -> str: ...

    def call(self, method: str, *params: Any) -> Any: ...


@dataclass(frozen=True)
class AggregateReport:
    """What one aggregate answered: its value, or the error (with its GENI code)."""

    urn: str
    url: str
    value: Any = None
    error: SfaError | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_wire(self) -> dict[str, Any]:
        code = GeniCode.SUCCESS if self.error is None else self.error.code
        return {"urn": self.urn, "url": self.url, "geni_code": int(code),
                "output": "" if self.error is None else self.error.message,
                "seconds": round(self.seconds, 3)}


class FanOut:
    """Runs calls on aggregates in parallel (at most `workers` threads); an aggregate that has
    not answered after `timeout` seconds is reported TIMEDOUT and the others are not held up."""

    def __init__(self, *, timeout: float = 30.0, workers: int = 32) -> None:
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sfa-sm-fanout")

    def run(self, calls: Sequence[tuple[AggregateLink, Callable[[AggregateLink], Any]]]
            ) -> list[AggregateReport]:
        """One report per call, in the order given."""
        started = time.monotonic()
        futures: list[Future[AggregateReport]] = [
            self._pool.submit(_timed, link, function) for link, function in calls
        ]
        pending = set(futures)
        deadline = started + self.timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
        reports = []
        for (link, _), future in zip(calls, futures, strict=True):
            if future.done():
                reports.append(future.result())
            else:
                future.cancel()
                reports.append(AggregateReport(
                    link.urn, link.url, error=TimedOut(
                        f"{link.url} did not answer within {self.timeout:g} s; the other "
                        "aggregates' results are reported"),
                    seconds=time.monotonic() - started))
        return reports

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _timed(link: AggregateLink, function: Callable[[AggregateLink], Any]) -> AggregateReport:
    started = time.monotonic()
    try:
        value = function(link)
    except SfaError as error:
        return AggregateReport(link.urn, link.url, error=error,
                               seconds=time.monotonic() - started)
    except Exception:
        log.exception("calling %s failed unexpectedly", link.url)
        return AggregateReport(link.urn, link.url, seconds=time.monotonic() - started,
                               error=ServerError(f"calling {link.url} failed in the slice "
                                                 "manager; its log has the details"))
    return AggregateReport(link.urn, link.url, value=value, seconds=time.monotonic() - started)
