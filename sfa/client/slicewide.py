"""Slice-wide commands in the dslice tradition: createslice (split by aggregate, then
allocate + provision + start everywhere in parallel), deleteslice, addkey/delkey/nukekeys,
renewslice, nodelist, expirations, redeem (retry failed nodes from saved tickets), clean."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sfa.client.aggregate import (
    node_label,
    on_each,
    remember_manifest,
    report_slivers,
    select,
)
from sfa.client.amclient import AmClient
from sfa.client.output import Output
from sfa.client.registry import read_public_keys
from sfa.client.session import Session
from sfa.client.state import SavedTicket, SliceState, SliceStates
from sfa.errors import BadArgs, Forbidden, SfaError
from sfa.rpc.transport import AmEndpoint, client_context, fan_out, server_gid
from sfa.rspecs.reader import read_rspec
from sfa.rspecs.writer import write_rspec
from sfa.timeutil import format_rfc3339
from sfa.xrn import hrn_to_urn, urn_to_hrn

READY = "geni_ready"


def _authority_of(urn: str) -> str:
    try:
        return urn_to_hrn(urn)[0]
    except SfaError:
        return urn


def split_request(clients: Sequence[AmClient], text: str) -> dict[str, str]:
    """Each aggregate's part of a request, by component_manager_id (matched to each
    aggregate's GetVersion URN by authority). A slice manager gets the whole request."""
    if len(clients) == 1 and (clients[0].entry.slicemgr or not _bound(text)):
        return {clients[0].nick: text}
    request = read_rspec(text, expected_type="request")
    owners = {_authority_of(str(c.get_version().get("urn", ""))): c.nick for c in clients}
    groups: dict[str, list[Any]] = {}
    for node in request.nodes:
        if not node.component_manager_id:
            if len(clients) != 1:
                raise BadArgs(f"node {node.client_id!r} names no component_manager_id; "
                              "choose its aggregate with -a NICK")
            nick = clients[0].nick
        else:
            nick = owners.get(_authority_of(node.component_manager_id), "")
            if not nick:
                raise BadArgs(f"node {node.client_id!r} belongs to "
                              f"{node.component_manager_id}, which no configured aggregate "
                              f"serves (configured: {sorted(c.nick for c in clients)})")
        groups.setdefault(nick, []).append(node)
    if len(groups) == 1:
        return {next(iter(groups)): text}
    return {nick: write_rspec(replace(request, nodes=nodes, links=[]), strict=False)
            for nick, nodes in groups.items()}


def _bound(text: str) -> bool:
    return "component_manager_id" in text


def user_keys(session: Session, state: SliceState) -> list[str]:
    """The slice's keys: those set with addkey/delkey, else the user's registered keys."""
    if state.keys is not None:
        return list(state.keys)
    records = session.resolve(session.config.user)
    for record in records:
        if record.get("type") == "user":
            return list(record.get("reg-keys") or [])
    return []


def geni_users(session: Session, keys: list[str]) -> list[dict[str, Any]]:
    return [{"urn": hrn_to_urn(session.config.user, "user"), "keys": keys}]


def _where(session: Session, state: SliceState, nicks: Sequence[str]) -> list[AmClient]:
    """The aggregates to act on: -a, else those known to hold slivers, else all."""
    return select(session, nicks or sorted(state.aggregates()))


def create_slice(session: Session, out: Output, nicks: Sequence[str], hrn: str,
                 rspec_text: str) -> None:
    states = SliceStates(session.config.slices_dir)
    state = states.load(hrn)
    clients = select(session, nicks)
    parts = split_request(clients, rspec_text)
    users = geni_users(session, user_keys(session, state))
    expires = session.credential_object(hrn, "slice").expires

    def create(client: AmClient) -> tuple[str, list[dict[str, Any]]]:
        if client.version == 2:
            return client.create_sliver(hrn, parts[client.nick], users), []
        allocated = client.allocate(hrn, parts[client.nick])
        provisioned = client.provision(hrn, users)
        started = client.perform(hrn, "geni_start")
        failures = {s["geni_sliver_urn"]: s.get("geni_error", "") for s in
                    provisioned.get("geni_slivers", []) if s.get("geni_error")}
        for sliver in started:  # the root cause of a failed start is its failed provision
            urn = sliver.get("geni_sliver_urn")
            if urn in failures:
                sliver["geni_error"] = failures[urn]
        return provisioned.get("geni_rspec") or allocated.get("geni_rspec", ""), started

    chosen = [c for c in clients if c.nick in parts]
    with out.progress(len(chosen), "createslice") as advance:
        done = on_each(session, out, chosen, lambda c: _then(create(c), advance))
    for client, (manifest, slivers) in done:
        nodes = remember_manifest(state, client.nick, manifest)
        if slivers:
            report_slivers(out, state, client.nick, slivers)
        else:
            for node in nodes:
                out.result(node_label(node), where=client.nick)
    state.set_expires(expires)
    _save_tickets(session, out, state, [c for c, _ in done], hrn)
    states.save(state)


