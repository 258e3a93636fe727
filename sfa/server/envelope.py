"""How a result or an SfaError goes on the wire: registry faults and the AM API envelope.

Both styles share one rule: an unexpected exception becomes SERVERERROR with a generic
message; its details go to the operator's log, never to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from xmlrpc.client import Fault

from sfa.errors import GeniCode, SfaError

AM_TYPE = "sfa"
GENERIC_SERVER_ERROR = "internal server error; the operator's log has the details"


@dataclass(frozen=True)
class Envelope:
    """An AM API reply: {code: {geni_code, am_type, am_code}, value, output} plus extras."""

    value: Any = ""
    geni_code: int = GeniCode.SUCCESS
    output: str = ""
    am_code: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_struct(self) -> dict[str, Any]:
        code = {
            "geni_code": int(self.geni_code),
            "am_type": AM_TYPE,
            "am_code": int(self.geni_code if self.am_code is None else self.am_code),
        }
        return {**self.extra, "code": code, "value": self.value, "output": self.output}


def success_envelope(value: Any, **extra: Any) -> dict[str, Any]:
    """The envelope of a successful AM call (`extra`, e.g. geni_api, goes at the top level)."""
    return Envelope(value=value, extra=extra).to_struct()


def error_envelope(error: SfaError) -> dict[str, Any]:
    """The envelope of a failed AM call: value "", output = the actionable message."""
    return Envelope(value="", geni_code=error.code, output=error.message).to_struct()


def registry_fault(error: SfaError) -> Fault:
    """A registry error as an XML-RPC fault: faultCode = GENI code, faultString = message."""
    return Fault(int(error.code), error.message)


class ReplyStyle(Protocol):
    """Turns a handler's result or error into what goes on the wire."""

    def ok(self, value: Any) -> Any: ...

    def error(self, error: SfaError) -> Any: ...


class FaultReplies:
    """Registry style: results as they are, errors as XML-RPC faults."""

    def ok(self, value: Any) -> Any:
        return value

    def error(self, error: SfaError) -> Fault:
        return registry_fault(error)


class EnvelopeReplies:
    """AM style: every reply in the {code, value, output} envelope, never a fault.

    A handler may return an `Envelope` itself (GetVersion adds `geni_api` at the top level).
    """

    def ok(self, value: Any) -> Any:
        if isinstance(value, Envelope):
            return value.to_struct()
        return success_envelope(value)

    def error(self, error: SfaError) -> dict[str, Any]:
        return error_envelope(error)
