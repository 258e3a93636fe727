"""The slice manager: the AM API v3 over several aggregates (transport-free).

Each call is checked by `authorize_forwarding`, then sent in parallel to the aggregates
concerned with the caller's credentials unchanged (the aggregates see the slice manager's TLS
identity and verify the delegation themselves). Every reply carries one report per aggregate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sfa.errors import BadArgs, GeniCode, SearchFailed
from sfa.rspecs.compress import compress, decompress
from sfa.rspecs.versions import rspec_versions
from sfa.slicemgr.authz import authorize_forwarding, verify_lister
from sfa.slicemgr.fanout import AggregateLink, AggregateReport, FanOut
from sfa.slicemgr.holders import SliceHolders
from sfa.slicemgr.rspec_merge import authority_of, merge_rspecs, split_request
from sfa.trust.gid import GID
from sfa.trust.rights import OPERATION_FOR_METHOD
from sfa.trust.verify import TrustPolicy
from sfa.xrn import is_authority_for, validate_urn

Call = Callable[[AggregateLink], Any]


@dataclass(frozen=True)
class SmReply:
    """A slice manager reply: the merged value, one report per aggregate, the GENI code."""

    value: Any
    reports: tuple[AggregateReport, ...] = ()
    code: int = GeniCode.SUCCESS
    output: str = ""

    @property
    def aggregates(self) -> list[dict[str, Any]]:
        return [report.to_wire() for report in self.reports]


class SliceManager:
    """AM API v3 methods; `peer` is the caller's TLS certificate (verified here)."""

    def __init__(self, *, gid: GID, policy: TrustPolicy,
                 aggregates: Callable[[], Sequence[AggregateLink]], holders: SliceHolders,
                 fanout: FanOut, api_urls: Mapping[str, str] | None = None) -> None:
        self.gid = gid
        self.policy = policy
        self.aggregates = aggregates
        self.holders = holders
        self.fanout = fanout
        self.api_urls = dict(api_urls or {})

    def get_version(self, options: object = None) -> dict[str, Any]:
        _options(options)
        return {
            "geni_api": 3, "geni_api_versions": dict(self.api_urls),
            "geni_request_rspec_versions": rspec_versions("request"),
            "geni_ad_rspec_versions": rspec_versions("ad"),
            "geni_credential_types": [{"geni_type": "geni_sfa", "geni_version": "3"},
                                      {"geni_type": "geni_abac", "geni_version": "1"}],
            "geni_allocate": "geni_many", "geni_handles_speaksfor": True,
            "urn": self.gid.urn, "hrn": self.gid.hrn, "am_type": "sfa",
            "sfa_slice_manager": True,
            "sfa_aggregates": [{"urn": a.urn, "url": a.url} for a in self.aggregates()],
        }

    def list_resources(self, peer: GID | None, credentials: object, options: object
                       ) -> SmReply:
        """Every aggregate's advertisement merged into one (nodes keep component_manager_id);
        read-only, so it succeeds when any aggregate answered (the others are reported)."""
        opts = _options(options)
        verify_lister(_credentials(credentials), _caller(peer), self.policy, opts)
        asked = {**opts, "geni_compressed": False}
        reports = self.fanout.run([(a, _calling("ListResources", [], asked))
                                   for a in self.aggregates()])
        texts = [_rspec_text(r.value) for r in reports if r.ok]
        value = merge_rspecs(texts, "advertisement") if texts else ""
        return _reply(_maybe_compressed(value, opts), reports, {"geni_best_effort": True})

    def allocate(self, peer: GID | None, slice_urn: object, credentials: object, rspec: object,
                 options: object) -> SmReply:
        """Split the request by component_manager_id; allocate every part in parallel. Unless
        geni_best_effort, a failed part releases the parts that succeeded."""
        opts = _options(options)
        urn = _slice_urn(slice_urn)
        creds = _credentials(credentials)
        self._authorize("Allocate", peer, creds, [urn], opts)
        if not isinstance(rspec, str):
            raise BadArgs("the request RSpec must be a string")
        links = {a.urn: a for a in self.aggregates()}
        parts = split_request(rspec, list(links))
        reports = self.fanout.run([(links[a], _calling("Allocate", urn, creds, part, opts))
                                   for a, part in parts.items()])
        done = [r for r in reports if r.ok]
        if len(done) < len(reports) and done and not _flag(opts, "geni_best_effort"):
            self._release(done, creds)
            return _reply({"geni_rspec": "", "geni_slivers": []}, reports, opts,
                          note="the parts that succeeded were released (nothing allocated)")
        self.holders.add(urn, [r.urn for r in done])
        return _reply(_manifest_value(done, opts), reports, opts)

    def provision(self, peer: GID | None, urns: object, credentials: object, options: object
                  ) -> SmReply:
        opts = _options(options)
        reports = self._each("Provision", peer, urns, credentials, opts=opts,
                             params=lambda names, creds: ("Provision", names, creds, _plain(opts)))
        return _reply(_manifest_value([r for r in reports if r.ok], opts), reports, opts)

    def describe(self, peer: GID | None, urns: object, credentials: object, options: object
                 ) -> SmReply:
        opts = _options(options)
        reports = self._each("Describe", peer, urns, credentials, opts=opts,
                             params=lambda names, creds: ("Describe", names, creds, _plain(opts)))
        done = [r for r in reports if r.ok]
        value = _manifest_value(done, opts)
        tickets = [t for r in done for t in (r.value or {}).get("sfa_tickets", [])]
        if tickets:  # the node-manager driver's tickets (sfi redeems them itself)
            value["sfa_tickets"] = tickets
        return _reply({**value, "geni_urn": _first_slice(urns)}, reports, opts)

    def status(self, peer: GID | None, urns: object, credentials: object, options: object
               ) -> SmReply:
        opts = _options(options)
        reports = self._each("Status", peer, urns, credentials, opts=opts,
                             params=lambda names, creds: ("Status", names, creds, opts))
        slivers = [s for r in reports if r.ok for s in (r.value or {}).get("geni_slivers", [])]
        return _reply({"geni_urn": _first_slice(urns), "geni_slivers": slivers}, reports, opts)

    def perform_operational_action(self, peer: GID | None, urns: object, credentials: object,
                                   action: object, options: object) -> SmReply:
        opts = _options(options)
        reports = self._each(
            "PerformOperationalAction", peer, urns, credentials, opts=opts,
            params=lambda names, creds: ("PerformOperationalAction", names, creds, action, opts))
        return _reply(_concatenated(reports), reports, opts)

    def renew(self, peer: GID | None, urns: object, credentials: object,
              expiration_time: object, options: object) -> SmReply:
        opts = _options(options)
        reports = self._each(
            "Renew", peer, urns, credentials, opts=opts,
            params=lambda names, creds: ("Renew", names, creds, expiration_time, opts))
        return _reply(_concatenated(reports), reports, opts)

    def delete(self, peer: GID | None, urns: object, credentials: object, options: object
               ) -> SmReply:
        opts = _options(options)
        reports = self._each("Delete", peer, urns, credentials, opts=opts,
                             params=lambda names, creds: ("Delete", names, creds, opts))
        names = _urn_list(urns)
        if len(names) == 1 and "+slice+" in names[0]:
            self.holders.remove(names[0], [r.urn for r in reports if r.ok])
        return _reply(_concatenated(reports), reports, opts)

    def shutdown(self, peer: GID | None, slice_urn: object, credentials: object,
                 options: object) -> SmReply:
        opts = _options(options)
        urn = _slice_urn(slice_urn)
        creds = _credentials(credentials)
        self._authorize("Shutdown", peer, creds, [urn], opts)
        links, found = self._holding(urn, creds)
        reports = found + self.fanout.run([(a, _calling("Shutdown", urn, creds, opts))
                                           for a in links])
        return _reply(all(r.ok for r in reports), reports, opts)

    # --- helpers ---------------------------------------------------------------------------

    def _authorize(self, method: str, peer: GID | None, creds: list[Any],
                   targets: Sequence[str], opts: Mapping[str, Any]) -> None:
        authorize_forwarding(creds, _caller(peer), self.gid, self.policy,
                             operation=OPERATION_FOR_METHOD[method], targets=targets,
                             options=opts, target_match="exact" if targets else "any")

    def _each(self, method: str, peer: GID | None, urns: object, credentials: object, *,
              opts: Mapping[str, Any], params: Callable[[list[str], list[Any]], tuple[Any, ...]]
              ) -> list[AggregateReport]:
        """Authorize, find the aggregates concerned (with the names each should get), call."""
        names = _urn_list(urns)
        creds = _credentials(credentials)
        slices = [n for n in names if validate_urn(n).type == "slice"]
        if slices:
            if len(names) != 1:
                raise BadArgs("name either one slice URN or sliver URNs, not both or several")
            self._authorize(method, peer, creds, slices, opts)
            links, found = self._holding(slices[0], creds)
            targets = [(a, names) for a in links]
        else:
            self._authorize(method, peer, creds, (), opts)
            found, targets = [], self._route_slivers(names)
        return found + self.fanout.run(
            [(a, _calling(*params(sent, creds))) for a, sent in targets])

    def _holding(self, slice_urn: str, creds: list[Any]
                 ) -> tuple[list[AggregateLink], list[AggregateReport]]:
        """The aggregates holding slivers of the slice; when none is recorded (slivers made
        without this slice manager), ask every aggregate's Status and record the holders.
        Second item: the reports of aggregates that could not be asked."""
        links = list(self.aggregates())
        recorded = self.holders.of(slice_urn)
        if recorded:
            return [a for a in links if a.urn in recorded], []
        reports = self.fanout.run([(a, _calling("Status", [slice_urn], creds, {}))
                                   for a in links])
        holding = {r.urn for r in reports if r.ok and (r.value or {}).get("geni_slivers")}
        failed = [r for r in reports if not r.ok]
        if not holding and not failed:
            raise SearchFailed(f"slice {slice_urn} has no slivers at any aggregate this slice "
                               f"manager reaches ({len(links)})")
        self.holders.add(slice_urn, holding)
        return [a for a in links if a.urn in holding], failed

    def _route_slivers(self, names: list[str]) -> list[tuple[AggregateLink, list[str]]]:
        """Sliver URNs grouped by the aggregate of their authority."""
        links = list(self.aggregates())
        routed: dict[str, list[str]] = {}
        for name in names:
            xrn = validate_urn(name, "sliver")
            owner = next((a for a in links
                          if is_authority_for(authority_of(a.urn), xrn.authority_hrn)), None)
            if owner is None:
                raise SearchFailed(f"sliver {name[:120]} belongs to no aggregate this slice "
                                   "manager reaches")
            routed.setdefault(owner.urn, []).append(name)
        return [(a, routed[a.urn]) for a in links if a.urn in routed]

    def _release(self, done: Sequence[AggregateReport], creds: list[Any]) -> None:
        links = {a.urn: a for a in self.aggregates()}
        calls = []
        for report in done:
            urns = [s["geni_sliver_urn"] for s in (report.value or {}).get("geni_slivers", [])]
            if urns and report.urn in links:
                calls.append((links[report.urn], _calling("Delete", urns, creds, {})))
        self.fanout.run(calls)


