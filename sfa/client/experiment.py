"""`sfi exp run`: ask the aggregate for an XMPP session and the experiment's groups, run the
experiment description with the EC, print informs as they arrive, save the outputs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sfa.client.aggregate import on_each, select
from sfa.client.amclient import AmClient, slice_urn
from sfa.client.output import Output
from sfa.client.session import Session
from sfa.omf.config import XmppLogin, XmppServer
from sfa.omf.ec import ExperimentController, ExperimentRun, UserIdentity
from sfa.omf.experiment import Experiment
from sfa.omf.xmpp import PubsubClient
from sfa.timeutil import utcnow
from sfa.trust.keys import load_public_key


def enable_omf(session: Session, out: Output, nicks: Sequence[str], hrn: str) -> None:
    """OMFEnableSlice on each aggregate: one result per node, and per sliver whose RC did
    not start."""
    done = on_each(session, out, select(session, nicks), lambda c: c.call(
        "OMFEnableSlice", slice_urn(hrn), c.slice_credentials(hrn), {}))
    for client, value in done:
        for node in value.get("nodes", []):
            out.result(node, where=client.nick)
        for sliver, error in (value.get("errors") or {}).items():
            out.result(sliver, f"its RC did not start: {error}", "RC_NOT_STARTED", client.nick)


def experiment_id(experiment: Experiment) -> str:
    return f"{experiment.name}-{utcnow().strftime('%Y%m%dT%H%M%S%f')}"


def run_experiment(session: Session, out: Output, client: AmClient, experiment: Experiment,
                   outdir: Path | None) -> ExperimentRun:
    """The whole run; the experiment's groups are removed at the aggregate afterwards."""
    urn = slice_urn(experiment.slice_hrn)
    creds = client.slice_credentials(experiment.slice_hrn)
    info = client.call("OMFSession", urn, creds, {})
    exp_id = experiment_id(experiment)
    client.call("OMFCreateExperiment", urn, creds,
                {"experiment": exp_id, "groups": list(experiment.groups)})
    out.echo(f"experiment {exp_id} on {experiment.slice_hrn}: "
             f"{len(experiment.nodes)} resources, {len(experiment.steps)} steps")
    user = UserIdentity(session.gid.urn, session.key, session.gid.to_pem(include_chain=True),
                        session.credential_object(experiment.slice_hrn, "slice").xml)
    server = XmppServer(str(info["host"]), int(info["port"]), str(info["domain"]),
                        str(info["pubsub"]))
    login = XmppLogin(server, None, str(info["account"]), str(info["password"]),
                      ca_pem=session.roots_pem())
    rc_key = load_public_key(str(info["rc_public_key"]))
    try:
        run = asyncio.run(_run(experiment, exp_id, user, login, rc_keys=
                               {n: rc_key for n in experiment.nodes}, on_event=_printer(out)))
    finally:
        client.call("OMFDeleteExperiment", urn, creds, {"experiment": exp_id})
    if outdir is not None:
        save_run(run, outdir)
    return run


async def _run(experiment: Experiment, exp_id: str, user: UserIdentity, login: XmppLogin, *,
               rc_keys: dict[str, Any], on_event: Callable[[dict[str, Any]], None]
               ) -> ExperimentRun:
    pubsub = PubsubClient(login)
    ec = ExperimentController(experiment, exp_id, user, pubsub=pubsub, rc_keys=rc_keys,
                              on_event=on_event)
    pubsub.on_item = ec.on_item
    await pubsub.connect()
    try:
        return await ec.run()
    finally:
        await pubsub.close()


def _printer(out: Output) -> Callable[[dict[str, Any]], None]:
    def show(event: dict[str, Any]) -> None:
        node, kind = event.get("node", "?"), event.get("event", "?")
        app = f" {event['app']}" if event.get("app") else ""
        line = f"{node}: {kind}{app}"
        if kind == "exited":
            line += f" (exit {event.get('exit_code')}, {event.get('seconds')} s)"
            for stream in ("stdout", "stderr"):
                for text in str(event.get(stream) or "").splitlines()[:20]:
                    line += f"\n  {stream}: {text}"
        out.echo(line)

    return show


def save_run(run: ExperimentRun, outdir: Path) -> Path:
    """OUT/<exp id>/: events.jsonl, summary.json, and <node>/<app>.stdout|.stderr|.exit."""
    base = outdir / run.experiment_id
    base.mkdir(parents=True, exist_ok=True)
    with (base / "events.jsonl").open("w", encoding="utf-8") as events:
        for event in run.events:
            events.write(json.dumps(event, sort_keys=True) + "\n")
    for node, apps in run.results().items():
        nodedir = base / _safe(node)
        nodedir.mkdir(exist_ok=True)
        for app, result in apps.items():
            (nodedir / f"{_safe(app)}.stdout").write_text(result["stdout"] or "")
            (nodedir / f"{_safe(app)}.stderr").write_text(result["stderr"] or "")
            (nodedir / f"{_safe(app)}.exit").write_text(f"{result['exit_code']}\n")
    summary = {"experiment": run.experiment_id, "slice": run.slice_hrn,
               "succeeded": run.succeeded, "results": run.results(), "refused": run.refused}
    (base / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return base


def _safe(name: str) -> str:
    """A node HRN or app name as one path component (never a separator or '..')."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return cleaned if cleaned.strip(".") else "_"
