"""Registry methods on the wire (`spec/registry-api.md`) → `sfa.registry.api.Registry`.

Each handler checks the argument count, turns XML-RPC base64 (bytes) into text where the registry
expects text, and passes the TLS client certificate as the caller; the Registry verifies it
through the trust door. Errors become faults (FaultReplies) in the XML-RPC resource.
"""

from __future__ import annotations

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
from sfa.server.wire_args import binary_as_text, call_args
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
    """Wire method name → handler, each with the spec's argument list."""

    def get_version(call: CallContext, params: tuple[Any, ...]) -> Any:
        (options,) = call_args(call, params, 0, 1)
        return registry.GetVersion(_options(options))

    def get_self_credential(call: CallContext, params: tuple[Any, ...]) -> Any:
        cert, xrn, type_ = call_args(call, params, 2, 3)
        return registry.GetSelfCredential(_peer(call), _text(cert), xrn, type_ or None)

    def get_credential(call: CallContext, params: tuple[Any, ...]) -> Any:
        creds, xrn, type_ = call_args(call, params, 2, 3)
        return registry.GetCredential(_peer(call), creds, xrn, type_ or None)

    def resolve(call: CallContext, params: tuple[Any, ...]) -> Any:
        xrns, creds, options = call_args(call, params, 2, 3)
        return registry.Resolve(_peer(call), xrns, creds, _options(options))

    def list_(call: CallContext, params: tuple[Any, ...]) -> Any:
        xrn, creds, options = call_args(call, params, 2, 3)
        return registry.List(_peer(call), xrn, creds, _options(options))

    def register(call: CallContext, params: tuple[Any, ...]) -> Any:
        record, creds = call_args(call, params, 2, 2)
        return registry.Register(_peer(call), _record(record), creds)

    def update(call: CallContext, params: tuple[Any, ...]) -> Any:
        record, creds = call_args(call, params, 2, 2)
        return registry.Update(_peer(call), _record(record), creds)

    def remove(call: CallContext, params: tuple[Any, ...]) -> Any:
        xrn, creds, type_, options = call_args(call, params, 2, 4)
        force = bool(_options(options).get("force", False))
        return registry.Remove(_peer(call), xrn, creds, type_ or None, force=force)

    def create_gid(call: CallContext, params: tuple[Any, ...]) -> Any:
        creds, xrn, cert = call_args(call, params, 3, 3)
        return registry.CreateGid(_peer(call), creds, xrn, _text(cert))

    def get_gids(call: CallContext, params: tuple[Any, ...]) -> Any:
        xrns, creds = call_args(call, params, 2, 2)
        return registry.GetGids(_peer(call), xrns, creds)

    def get_trusted_certs(call: CallContext, params: tuple[Any, ...]) -> Any:
        (cred,) = call_args(call, params, 0, 1)
        return registry.get_trusted_certs(_peer(call), cred)

    table: dict[str, Callable[[CallContext, tuple[Any, ...]], Any]] = {
        "GetVersion": get_version,
        "GetSelfCredential": get_self_credential,
        "GetCredential": get_credential,
        "Resolve": resolve,
        "List": list_,
        "Register": register,
        "Update": update,
        "Remove": remove,
        "CreateGid": create_gid,
        "GetGids": get_gids,
        "get_trusted_certs": get_trusted_certs,
    }
    return table


def _peer(call: CallContext) -> GID:
    if call.peer is None:  # the resource refuses these first; kept as a second lock
        raise Forbidden(f"{call.method} needs a client certificate")
    return call.peer


def _text(value: Any) -> Any:
    return binary_as_text(value, "ascii", "a certificate must be PEM text")


def _options(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadArgs(f"options must be a struct, got {type(value).__name__}")
    return dict(value)


def _record(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadArgs(f"a record must be a struct, got {type(value).__name__}")
    return value