def _calling(method: str, *params: Any) -> Call:
    return lambda aggregate: aggregate.call(method, *params)


def _reply(value: Any, reports: Sequence[AggregateReport], opts: Mapping[str, Any], *,
           note: str = "") -> SmReply:
    """SUCCESS when every aggregate succeeded (or some did, under geni_best_effort); else the
    first failure's code. The output names every failed aggregate."""
    failed = [r for r in reports if r.error is not None]
    lines = [f"{r.url}: {r.error.code.name}: {r.error.message}"
             for r in failed if r.error is not None]
    output = "; ".join(lines + ([note] if note else []))
    partial_ok = bool(failed) and len(failed) < len(reports) and _flag(opts, "geni_best_effort")
    if isinstance(value, dict):
        value = {**value, "sfa_aggregates": [r.to_wire() for r in reports]}
    if not failed or partial_ok:
        return SmReply(value, tuple(reports), GeniCode.SUCCESS, output)
    first = failed[0].error
    assert first is not None
    return SmReply(value, tuple(reports), first.code, output)


def _manifest_value(done: Sequence[AggregateReport], opts: Mapping[str, Any]) -> dict[str, Any]:
    manifests = [_rspec_text((r.value or {}).get("geni_rspec", "")) for r in done]
    merged = merge_rspecs([m for m in manifests if m], "manifest") if any(manifests) else ""
    slivers = [s for r in done for s in (r.value or {}).get("geni_slivers", [])]
    return {"geni_rspec": _maybe_compressed(merged, opts), "geni_slivers": slivers}


