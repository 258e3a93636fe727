"""Aggregate commands of sfi: version, resources, describe, allocate, provision,
start/stop/restart, status, renew, delete, shutdown — on one or several aggregates in
parallel, with a result line per node."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sfa.client.amclient import AmClient
from sfa.client.config import SLICEMGR_NICK
from sfa.client.output import Output
from sfa.client.session import Session
from sfa.client.state import SliceState, SliceStates
from sfa.errors import BadArgs
from sfa.rpc.transport import Outcome, fan_out
from sfa.rspecs.reader import read_rspec

R = TypeVar("R")
ACTIONS = {"start": "geni_start", "stop": "geni_stop", "restart": "geni_restart"}
def select(session: Session, nicks: Sequence[str], version: int | None = None
           ) -> list[AmClient]:
    """The aggregates named with -a (default: every configured one; the slice manager when
    it is the only one)."""
    known = session.config.all_aggregates()
    if not known:
        raise BadArgs("no aggregates configured; add one with `sfi config --aggregate "
                      "NICK=https://host:port/`")
    if not nicks:
        nicks = [n for n in known if n != SLICEMGR_NICK] or [SLICEMGR_NICK]
    unknown = [n for n in nicks if n not in known]
    if unknown:
        raise BadArgs(f"unknown aggregate(s) {unknown}; configured: {sorted(known)}")
    return [AmClient.open(session, nick, known[nick], version) for nick in dict.fromkeys(nicks)]


def on_each(session: Session, out: Output, clients: Sequence[AmClient],
            call: Callable[[AmClient], R]) -> list[tuple[AmClient, R]]:
    """Run `call` on every aggregate in parallel; report failing aggregates; the successes."""
    outcomes: list[Outcome[AmClient, R]] = fan_out(call, clients, session.settings.parallel)
    done: list[tuple[AmClient, Any]] = []
    for outcome in outcomes:
        if outcome.error is not None:
            out.failure(outcome.item.nick, outcome.error, where=outcome.item.nick)
        else:
            done.append((outcome.item, outcome.value))
    return done


def node_label(node: Any) -> str:
    return node.component_name or node.component_id or node.client_id or "(unnamed node)"


def remember_manifest(state: SliceState, nick: str, manifest: str) -> list[Any]:
    """Note which node each sliver of a manifest is on; the manifest's nodes."""
    if not manifest.strip():
        return []
    nodes = read_rspec(manifest).nodes
    for node in nodes:
        if node.sliver_id:
            state.remember_sliver(node.sliver_id, node_label(node), nick)
    return nodes


def report_slivers(out: Output, state: SliceState, nick: str,
                   slivers: Sequence[dict[str, Any]]) -> None:
    for sliver in slivers:
        out.result(state.node_of(str(sliver.get("geni_sliver_urn", ""))),
                   str(sliver.get("geni_error") or ""), where=nick)


# --- commands -----------------------------------------------------------------------------


def version(session: Session, out: Output, nicks: Sequence[str], api: int | None) -> None:
    clients = select(session, nicks, api)
    done = on_each(session, out, clients, lambda c: c.get_version())
    rows = [(c.nick, info.get("urn", ""), info.get("geni_api", ""), c.entry.url)
            for c, info in done]
    out.put("aggregates", {c.nick: info for c, info in done})
    out.table(rows, ("aggregate", "urn", "geni_api", "url"))


def resources(session: Session, out: Output, nicks: Sequence[str], api: int | None, *,
              available: bool, outfile: Path | None) -> None:
    clients = select(session, nicks, api)
    done = on_each(session, out, clients, lambda c: c.list_resources(available))
    rows = []
    for client, text in done:
        for node in read_rspec(text).nodes:
            rows.append((client.nick, node.component_name or "", node.component_id or "",
                         "yes" if node.available is not False else "no"))
        if outfile is not None:
            path = outfile if len(done) == 1 else outfile.with_name(
                f"{outfile.stem}-{client.nick}{outfile.suffix}")
            path.write_text(text, encoding="utf-8")
            out.echo(f"wrote {path}")
    out.table(rows, ("aggregate", "node", "component_id", "available"), key="nodes")


def describe(session: Session, out: Output, nicks: Sequence[str], api: int | None,
             hrn: str) -> None:
    states = SliceStates(session.config.slices_dir)
    state = states.load(hrn)
    done = on_each(session, out, select(session, nicks, api), lambda c: c.describe(hrn))
    rows = []
    for client, value in done:
        status = {s.get("geni_sliver_urn"): s for s in value.get("geni_slivers", [])}
        for node in remember_manifest(state, client.nick, value["geni_rspec"]):
            sliver = status.get(node.sliver_id, {})
            rows.append((client.nick, node_label(node), node.client_id or "",
                         node.sliver_id or "", sliver.get("geni_operational_status", "")))
    states.save(state)
    out.table(rows, ("aggregate", "node", "client_id", "sliver", "state"), key="slivers")


def allocate(session: Session, out: Output, clients: Sequence[AmClient], hrn: str,
             parts: dict[str, str]) -> None:
    """Allocate each aggregate's part of the request (see slicewide.split_request)."""
    states = SliceStates(session.config.slices_dir)
    state = states.load(hrn)
    clients = [c for c in clients if c.nick in parts]
    done = on_each(session, out, clients, lambda c: c.allocate(hrn, parts[c.nick]))
    for client, value in done:
        remember_manifest(state, client.nick, value.get("geni_rspec", ""))
        report_slivers(out, state, client.nick, value.get("geni_slivers", []))
    states.save(state)


def sliver_command(session: Session, out: Output, nicks: Sequence[str], api: int | None, *,
                   hrn: str, call: Callable[[AmClient], Any]) -> None:
    """A call answering sliver statuses (provision, actions, renew, delete): per-node lines."""
    states = SliceStates(session.config.slices_dir)
    state = states.load(hrn)
    done = on_each(session, out, select(session, nicks, api), call)
    for client, value in done:
        slivers = value
        if isinstance(value, dict):  # Provision: {geni_rspec, geni_slivers}
            remember_manifest(state, client.nick, value.get("geni_rspec", ""))
            slivers = value.get("geni_slivers", [])
        report_slivers(out, state, client.nick, slivers)
        if not slivers:
            out.result(client.nick, where=client.nick)
    states.save(state)


def status(session: Session, out: Output, nicks: Sequence[str], api: int | None,
           hrn: str) -> None:
    state = SliceStates(session.config.slices_dir).load(hrn)
    done = on_each(session, out, select(session, nicks, api), lambda c: c.status(hrn))
    rows = [(client.nick, state.node_of(s.get("geni_sliver_urn", "")),
             s.get("geni_allocation_status", ""), s.get("geni_operational_status", ""),
             s.get("geni_expires", ""), s.get("geni_error", ""))
            for client, slivers in done for s in slivers]
    out.table(rows, ("aggregate", "node", "allocation", "state", "expires", "error"),
              key="slivers")


def shutdown(session: Session, out: Output, nicks: Sequence[str], api: int | None,
             hrn: str) -> None:
    for client, _ in on_each(session, out, select(session, nicks, api),
                             lambda c: c.shutdown(hrn)):
        out.result(client.nick, where=client.nick)
