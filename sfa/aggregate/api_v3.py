"""The GENI AM API v3 core: parsed arguments and the TLS caller in, values or SfaErrors out."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sfa import __version__
from sfa.errors import AlreadyExists, BadArgs, GeneralError, SfaError, Unsupported
from sfa.rspecs.compress import compress
from sfa.rspecs.versions import rspec_versions
from sfa.rspecs.writer import write_rspec
from sfa.trust.gid import GID
from sfa.trust.rights import OPERATION_FOR_METHOD
from sfa.trust.verify import VerifiedCall
from sfa.xrn import hrn_to_urn, same_name

from .arguments import (
    credentials_of,
    deleted_status,
    option_flag,
    optional_time,
    options_of,
    require_rspec_version,
    statuses,
    time_argument,
    urn_list,
    users_of,
)
from .context import AggregateContext, Target, slice_urn_argument
from .driver import Driver, SliverResult
from .manifest import manifest
from .mapping import Placement
from .request import parse_request
from .slivers import (
    Action,
    AllocationState,
    OperationalState,
    Sliver,
    UserKeys,
    check_action_allowed,
    final_state,
    parse_action,
)


class AggregateManagerV3:
    """Every AM API v3 method; `peer` is the caller's TLS certificate (a GID)."""

    def __init__(self, context: AggregateContext) -> None:
        self.ctx = context

    def get_version(self, options: object = None) -> dict[str, Any]:
        options_of(options)
        settings = self.ctx.settings
        return {
            "geni_api": 3,
            "geni_api_versions": dict(settings.api_urls),
            "geni_request_rspec_versions": rspec_versions("request"),
            "geni_ad_rspec_versions": rspec_versions("ad"),
            "geni_credential_types": [
                {"geni_type": "geni_sfa", "geni_version": "3"},
                {"geni_type": "geni_sfa", "geni_version": "2"},
                {"geni_type": "geni_abac", "geni_version": "1"},
            ],
            "geni_single_allocation": 0,
            "geni_allocate": "geni_many",
            "geni_handles_speaksfor": True,
            "urn": settings.am_urn,
            "hrn": settings.hrn,
            "am_type": "sfa",
            "sfa_version": __version__,
        }

    def list_resources(self, peer: GID | None, credentials: object, options: object) -> str:
        opts = options_of(options)
        creds = credentials_of(credentials)
        require_rspec_version(opts)
        if opts.get("geni_slice_urn"):
            raise BadArgs("geni_slice_urn is not allowed in v3 ListResources; use Describe")
        self.ctx.authorize(creds, peer, None, (), opts, match="any", allow_empty=True)
        self.ctx.reap()
        return self.ctx.ads.get(available_only=option_flag(opts, "geni_available"),
                                compressed=option_flag(opts, "geni_compressed"))

    def describe(self, peer: GID | None, urns: object, credentials: object, options: object
                 ) -> dict[str, Any]:
        opts = options_of(options)
        require_rspec_version(opts)
        target, _ = self._enter("Describe", peer, urns, credentials, opts)
        text = self._manifest(target.slivers)
        value: dict[str, Any] = {
            "geni_rspec": compress(text) if option_flag(opts, "geni_compressed") else text,
            "geni_urn": target.slice_urn,
            "geni_slivers": statuses(target.slivers, usage=self._usage(target.slivers, opts)),
        }
        if option_flag(opts, "sfa_tickets"):
            # the slice credential holder may redeem the tickets at the nodes themselves
            issuer = getattr(self.ctx.driver, "tickets_for", None)
            value["sfa_tickets"] = issuer(target.slivers) if issuer is not None else []
        return value

    def allocate(self, peer: GID | None, slice_urn: object, credentials: object, rspec: object,
                 options: object) -> dict[str, Any]:
        opts = options_of(options)
        slice_urn = slice_urn_argument(slice_urn)
        call = self.ctx.authorize(credentials_of(credentials), peer,
                                  OPERATION_FOR_METHOD["Allocate"], [slice_urn], opts)
        self.ctx.refuse_if_shut_down(slice_urn)
        self.ctx.reap()
        request = parse_request(rspec)
        now = self.ctx.clock()
        expires = self.ctx.settings.lifetimes.allocation_expiry(now, call.expires)
        end_time = optional_time(opts, "geni_end_time")
        if end_time is not None:
            expires = min(expires, self.ctx.settings.lifetimes.lease_end(
                now, end_time, call.expires))
        placements = self._place(request.nodes, slice_urn)
        slivers = [self._new_sliver(slice_urn, p, expires, now, request.init_script or "")
                   for p in placements]
        self.ctx.store.claim(slivers)
        _remember_slice_gid(self.ctx, call, slice_urn)
        results = self.ctx.run(self.ctx.driver.allocate(slivers))
        failed = [r for r in results if not r.ok]
        if failed:
            self.ctx.run(self.ctx.driver.delete([s for s, r in zip(slivers, results, strict=True)
                                                 if r.ok]))
            self.ctx.store.delete([s.urn for s in slivers])
            raise GeneralError("allocation failed, nothing was allocated: " + _errors(failed))
        return {"geni_rspec": self._manifest(slivers), "geni_slivers": statuses(slivers)}

    def provision(self, peer: GID | None, urns: object, credentials: object, options: object
                  ) -> dict[str, Any]:
        opts = options_of(options)
        require_rspec_version(opts)
        target, cred_expiry = self._enter("Provision", peer, urns, credentials, opts)
        best_effort = option_flag(opts, "geni_best_effort")
        users = users_of(opts.get("geni_users"))
        chosen = [s for s in target.slivers
                  if not target.whole_slice or s.allocation is AllocationState.ALLOCATED]
        if not chosen:
            raise Unsupported(f"nothing to provision in {target.slice_urn}: allocate first")
        errors = {s.urn: f"sliver is {s.allocation.value}; only allocated slivers provision"
                  for s in chosen if s.allocation is not AllocationState.ALLOCATED}
        _refuse_unless_best_effort(errors, best_effort, "Provision")
        now = self.ctx.clock()
        expires = self.ctx.settings.lifetimes.lease_end(
            now, optional_time(opts, "geni_end_time"), cred_expiry,
            extend_alap=option_flag(opts, "geni_extend_alap"))
        ready = [s.with_changes(expires=expires, users=users)
                 for s in chosen if s.urn not in errors]
        results = self.ctx.run(self.ctx.driver.provision(ready, users)) if ready else []
        failures = {r.sliver_urn: r.error for r in results if not r.ok}
        if failures and not best_effort:
            self.ctx.run(self.ctx.driver.delete([s for s in ready if s.urn not in failures]))
            self.ctx.run(self.ctx.driver.allocate([s for s in ready if s.urn not in failures]))
            raise GeneralError("provisioning failed, nothing changed: " + _errors(
                [r for r in results if not r.ok]))
        done = [_provisioned(s, r) for s, r in zip(ready, results, strict=True) if r.ok]
        self.ctx.store.update([*done, *_refused(chosen, failures)])
        errors.update(failures)
        reported = self._current(chosen)
        return {"geni_rspec": self._manifest(reported), "geni_slivers": statuses(reported, errors)}

    def status(self, peer: GID | None, urns: object, credentials: object, options: object
               ) -> dict[str, Any]:
        opts = options_of(options)
        target, _ = self._enter("Status", peer, urns, credentials, opts)
        provisioned = [s for s in target.slivers if s.allocation is AllocationState.PROVISIONED]
        errors: dict[str, str] = {}
        usage: dict[str, dict[str, int]] = {}
        if provisioned:
            results = self.ctx.run(self.ctx.driver.status(provisioned))
            usage = {r.sliver_urn: r.usage for r in results if r.ok and r.usage}
            changed = [s.with_changes(operational=r.operational)
                       for s, r in zip(provisioned, results, strict=True)
                       if r.ok and r.operational is not None and r.operational != s.operational]
            errors = {r.sliver_urn: r.error for r in results if not r.ok}
            if changed:
                self.ctx.store.update(changed)
        return {"geni_urn": target.slice_urn,
                "geni_slivers": statuses(self._current(target.slivers), errors, usage)}

    def _usage(self, slivers: Sequence[Sliver], opts: Mapping[str, Any]
               ) -> dict[str, dict[str, int]]:
        """Describe with `sfa_usage`: what the nodes measure of the provisioned slivers (one
        status round trip; without the option Describe asks no node)."""
        provisioned = [s for s in slivers if s.allocation is AllocationState.PROVISIONED]
        if not option_flag(opts, "sfa_usage") or not provisioned:
            return {}
        results = self.ctx.run(self.ctx.driver.status(provisioned))
        return {r.sliver_urn: r.usage for r in results if r.ok and r.usage}

    def perform_operational_action(self, peer: GID | None, urns: object, credentials: object,
                                   action: object, options: object) -> list[dict[str, Any]]:
        opts = options_of(options)
        chosen_action = parse_action(action)
        target, _ = self._enter("PerformOperationalAction", peer, urns, credentials, opts)
        best_effort = option_flag(opts, "geni_best_effort")
        users = users_of(opts.get("geni_users"))
        errors = {}
        for sliver in target.slivers:
            try:
                check_action_allowed(sliver, chosen_action)
            except Unsupported as exc:
                errors[sliver.urn] = exc.message
        _refuse_unless_best_effort(errors, best_effort, chosen_action.value)
        acting = [s for s in target.slivers if s.urn not in errors]
        results = (self.ctx.run(_act(self.ctx.driver, acting, chosen_action, users))
                   if acting else [])
        failed = [r for r in results if not r.ok]
        if failed and not best_effort:
            reached = [s for s, r in zip(acting, results, strict=True) if r.ok]
            self._undo_action(reached, chosen_action)
            raise GeneralError(f"{chosen_action.value} failed on some slivers, so nothing "
                               f"changed (the others were put back): {_errors(failed)}")
        refusals = {r.sliver_urn: r.error for r in failed}
        self.ctx.store.update([*(_acted(s, r, chosen_action, users)
                                 for s, r in zip(acting, results, strict=True) if r.ok),
                               *_refused(acting, refusals)])
        errors.update(refusals)
        return statuses(self._current(target.slivers), errors)

    def _undo_action(self, slivers: Sequence[Sliver], action: Action) -> None:
        """Put the slivers an all-or-nothing action already reached back as they were: stop
        what it started, start what it stopped, give back the users it replaced (a restart
        leaves them as they were: ready)."""
        driver = self.ctx.driver
        if not slivers:
            return
        if action in _INVERSE:
            self.ctx.run(driver.perform_action(slivers, _INVERSE[action], ()))
        elif action is Action.UPDATE_USERS:
            for old_users in {s.users for s in slivers}:
                group = [s for s in slivers if s.users == old_users]
                self.ctx.run(driver.update_users(group, old_users))

    def renew(self, peer: GID | None, urns: object, credentials: object,
              expiration_time: object, options: object) -> list[dict[str, Any]]:
        opts = options_of(options)
        requested = time_argument(expiration_time, "expiration_time")
        target, cred_expiry = self._enter("Renew", peer, urns, credentials, opts)
        if not target.slivers:
            raise Unsupported(f"slice {target.slice_urn} has no slivers here to renew")
        best_effort = option_flag(opts, "geni_best_effort")
        expires = self.ctx.settings.lifetimes.lease_end(
            self.ctx.clock(), requested, cred_expiry,
            extend_alap=option_flag(opts, "geni_extend_alap"))
        results = self.ctx.run(self.ctx.driver.renew(list(target.slivers), expires))
        failed = [r for r in results if not r.ok]
        if failed and not best_effort:
            raise GeneralError("renewal failed, nothing changed: " + _errors(failed))
        renewed = [s.with_changes(expires=expires)
                   for s, r in zip(target.slivers, results, strict=True) if r.ok]
        self.ctx.store.update(renewed)
        return statuses(self._current(target.slivers), {r.sliver_urn: r.error for r in failed})

    def delete(self, peer: GID | None, urns: object, credentials: object, options: object
               ) -> list[dict[str, Any]]:
        opts = options_of(options)
        target, _ = self._enter("Delete", peer, urns, credentials, opts)
        best_effort = option_flag(opts, "geni_best_effort")
        slivers = list(target.slivers)
        results = self.ctx.run(self.ctx.driver.delete(slivers)) if slivers else []
        failed = {r.sliver_urn: r.error for r in results if not r.ok}
        if failed and not best_effort:
            raise GeneralError("deletion failed, nothing was deleted: " + _errors(
                [r for r in results if not r.ok]))
        self.ctx.store.delete([s.urn for s in slivers if s.urn not in failed])
        return [deleted_status(s, failed.get(s.urn, "")) for s in slivers]

    def shutdown(self, peer: GID | None, slice_urn: object, credentials: object,
                 options: object) -> bool:
        opts = options_of(options)
        slice_urn = slice_urn_argument(slice_urn)
        self.ctx.authorize(credentials_of(credentials), peer, OPERATION_FOR_METHOD["Shutdown"],
                           [slice_urn], opts, match="subtree")
        running = [s for s in self.ctx.store.slivers_of(slice_urn)
                   if s.operational in (OperationalState.READY, OperationalState.READY_BUSY,
                                        OperationalState.CONFIGURING)]
        if running:
            results = self.ctx.run(self.ctx.driver.perform_action(running, Action.STOP, ()))
            self.ctx.store.update([s.with_changes(operational=OperationalState.NOTREADY)
                                   for s, r in zip(running, results, strict=True) if r.ok])
        self.ctx.store.set_shutdown(slice_urn, True)
        return True

    # helpers
    def _enter(self, method: str, peer: GID | None, urns: object, credentials: object,
               options: Mapping[str, Any]) -> tuple[Target, datetime | None]:
        """Reap what expired, resolve `urns`, authorize the operation on their slice.

        Returns the target and the earliest expiry of the credentials (it caps lifetimes).
        """
        names = urn_list(urns)
        creds = credentials_of(credentials)
        self.ctx.reap()
        target = self.ctx.resolve(names)
        call = self.ctx.authorize(creds, peer, OPERATION_FOR_METHOD[method],
                                  [target.slice_urn], options)
        self.ctx.refuse_if_shut_down(target.slice_urn)
        return target, call.expires

    def _place(self, requests: Sequence[Any], slice_urn: str) -> list[Placement]:
        nodes = {n.urn: n for n in self.ctx.store.nodes()}
        ours = self.ctx.mapper.ours(requests, nodes)
        if not ours:
            raise BadArgs("the request names no node of this aggregate "
                          f"({self.ctx.settings.am_urn})")
        taken = {s.client_id for s in self.ctx.store.slivers_of(slice_urn)}
        clash = sorted(taken & {r.client_id for r in ours})
        if clash:
            raise AlreadyExists(f"slice {slice_urn} already has slivers with client_id "
                                f"{', '.join(clash[:5])}; delete them or rename")
        return self.ctx.mapper.place(ours, list(nodes.values()), self.ctx.store.usage(),
                                     self.ctx.clock())

    def _new_sliver(self, slice_urn: str, placement: Placement, expires: datetime,
                    now: datetime, initscript: str) -> Sliver:
        return Sliver(
            urn=new_sliver_urn(self.ctx.settings.authority_hrn),
            slice_urn=slice_urn, node_urn=placement.node.urn,
            client_id=placement.request.client_id, sliver_type=placement.sliver_type,
            exclusive=placement.exclusive, expires=expires, created=now,
            bound=placement.request.bound, login_port=placement.node.login_port,
            initscript=initscript,
        )

    def _manifest(self, slivers: Sequence[Sliver]) -> str:
        nodes = {n.urn: n for n in self.ctx.store.nodes()} if slivers else {}
        return write_rspec(manifest(slivers, nodes, am_urn=self.ctx.settings.am_urn))

    def _current(self, slivers: Sequence[Sliver]) -> list[Sliver]:
        return self.ctx.store.slivers_by_urn([s.urn for s in slivers])