def _concatenated(reports: Sequence[AggregateReport]) -> list[Any]:
    return [item for r in reports if r.ok for item in (r.value or [])]


def _plain(opts: Mapping[str, Any]) -> dict[str, Any]:
    """Options as sent to the aggregates: uncompressed, so that the manifests can be merged."""
    return {**opts, "geni_compressed": False}


def _maybe_compressed(text: str, opts: Mapping[str, Any]) -> str:
    return compress(text) if text and _flag(opts, "geni_compressed") else text


def _rspec_text(value: Any) -> str:
    text = value.data.decode("utf-8") if hasattr(value, "data") else str(value or "")
    stripped = text.lstrip()
    return decompress(stripped) if stripped and not stripped.startswith("<") else text


def _flag(opts: Mapping[str, Any], name: str) -> bool:
    return opts.get(name) is True or opts.get(name) in (1, "true", "True", "1")


def _options(options: object) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise BadArgs(f"options must be a struct, got {type(options).__name__}")
    return dict(options)


def _credentials(credentials: object) -> list[Any]:
    if not isinstance(credentials, list | tuple):
        raise BadArgs(f"credentials must be a list, got {type(credentials).__name__}")
    return list(credentials)


def _caller(peer: GID | None) -> GID:
    if peer is None:
        raise BadArgs("this call needs a TLS client certificate (your GID)")
    return peer


def _slice_urn(value: object) -> str:
    if not isinstance(value, str):
        raise BadArgs("the slice URN must be a string")
    return validate_urn(value, "slice").urn


def _urn_list(urns: object) -> list[str]:
    if not isinstance(urns, list | tuple) or not urns or not all(isinstance(u, str)
                                                                   for u in urns):
        raise BadArgs("urns must be a non-empty list of slice or sliver URNs")
    return list(urns)


def _first_slice(urns: object) -> str:
    names = urns if isinstance(urns, list | tuple) else []
    return next((n for n in names if isinstance(n, str) and "+slice+" in n), "")
