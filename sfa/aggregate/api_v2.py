"""The GENI AM API v2, as an adapter over the v3 core (CreateSliver = Allocate+Provision+start)."""

from __future__ import annotations

from typing import Any

from sfa.errors import SearchFailed, SfaError
from sfa.trust.gid import GID

from .api_v3 import AggregateManagerV3
from .arguments import options_of, users_of
from .context import slice_urn_argument
from .slivers import OperationalState

GENI_V3_RSPEC = {"type": "GENI", "version": "3"}

_V2_STATUS = {
    OperationalState.READY.value: "ready",
    OperationalState.READY_BUSY.value: "ready",
    OperationalState.FAILED.value: "failed",
}


def v2_status(operational: str) -> str:
    """A v3 operational state as v2's geni_status."""
    return _V2_STATUS.get(operational, "configuring")


def overall_status(states: list[str]) -> str:
    """The slice's v2 status from its slivers' ones."""
    if not states:
        return "unknown"
    if "failed" in states:
        return "failed"
    return "ready" if all(s == "ready" for s in states) else "configuring"


class AggregateManagerV2:
    """Every AM API v2 method, each one or a few v3 calls."""

    def __init__(self, v3: AggregateManagerV3) -> None:
        self.v3 = v3

    def get_version(self, options: object = None) -> dict[str, Any]:
        return {**self.v3.get_version(options), "geni_api": 2}

    def list_resources(self, peer: GID | None, credentials: object, options: object) -> str:
        opts = dict(options_of(options))
        slice_urn = opts.pop("geni_slice_urn", None)
        if not slice_urn:
            return self.v3.list_resources(peer, credentials, opts)
        described = self.v3.describe(peer, [slice_urn], credentials, opts)
        return str(described["geni_rspec"])

    def create_sliver(self, peer: GID | None, slice_urn: object, credentials: object,  # noqa: PLR0917
                      rspec: object, users: object, options: object) -> str:
        opts = dict(options_of(options))
        opts.setdefault("geni_rspec_version", GENI_V3_RSPEC)
        opts["geni_users"] = list(users) if isinstance(users, list | tuple) else users
        users_of(opts["geni_users"])
        opts.pop("geni_best_effort", None)
        allocated = self.v3.allocate(peer, slice_urn, credentials, rspec, opts)
        urns = [s["geni_sliver_urn"] for s in allocated["geni_slivers"]]
        try:
            self.v3.provision(peer, urns, credentials, opts)
            self.v3.perform_operational_action(peer, urns, credentials, "geni_start", opts)
        except SfaError:
            self.v3.delete(peer, urns, credentials, {})
            raise
        described = self.v3.describe(peer, urns, credentials, {**opts, "geni_compressed": False})
        return str(described["geni_rspec"])

    def sliver_status(self, peer: GID | None, slice_urn: object, credentials: object,
                      options: object) -> dict[str, Any]:
        urn = slice_urn_argument(slice_urn)
        result = self.v3.status(peer, [urn], credentials, options_of(options))
        if not result["geni_slivers"]:
            raise SearchFailed(f"slice {urn} has no slivers at this aggregate")
        resources = [
            {"geni_urn": s["geni_sliver_urn"],
             "geni_status": v2_status(s["geni_operational_status"]),
             "geni_error": s["geni_error"]}
            for s in result["geni_slivers"]
        ]
        return {"geni_urn": urn,
                "geni_status": overall_status([r["geni_status"] for r in resources]),
                "geni_resources": resources}

    def renew_sliver(self, peer: GID | None, slice_urn: object, credentials: object,
                     expiration_time: object, options: object) -> bool:
        urn = slice_urn_argument(slice_urn)
        self.v3.renew(peer, [urn], credentials, expiration_time, options_of(options))
        return True

    def delete_sliver(self, peer: GID | None, slice_urn: object, credentials: object,
                      options: object) -> bool:
        urn = slice_urn_argument(slice_urn)
        self.v3.delete(peer, [urn], credentials, options_of(options))
        return True

    def shutdown(self, peer: GID | None, slice_urn: object, credentials: object,
                 options: object) -> bool:
        return self.v3.shutdown(peer, slice_urn, credentials, options)