def new_sliver_urn(authority_hrn: str) -> str:
    """A fresh sliver URN under the authority: its name is a random UUID in hex."""
    return _sliver_urn_prefix(authority_hrn) + uuid.uuid4().hex


@lru_cache(maxsize=8)
def _sliver_urn_prefix(authority_hrn: str) -> str:
    """The authority's sliver URNs up to the name (a hex name needs no escaping)."""
    return hrn_to_urn(f"{authority_hrn}.0", "sliver")[:-1]


def _refuse_unless_best_effort(errors: Mapping[str, str], best_effort: bool, what: str) -> None:
    if errors and not best_effort:
        detail = "; ".join(f"{urn}: {why}" for urn, why in list(errors.items())[:5])
        raise Unsupported(f"{what} refused, nothing changed: {detail} "
                          "(pass geni_best_effort to act on the others)")


def _remember_slice_gid(ctx: AggregateContext, call: VerifiedCall, slice_urn: str) -> None:
    """Keep the slice GID of the credential that targets the slice (tickets carry it)."""
    for credential in call.credentials:
        if same_name(credential.target_urn, slice_urn):
            pem = credential.target_gid.to_pem(include_chain=True)
            if ctx.store.slice_gid(slice_urn) != pem:
                ctx.store.set_slice_gid(slice_urn, pem)
            return