def _then(value: Any, advance: Any) -> Any:
    advance()
    return value


def _save_tickets(session: Session, out: Output, state: SliceState,
                  clients: Sequence[AmClient], hrn: str) -> None:
    """Keep the tickets Describe returns with `sfa_tickets` (aggregates without them: none)."""
    v3 = [c for c in clients if c.version == 3 and not c.entry.slicemgr]
    for client, value in on_each(session, Output(as_json=True), v3,
                                 lambda c: c.describe(hrn, {"sfa_tickets": True})):
        for item in value.get("sfa_tickets") or []:
            ticket = SavedTicket(node_urn=str(item.get("node_urn", "")),
                                 sliver_urn=str(item.get("sliver_urn", "")),
                                 url=str(item.get("url", "")), ticket=str(item.get("ticket", "")),
                                 aggregate=client.nick, slice_key=str(item.get("slice_key", "")))
            if ticket.node_urn and ticket.url and ticket.ticket:
                state.tickets[ticket.node_urn] = ticket
    out.put("tickets_saved", len(state.tickets))


def delete_slice(session: Session, out: Output, nicks: Sequence[str], hrn: str) -> None:
    states = SliceStates(session.config.slices_dir)
    state = states.load(hrn)
    done = on_each(session, out, _where(session, state, nicks), lambda c: c.delete(hrn))
    for client, slivers in done:
        report_slivers(out, state, client.nick, slivers)
        state.forget_slivers(client.nick)
    if out.failed:
        states.save(state)
    else:
        states.remove(hrn)


def change_keys(session: Session, out: Output, nicks: Sequence[str], hrn: str, *,
                add: Sequence[Path] = (), remove: Sequence[Path] = (), nuke: bool = False
                ) -> None:
    """addkey / delkey / nukekeys: change the slice's key set, push it to every sliver."""
    states = SliceStates(session.config.slices_dir)
    state = states.load(hrn)
    keys = [] if nuke else user_keys(session, state)
    for key in read_public_keys(list(add)):
        if key not in keys:
            keys.append(key)
    gone = {_key_body(k) for k in read_public_keys(list(remove))}
    missing = gone - {_key_body(k) for k in keys}
    if missing:
        raise BadArgs(f"{len(missing)} of the keys to remove are not keys of {hrn}")
    keys = [k for k in keys if _key_body(k) not in gone]
    users = geni_users(session, keys)
    done = on_each(session, out, _where(session, state, nicks),
                   lambda c: c.perform(hrn, "geni_update_users", users))
    for client, slivers in done:
        report_slivers(out, state, client.nick, slivers)
    state.keys = keys
    out.put("keys", keys)
    states.save(state)


def _key_body(key: str) -> str:
    parts = key.split()
    return parts[1] if len(parts) > 1 else key


def renew_slice(session: Session, out: Output, nicks: Sequence[str], hrn: str,
                when: datetime) -> None:
    """Extend the slice at the registry when needed, then every sliver at the aggregates."""
    states = SliceStates(session.config.slices_dir)
    state = states.load(hrn)
    if session.credential_object(hrn, "slice").expires < when:
        record = {"hrn": hrn, "type": "slice", "expires": format_rfc3339(when)}
        session.call_registry("Update", record, [session.credential(hrn, "slice")])
        session.credentials.forget(hrn, "slice")
    done = on_each(session, out, _where(session, state, nicks), lambda c: c.renew(hrn, when))
    for client, slivers in done:
        report_slivers(out, state, client.nick, slivers)
    state.set_expires(when)
    states.save(state)


