"""One aggregate (or slice manager) as sfi sees it: AM API v3 or v2 calls with the right
credential form, and a slice credential delegated to a slice manager's GID automatically."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sfa.client.config import AggregateEntry
from sfa.client.session import Session
from sfa.errors import BadVersion, Forbidden
from sfa.rpc.transport import AmEndpoint
from sfa.rspecs.compress import decompress
from sfa.timeutil import format_rfc3339
from sfa.trust.credential import delegate_credential
from sfa.xrn import hrn_to_urn

GENI3 = {"type": "GENI", "version": "3"}


def slice_urn(hrn: str) -> str:
    return hrn_to_urn(hrn, "slice")


@dataclass
class AmClient:
    """Calls on one aggregate; `version` is the AM API version actually spoken (2 or 3)."""

    session: Session
    nick: str
    entry: AggregateEntry
    version: int = 3
    _endpoint: AmEndpoint | None = field(default=None, repr=False)

    @classmethod
    def open(cls, session: Session, nick: str, entry: AggregateEntry,
             version: int | None = None) -> AmClient:
        """A client for `entry`; asking for v2 of a v3 entry finds the v2 URL in GetVersion."""
        wanted = version or entry.api_version
        if wanted == entry.api_version:
            return cls(session, nick, entry, wanted)
        info = AmClient(session, nick, entry, entry.api_version).get_version()
        url = dict(info.get("geni_api_versions") or {}).get(str(wanted))
        if not url:
            raise BadVersion(f"{nick} ({entry.url}) does not offer AM API v{wanted}")
        return cls(session, nick, AggregateEntry(url, wanted, entry.slicemgr), wanted)

    @property
    def endpoint(self) -> AmEndpoint:
        if self._endpoint is None:
            self._endpoint = self.session.aggregate(self.entry)
        return self._endpoint

    def call(self, method: str, *params: Any) -> Any:
        return self.endpoint.call(method, *params)

    def get_version(self) -> dict[str, Any]:
        value = self.session.aggregate(self.entry, anonymous=True).call("GetVersion", {})
        return dict(value or {})

    # --- credentials -------------------------------------------------------------------------

    def wrap(self, xml: str) -> Any:
        if self.version == 2:
            return xml
        return {"geni_type": "geni_sfa", "geni_version": "3", "geni_value": xml}

    def user_credentials(self) -> list[Any]:
        return [self.wrap(self.session.user_credential())]

    def slice_credentials(self, hrn: str) -> list[Any]:
        """The slice credential; for a slice manager, delegated to the slice manager's GID
        (it presents its own TLS identity to the aggregates behind it)."""
        credential = self.session.credential_object(hrn, "slice")
        if not self.entry.slicemgr:
            return [self.wrap(credential.xml)]
        manager = self.session.server_gid(self.entry.url)
        if "+authority+sm" not in manager.urn:
            raise Forbidden(f"{self.entry.url} is configured as a slice manager but presents "
                            f"{manager.urn or 'a GID without a URN'}; refusing to delegate")
        delegated = delegate_credential(credential, to=manager, signer_key=self.session.key,
                                        signer=self.session.gid)
        return [self.wrap(delegated.xml)]

    # --- AM API ------------------------------------------------------------------------------

    def list_resources(self, available: bool) -> str:
        options = {"geni_rspec_version": GENI3, "geni_available": available,
                   "geni_compressed": True}
        return _rspec_text(self.call("ListResources", self.user_credentials(), options))

    def describe(self, hrn: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """{geni_rspec (text), geni_slivers, ...}; v2 gives the manifest only."""
        creds = self.slice_credentials(hrn)
        if self.version == 2:
            options = {"geni_rspec_version": GENI3, "geni_slice_urn": slice_urn(hrn)}
            return {"geni_rspec": _rspec_text(self.call("ListResources", creds, options)),
                    "geni_slivers": []}
        options = {"geni_rspec_version": GENI3, **(extra or {})}
        value = dict(self.call("Describe", [slice_urn(hrn)], creds, options))
        value["geni_rspec"] = _rspec_text(value.get("geni_rspec", ""))
        return value

    def allocate(self, hrn: str, rspec: str, end: datetime | None = None) -> dict[str, Any]:
        self._needs_v3("allocate")
        options = {"geni_end_time": format_rfc3339(end)} if end else {}
        return dict(self.call("Allocate", slice_urn(hrn), self.slice_credentials(hrn), rspec,
                              options))

    def provision(self, hrn: str, users: list[dict[str, Any]]) -> dict[str, Any]:
        self._needs_v3("provision")
        options = {"geni_rspec_version": GENI3, "geni_users": users, "geni_best_effort": True}
        return dict(self.call("Provision", [slice_urn(hrn)], self.slice_credentials(hrn),
                              options))

    def create_sliver(self, hrn: str, rspec: str, users: list[dict[str, Any]]) -> str:
        """v2: allocate + provision + start in one call; the manifest."""
        return _rspec_text(self.call("CreateSliver", slice_urn(hrn), self.slice_credentials(hrn),
                                     rspec, users, {}))

    def perform(self, hrn: str, action: str, users: list[dict[str, Any]] | None = None
                ) -> list[dict[str, Any]]:
        self._needs_v3(action)
        options: dict[str, Any] = {"geni_best_effort": True}
        if users is not None:
            options["geni_users"] = users
        return list(self.call("PerformOperationalAction", [slice_urn(hrn)],
                              self.slice_credentials(hrn), action, options))

    def status(self, hrn: str) -> list[dict[str, Any]]:
        """Sliver statuses in the v3 form (v2 SliverStatus is translated)."""
        creds = self.slice_credentials(hrn)
        if self.version == 2:
            value = self.call("SliverStatus", slice_urn(hrn), creds, {})
            return [{"geni_sliver_urn": r.get("geni_urn", ""),
                     "geni_operational_status": r.get("geni_status", ""),
                     "geni_error": r.get("geni_error", "")}
                    for r in value.get("geni_resources", [])]
        return list(self.call("Status", [slice_urn(hrn)], creds, {}).get("geni_slivers", []))

    def renew(self, hrn: str, when: datetime) -> list[dict[str, Any]]:
        creds, text = self.slice_credentials(hrn), format_rfc3339(when)
        if self.version == 2:
            self.call("RenewSliver", slice_urn(hrn), creds, text, {})
            return []
        return list(self.call("Renew", [slice_urn(hrn)], creds, text,
                              {"geni_best_effort": True}))

    def delete(self, hrn: str) -> list[dict[str, Any]]:
        creds = self.slice_credentials(hrn)
        if self.version == 2:
            self.call("DeleteSliver", slice_urn(hrn), creds, {})
            return []
        return list(self.call("Delete", [slice_urn(hrn)], creds, {"geni_best_effort": True}))

    def shutdown(self, hrn: str) -> None:
        self.call("Shutdown", slice_urn(hrn), self.slice_credentials(hrn), {})

    def _needs_v3(self, what: str) -> None:
        if self.version != 3:
            raise BadVersion(f"{what} needs AM API v3; {self.nick} is spoken to in v2 "
                             "(use createslice, status, renew or delete)")


def _rspec_text(value: Any) -> str:
    """An RSpec as returned: plain, or geni_compressed (base64 zlib)."""
    text = value.data.decode("utf-8") if hasattr(value, "data") else str(value or "")
    stripped = text.lstrip()
    if stripped and not stripped.startswith("<"):
        return decompress(stripped)
    return text