def _provisioned(sliver: Sliver, result: SliverResult) -> Sliver:
    return sliver.with_changes(
        allocation=AllocationState.PROVISIONED,
        operational=result.operational or OperationalState.NOTREADY,
        login_user=result.login_user or sliver.login_user,
        login_port=result.login_port or sliver.login_port, error="",
    )


def _refused(slivers: Sequence[Sliver], reasons: Mapping[str, str]) -> list[Sliver]:
    """The slivers a backend refused, with its reason kept for Status (nothing else changes)."""
    return [s.with_changes(error=reasons[s.urn]) for s in slivers if s.urn in reasons]


_INVERSE = {Action.START: Action.STOP, Action.STOP: Action.START}


def _act(driver: Driver, slivers: Sequence[Sliver], action: Action,
         users: Sequence[UserKeys]) -> Coroutine[Any, Any, list[SliverResult]]:
    """The driver call for `action`: geni_update_users is the driver's `update_users`."""
    if action is Action.UPDATE_USERS:
        return driver.update_users(slivers, users)
    return driver.perform_action(slivers, action, users)


def _acted(sliver: Sliver, result: SliverResult, action: Action,
           users: Sequence[UserKeys]) -> Sliver:
    changes: dict[str, Any] = {"operational": result.operational or final_state(action),
                               "error": ""}
    if action is Action.UPDATE_USERS:
        changes["users"] = tuple(users)
    return sliver.with_changes(**changes)




def _errors(results: Sequence[SliverResult]) -> str:
    return "; ".join(f"{r.sliver_urn}: {r.error}" for r in results[:10])


__all__ = ["AggregateManagerV3", "SfaError"]