def node_list(session: Session, out: Output, nicks: Sequence[str], hrn: str) -> None:
    states = SliceStates(session.config.slices_dir)
    state = states.load(hrn)
    done = on_each(session, out, _where(session, state, nicks), lambda c: c.describe(hrn))
    rows = []
    for client, value in done:
        for node in remember_manifest(state, client.nick, value["geni_rspec"]):
            logins = node.services.logins if node.services else []
            login = f"{logins[0].username}@{logins[0].hostname}:{logins[0].port}" if logins else ""
            rows.append((client.nick, node_label(node), node.component_id or "", login))
    states.save(state)
    out.table(sorted(rows), ("aggregate", "node", "component_id", "login"), key="nodes")


def expirations(session: Session, out: Output, nicks: Sequence[str], hrn: str) -> None:
    state = SliceStates(session.config.slices_dir).load(hrn)
    credential = session.credential_object(hrn, "slice")
    out.put("slice_expires", format_rfc3339(credential.expires))
    out.echo(f"slice {hrn} (credential) expires {format_rfc3339(credential.expires)}")
    done = on_each(session, out, _where(session, state, nicks), lambda c: c.status(hrn))
    rows = sorted((c.nick, state.node_of(s.get("geni_sliver_urn", "")), s.get("geni_expires", ""))
                  for c, slivers in done for s in slivers)
    out.table(rows, ("aggregate", "node", "expires"), key="slivers")


def redeem(session: Session, out: Output, hrn: str, only: Sequence[str]) -> None:
    """Redeem saved tickets at their node managers: the given nodes, else every node whose
    sliver is not ready (per Status at its aggregate)."""
    state = SliceStates(session.config.slices_dir).load(hrn)
    if not state.tickets:
        raise BadArgs(f"no saved tickets for {hrn}; they are saved by createslice from "
                      "aggregates that return sfa_tickets")
    tickets = _tickets_to_redeem(session, out, state, hrn, only)
    if not tickets:
        out.echo("every node is ready; nothing to redeem")
        return
    context = client_context(session.roots_pem(), session.identity, check_hostname=False)

    def redeem_one(ticket: SavedTicket) -> Any:
        node = server_gid(ticket.url, context, session.settings.timeout)
        if node.type != "node":
            raise Forbidden(f"{ticket.url} presents {node.urn or 'no URN'}, not a node's GID; "
                            "refusing to hand it a ticket")
        options = {"slice_key": ticket.slice_key} if ticket.slice_key else {}
        return AmEndpoint(ticket.url, context, session.settings.timeout).call(
            "RedeemTicket", ticket.ticket, options)

    with out.progress(len(tickets), "redeem") as advance:
        outcomes = fan_out(redeem_one, tickets, session.settings.parallel,
                           on_done=lambda _: advance())
    for outcome in outcomes:
        label = state.node_of(outcome.item.sliver_urn)
        if outcome.error is not None:
            out.failure(label, outcome.error, where=outcome.item.aggregate)
        else:
            out.result(label, where=outcome.item.aggregate)


def _tickets_to_redeem(session: Session, out: Output, state: SliceState, hrn: str,
                       only: Sequence[str]) -> list[SavedTicket]:
    if only:
        chosen = []
        for name in only:
            found = [t for node, t in state.tickets.items()
                     if name in (node, t.sliver_urn, state.node_of(t.sliver_urn))]
            if not found:
                raise BadArgs(f"no saved ticket for {name!r} in slice {hrn}")
            chosen += found
        return chosen
    nicks = sorted({t.aggregate for t in state.tickets.values()})
    done = on_each(session, out, select(session, nicks), lambda c: c.status(hrn))
    ready = {s.get("geni_sliver_urn") for _, slivers in done for s in slivers
             if s.get("geni_operational_status") == READY and not s.get("geni_error")}
    return [t for t in state.tickets.values() if t.sliver_urn not in ready]


def clean(session: Session, out: Output) -> None:
    """Forget local state of expired slices and expired cached credentials."""
    states = SliceStates(session.config.slices_dir)
    for state in states.all():
        if state.expired():
            states.remove(state.hrn)
            out.result(f"slice {state.hrn} (expired {state.expires})")
    for path in session.credentials.forget_expired():
        out.result(f"credential {path.name}")
