"""The argument layer every XML-RPC service declares its methods with: arity, then one converter
per position, the same everywhere (a lone credential becomes a one-item list, options `""` or
absent become `{}`, base64 RSpecs and certificates become text), and the handlers every AM API
service shares."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
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


Convert = Callable[[Any], Any]


def as_is(value: Any) -> Any:
    """The value as sent (the logic checks it)."""
    return value


def credential_list(value: Any) -> list[Any]:
    """A credential list; a lone credential (text, bytes or a v3 struct) becomes a list of one,
    absent becomes []. Anything else is BADARGS."""
    if value is None:
        return []
    if isinstance(value, str | bytes | Mapping):
        return [value]
    if not isinstance(value, list | tuple):
        raise BadArgs(f"credentials must be a list of credentials, got {type(value).__name__}")
    return list(value)


def options_struct(value: Any) -> dict[str, Any]:
    """The options struct; absent or `""` (some clients send it) is {}, anything else but a
    struct is BADARGS."""
    if value is None or value == "":
        return {}
    if not isinstance(value, Mapping):
        raise BadArgs(f"options must be a struct, got {type(value).__name__}")
    return dict(value)


def declare(method: Callable[..., Any], *converters: Convert, least: int,
            reply: Callable[[Any], Any] = as_is,
            caller: Callable[[CallContext], Any] = lambda call: call.peer) -> Handler:
    """A handler for `method(caller(call), *arguments)`: arity checked against the converters
    (the first `least` required), each argument converted, `reply` applied to the result."""

    def handler(call: CallContext, params: tuple[Any, ...]) -> Any:
        values = call_args(call, params, least, len(converters))
        return reply(method(caller(call), *(convert(value)
                                         for convert, value in zip(converters, values,
                                                                   strict=True))))

    return handler


def trusted_certs_handler(own: GID, policy: TrustPolicy) -> Handler:
    """`get_trusted_certs([cred])` for an AM API service, as the registry answers it."""
    return declare(functools.partial(trusted_certificates, own, policy), as_is, least=0)
