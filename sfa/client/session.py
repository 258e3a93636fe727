"""One sfi run: the user's key and GID, credentials (cached), and endpoints to talk to.

Bootstrap (`spec/registry-api.md`): private key -> self-signed certificate (CN = hrn only) ->
GetSelfCredential over TLS with it -> Resolve -> the user's real GID, used from then on.
Registry calls follow referrals to peer registries with the user's own identity.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from sfa.client.cache import CredentialCache, load_user_gid, save_user_gid
from sfa.client.config import AggregateEntry, ClientConfig
from sfa.errors import BadArgs, CredentialMismatch, SearchFailed, SfaError
from sfa.rpc.transport import (
    AmEndpoint,
    CallSettings,
    RpcEndpoint,
    TlsIdentity,
    client_context,
    server_gid,
)
from sfa.trust.chain import verify_gid_chain
from sfa.trust.credential import Credential
from sfa.trust.gid import GID, create_bootstrap_certificate
from sfa.trust.keys import load_private_key, public_keys_equal
from sfa.trust.roots import TrustedRoots
from sfa.trust.verify import TrustPolicy
from sfa.xrn import hrn_authority

MAX_REFERRALS = 3
_REFERRAL = re.compile(r"ask the registry of \S+ at (https://\S+)")


@dataclass
class Session:
    """Everything one command needs; credentials are fetched lazily and cached."""

    config: ClientConfig
    settings: CallSettings = field(default_factory=CallSettings)

    # --- identity ----------------------------------------------------------------------------

    @cached_property
    def roots(self) -> TrustedRoots:
        return TrustedRoots(self.config.trusted_roots_dir)

    @cached_property
    def policy(self) -> TrustPolicy:
        return TrustPolicy(roots=self.roots)

    @cached_property
    def key(self) -> RSAPrivateKey:
        self.config.require("key")
        path = self.config.key_path
        try:
            return load_private_key(path.read_bytes())
        except FileNotFoundError:
            raise BadArgs(f"the private key {path} does not exist; set it with "
                          "`sfi config --key FILE`") from None

    @cached_property
    def credentials(self) -> CredentialCache:
        return CredentialCache(self.config.cache_dir, self.policy, self.key.public_key())

    def roots_pem(self) -> str:
        self.roots.reload_if_changed()
        return "".join(root.to_pem(include_chain=False) for root in self.roots.roots)

    @cached_property
    def gid(self) -> GID:
        """The user's real GID: from the cache, else by bootstrapping."""
        self.config.require("user", "registry")
        cached = load_user_gid(self.config.cache_dir, self.policy, self.key.public_key())
        return cached if cached is not None else self.bootstrap()

    @property
    def identity(self) -> TlsIdentity:
        self.gid  # noqa: B018 - makes sure the GID file exists
        return TlsIdentity(self.config.cache_dir / "user.gid", self.config.key_path)

    def bootstrap(self) -> GID:
        """Self-signed certificate -> user credential -> Resolve -> the real GID (cached)."""
        user = self.config.user
        self_signed = create_bootstrap_certificate(user, self.key)
        cert_file = self.config.cache_dir / "self-signed.gid"
        cert_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        cert_file.write_text(self_signed.to_pem())
        registry = self._registry_at(self.config.registry,
                                     TlsIdentity(cert_file, self.config.key_path))
        credential = registry.call("GetSelfCredential", self_signed.to_pem(), user, "user")
        records = registry.call("Resolve", user, [credential], {})
        gid = self._gid_of(records, user)
        save_user_gid(self.config.cache_dir, gid)
        self.credentials.store(user, "user", credential)
        return gid

    def _gid_of(self, records: Any, user: str) -> GID:
        found = [r for r in records or [] if r.get("hrn") == user and r.get("type") == "user"]
        if not found or not found[0].get("gid"):
            raise SearchFailed(f"the registry has no user record {user}")
        gid = GID.from_pem(found[0]["gid"])
        verify_gid_chain(gid, self.roots)
        if not public_keys_equal(gid.public_key, self.key.public_key()):
            raise CredentialMismatch(
                f"the registry's GID for {user} carries another key than {self.config.key_path}")
        return gid

    # --- endpoints ---------------------------------------------------------------------------

    def _registry_at(self, url: str, identity: TlsIdentity | None) -> RpcEndpoint:
        return RpcEndpoint(url, client_context(self.roots_pem(), identity), self.settings.timeout)

    def registry(self, url: str | None = None) -> RpcEndpoint:
        self.config.require("registry")
        return self._registry_at(url or self.config.registry, self.identity)

    def anonymous_registry(self) -> RpcEndpoint:
        self.config.require("registry")
        return self._registry_at(self.config.registry, None)

    def aggregate(self, entry: AggregateEntry, *, anonymous: bool = False) -> AmEndpoint:
        identity = None if anonymous else self.identity
        return AmEndpoint(entry.url, client_context(self.roots_pem(), identity),
                          self.settings.timeout)

    def server_gid(self, url: str) -> GID:
        """The GID a server presents (verified by TLS against our roots)."""
        return server_gid(url, client_context(self.roots_pem(), None), self.settings.timeout)

    def call_registry(self, method: str, *params: Any) -> Any:
        """Call the home registry; follow referrals to peer registries (same identity)."""
        url = self.config.registry
        for _ in range(MAX_REFERRALS + 1):
            try:
                return self.registry(url).call(method, *params)
            except SearchFailed as exc:
                referral = _REFERRAL.search(exc.message)
                if referral is None or referral.group(1) == url:
                    raise
                url = referral.group(1).rstrip(".;,")
        raise SearchFailed(f"{method}: more than {MAX_REFERRALS} referrals; giving up")

    def resolve(self, hrn: str) -> list[dict[str, Any]]:
        """Resolve `hrn`, following the record stubs a registry returns for a peer's names."""
        url = self.config.registry
        for _ in range(MAX_REFERRALS + 1):
            records = list(self._resolve_at(url, hrn))
            stubs = [r for r in records if _is_stub(r, hrn)]
            if not stubs or stubs[0]["url"] == url:
                return [r for r in records if not _is_stub(r, hrn)]
            url = str(stubs[0]["url"])
        raise SearchFailed(f"Resolve {hrn}: more than {MAX_REFERRALS} referrals; giving up")

    def _resolve_at(self, url: str, hrn: str) -> Any:
        try:
            return self.registry(url).call("Resolve", hrn, [self.user_credential()], {})
        except SearchFailed as exc:
            referral = _REFERRAL.search(exc.message)
            if referral is None or referral.group(1) == url:
                raise
            return [{"hrn": "", "type": "authority", "url": referral.group(1).rstrip(".;,")}]

    # --- credentials -------------------------------------------------------------------------

    def user_credential(self) -> str:
        return self.credential(self.config.user, "user")

    def credential(self, hrn: str, type: str) -> str:
        """A verified credential for (hrn, type): the cached one, or a fresh one when it has
        expired, is about to, or no longer verifies."""
        return self.credential_object(hrn, type).xml

    def credential_object(self, hrn: str, type: str) -> Credential:
        self.gid  # noqa: B018 - bootstrap first: it caches the user credential
        cached = self.credentials.load(hrn, type)
        if cached is not None:
            return cached
        if type == "user" and hrn == self.config.user:
            xml = self.call_registry("GetSelfCredential", self.gid.to_pem(), hrn, "user")
        else:
            xml = self.call_registry("GetCredential", [self.user_credential()], hrn, type)
        return self.credentials.store(hrn, type, xml)

    def authority_credential(self, hrn: str) -> str:
        return self.credential(hrn, "authority")

    def write_credentials(self, hrn: str, type: str) -> list[str]:
        """Credentials to change (hrn, type): the record's own when the user holds one,
        else the parent authority's (a PI's)."""
        attempts: list[Callable[[], str]] = []
        if type == "user" and hrn == self.config.user:
            attempts.append(self.user_credential)
        if type in ("slice", "authority"):
            attempts.append(lambda: self.credential(hrn, type))
        attempts.append(lambda: self.authority_credential(hrn_authority(hrn)))
        errors: list[SfaError] = []
        for attempt in attempts:
            try:
                return [attempt()]
            except SfaError as exc:
                errors.append(exc)
        raise errors[-1]


def _is_stub(record: dict[str, Any], hrn: str) -> bool:
    """A referral stub: an authority record with a registry URL, not the name asked for."""
    return (record.get("type") == "authority" and bool(record.get("url"))
            and str(record.get("url", "")).startswith("https://") and record.get("hrn") != hrn)


def session_paths(config: ClientConfig) -> dict[str, Path]:
    """Where this configuration keeps things (for `sfi config`)."""
    return {"config": config.directory / "sfi.toml", "key": config.key_path,
            "trusted_roots": config.trusted_roots_dir, "cache": config.cache_dir,
            "slices": config.slices_dir}
