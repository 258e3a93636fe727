"""Argument plumbing shared by the XML-RPC handlers: arity checks, base64 text, and the
handlers every AM API service shares."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sfa.errors import BadArgs, MissingArgs
from sfa.server.dispatch import CallContext, Handler
from sfa.trust.gid import GID
from sfa.trust.trusted_certs import trusted_certificates
from sfa.trust.verify import TrustPolicy


def call_args(call: CallContext, params: tuple[Any, ...], least: int, most: int) -> list[Any]:
    """Exactly `most` values (missing optional ones are None); arity errors name the method."""
    if len(params) < least:
        raise MissingArgs(f"{call.method} takes at least {least} arguments, got {len(params)}")
    if len(params) > most:
        raise BadArgs(f"{call.method} takes at most {most} arguments, got {len(params)}")
    return [*params, *([None] * (most - len(params)))]


def binary_as_text(value: Any, encoding: str, refusal: str) -> Any:
    """`value` decoded when a client sent it as XML-RPC base64 (bytes once parsed); BadArgs(refusal)
    if it is not `encoding` text. Anything else is returned as it is."""
    if isinstance(value, bytes):
        try:
            return value.decode(encoding)
        except UnicodeDecodeError:
            raise BadArgs(refusal) from None
    return value


def rspec_text(value: Any) -> Any:
    """An RSpec sent as XML-RPC base64 (some clients do) as text."""
    return binary_as_text(value, "utf-8", "the RSpec must be UTF-8 text")


def forward(method: Callable[..., Any], least: int, most: int) -> Handler:
    """A handler that checks the arity and calls `method(caller certificate, *arguments)`."""

    def handler(call: CallContext, params: tuple[Any, ...]) -> Any:
        return method(call.peer, *call_args(call, params, least, most))

    return handler


def trusted_certs_handler(own: GID, policy: TrustPolicy) -> Handler:
    """`get_trusted_certs([cred])` for an AM API service, as the registry answers it."""
    return forward(functools.partial(trusted_certificates, own, policy), 0, 1)
