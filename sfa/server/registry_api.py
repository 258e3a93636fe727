"""Registry methods on the wire (`spec/registry-api.md`) → `sfa.registry.api.Registry`.

Each handler checks the argument count, turns XML-RPC base64 (bytes) into text where the registry
expects text, and passes the TLS client certificate as the caller; the Registry verifies it
through the trust door. Errors become faults (FaultReplies) in the XML-RPC resource.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from sfa.deploy.layout import Deployment
from sfa.deploy.peers import RegistryPeerMap, deployment_peers
from sfa.errors import BadArgs, Forbidden
from sfa.registry.api import Registry
from sfa.registry.settings import RegistryConfig as RegistryLogicConfig
from sfa.server.dispatch import Dispatcher
from sfa.server.envelope import FaultReplies
from sfa.server.wire_args import (
    Convert,
    as_is,
    binary_as_text,
    credential_list,
    declare,
    options_struct,
)
from sfa.server.xmlrpc import CallContext, Handler
from sfa.trust.gid import GID
from sfa.trust.verified_cache import VerifiedCredentials
from sfa.trust.verify import TrustPolicy


def trust_policy(deployment: Deployment) -> TrustPolicy:
    """The deployment's trust policy: its trusted_roots/ directory and [trust] settings, with
    a cache of verified credentials (callers present the same ones call after call; expiry
    is re-checked on every hit and a change of trusted roots invalidates it)."""
    trust = deployment.config.trust
    return TrustPolicy(
        roots=deployment.trusted_roots(),
        strict_crypto=trust.strict_crypto,
        max_delegation_depth=trust.max_delegation_depth,
        verified_cache=VerifiedCredentials(),
    )


def registry_logic_config(deployment: Deployment) -> RegistryLogicConfig:
    """The registry's lifetimes (sfa.toml) and its peers, read live (sfa.toml + peers.toml) so
    that `sfa admin peer add` refers without a restart."""
    config = deployment.config
    return RegistryLogicConfig(
        slice_lifetime=timedelta(days=config.registry.slice_lifetime_days),
        max_slice_lifetime=timedelta(days=config.registry.max_slice_lifetime_days),
        credential_lifetime=timedelta(days=config.registry.credential_lifetime_days),
        peers=RegistryPeerMap(deployment_peers(deployment)),
    )


def open_registry(deployment: Deployment) -> Registry:
    """The Registry of a deployment, over its SQLite file and authority store."""
    identity = deployment.service_identity("registry")
    return Registry(
        deployment.registry_db,
        deployment.authority_store(),
        trust_policy(deployment),
        identity.gid,
        identity.key,
        config=registry_logic_config(deployment),
    )


def registry_handlers(deployment: Deployment) -> dict[str, Handler]:
    """The XML-RPC handlers of the deployment's registry."""
    return handlers_for(open_registry(deployment))


def registry_dispatcher(directory: str) -> Dispatcher:
    """A worker process's registry (sfa.server.workers factory): its own Registry."""
    deployment = Deployment.load(directory)
    return Dispatcher(
        service="registry", handlers=registry_handlers(deployment), replies=FaultReplies()
    )


def handlers_for(registry: Registry) -> dict[str, Handler]:
    """Wire method name → handler, each declared with the spec's argument list."""
    creds, options = credential_list, options_struct

    def remove(caller: GID, xrn: Any, credentials: list[Any], type_: str | None,
               opts: dict[str, Any]) -> Any:
        return registry.Remove(caller, xrn, credentials, type_, force=bool(opts.get("force")))

    def signed(method: Callable[..., Any], *converters: Convert, least: int) -> Handler:
        return declare(method, *converters, least=least, caller=_peer)

    def identifying(method: Callable[..., Any], *converters: Convert, least: int) -> Handler:
        """`signed`, and the call log names the record the caller's key proved (a self-signed
        bootstrap certificate claims whatever its maker wrote)."""
        def handler(call: CallContext, params: tuple[Any, ...]) -> Any:
            bound = functools.partial(method, identified=call.identified.append)
            return signed(bound, *converters, least=least)(call, params)
        return handler

    return {
        "GetVersion": declare(lambda _caller, opts: registry.GetVersion(opts), options, least=0),
        "GetSelfCredential": identifying(registry.GetSelfCredential, _text, as_is, _type,
                                         least=2),
        "GetCredential": signed(registry.GetCredential, creds, as_is, _type, least=2),
        "Resolve": identifying(registry.Resolve, as_is, creds, options, least=2),
        "List": signed(registry.List, as_is, creds, options, least=2),
        "Register": signed(registry.Register, _record, creds, least=2),
        "Update": signed(registry.Update, _record, creds, least=2),
        "Remove": signed(remove, as_is, creds, _type, options, least=2),
        "CreateGid": signed(registry.CreateGid, creds, as_is, _text, least=3),
        "GetGids": signed(registry.GetGids, as_is, creds, least=2),
        "get_trusted_certs": signed(registry.get_trusted_certs, as_is, least=0),
    }


def _peer(call: CallContext) -> GID:
    if call.peer is None:  # the resource refuses these first; kept as a second lock
        raise Forbidden(f"{call.method} needs a client certificate")
    return call.peer


def _text(value: Any) -> Any:
    return binary_as_text(value, "ascii", "a certificate must be PEM text")


def _type(value: Any) -> Any:
    """A record type, absent or "" meaning "any"."""
    return value or None


def _record(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadArgs(f"a record must be a struct, got {type(value).__name__}")
    return value
