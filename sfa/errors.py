"""GENI error codes and the exception hierarchy every layer raises.

Each exception carries a GENI code and a message a user can act on; the server turns them into
the AM API envelope or an XML-RPC fault, never into a stack trace on the wire.
"""

from __future__ import annotations

from enum import IntEnum


class GeniCode(IntEnum):
    """The GENI AM API error codes (`spec/am-api.md`)."""

    SUCCESS = 0
    BADARGS = 1
    ERROR = 2
    FORBIDDEN = 3
    BADVERSION = 4
    SERVERERROR = 5
    TOOBIG = 6
    REFUSED = 7
    TIMEDOUT = 8
    DBERROR = 9
    RPCERROR = 10
    UNAVAILABLE = 11
    SEARCHFAILED = 12
    UNSUPPORTED = 13
    BUSY = 14
    EXPIRED = 15
    INPROGRESS = 16
    ALREADYEXISTS = 17
    MISSINGARGS = 18
    OUTOFRANGE = 19
    CREDENTIAL_INVALID = 20
    CREDENTIAL_EXPIRED = 21
    CREDENTIAL_MISMATCH = 22
    CREDENTIAL_SIGNER_UNTRUSTED = 23
    VLAN_UNAVAILABLE = 24
    INSUFFICIENT_BANDWIDTH = 25
    INSUFFICIENT_NODES = 26


class SfaError(Exception):
    """Base of every error sfa raises on purpose; `code` is its GENI code."""

    code: GeniCode = GeniCode.ERROR

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__doc__ or self.code.name)
        self.message = message or (self.__class__.__doc__ or self.code.name).strip()

    @property
    def code_name(self) -> str:
        return self.code.name

    def __str__(self) -> str:
        return self.message


class BadArgs(SfaError):
    """An argument is malformed or not allowed here."""

    code = GeniCode.BADARGS


class GeneralError(SfaError):
    """The operation failed."""

    code = GeniCode.ERROR


class Forbidden(SfaError):
    """The caller is not allowed to do this."""

    code = GeniCode.FORBIDDEN


class BadVersion(SfaError):
    """The requested version is not supported."""

    code = GeniCode.BADVERSION


class ServerError(SfaError):
    """An internal error occurred; the operator's log has the details."""

    code = GeniCode.SERVERERROR


class TooBig(SfaError):
    """The request is too big."""

    code = GeniCode.TOOBIG


class Refused(SfaError):
    """The request was refused."""

    code = GeniCode.REFUSED


class TimedOut(SfaError):
    """The operation timed out."""

    code = GeniCode.TIMEDOUT


class DatabaseError(SfaError):
    """The database failed; nothing was changed."""

    code = GeniCode.DBERROR


class RpcError(SfaError):
    """A remote call failed."""

    code = GeniCode.RPCERROR


class Unavailable(SfaError):
    """The service or resource is unavailable."""

    code = GeniCode.UNAVAILABLE


class SearchFailed(SfaError):
    """No such record or sliver."""

    code = GeniCode.SEARCHFAILED


class Unsupported(SfaError):
    """The operation is not supported here or in this state."""

    code = GeniCode.UNSUPPORTED


class Busy(SfaError):
    """The resource is busy; retry later."""

    code = GeniCode.BUSY


class Expired(SfaError):
    """The object has expired."""

    code = GeniCode.EXPIRED


class InProgress(SfaError):
    """The operation is still in progress."""

    code = GeniCode.INPROGRESS


class AlreadyExists(SfaError):
    """The object already exists."""

    code = GeniCode.ALREADYEXISTS


class MissingArgs(SfaError):
    """A required argument is missing."""

    code = GeniCode.MISSINGARGS


class OutOfRange(SfaError):
    """A value is outside the allowed range."""

    code = GeniCode.OUTOFRANGE


class CredentialInvalid(SfaError):
    """The credential is invalid."""

    code = GeniCode.CREDENTIAL_INVALID


class CredentialExpired(SfaError):
    """The credential (or a certificate in its chain) has expired."""

    code = GeniCode.CREDENTIAL_EXPIRED


class CredentialMismatch(SfaError):
    """The credential does not match the caller or the target."""

    code = GeniCode.CREDENTIAL_MISMATCH


class CredentialSignerUntrusted(SfaError):
    """The credential's signer does not chain to a trusted root."""

    code = GeniCode.CREDENTIAL_SIGNER_UNTRUSTED


class VlanUnavailable(SfaError):
    """The requested VLAN is unavailable."""

    code = GeniCode.VLAN_UNAVAILABLE


class InsufficientBandwidth(SfaError):
    """Not enough bandwidth for the request."""

    code = GeniCode.INSUFFICIENT_BANDWIDTH


class InsufficientNodes(SfaError):
    """Not enough nodes for the request."""

    code = GeniCode.INSUFFICIENT_NODES


_BY_CODE: dict[GeniCode, type[SfaError]] = {
    cls.code: cls
    for cls in SfaError.__subclasses__()
}


def error_for_code(code: int, message: str) -> SfaError:
    """Rebuild the exception for a GENI code received from a peer (unknown codes → ERROR)."""
    try:
        cls = _BY_CODE[GeniCode(code)]
    except (ValueError, KeyError):
        cls = GeneralError
    return cls(message)
