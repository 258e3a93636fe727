"""The Experiment Controller's logic: run an experiment description through the RCs.

Transport-free like the RC: it publishes and subscribes through a `Pubsub` and is handed each
item. The /OMF/<slice>/<exp id>/<group> nodes exist before `run` (the aggregate makes them on
the EC's request). The run: hello to every RC (chain + credential), join each to its groups,
configure the groups' properties, then the steps; informs are checked (`ReplyBook`), reported
as they arrive (`on_event`) and gathered into an `ExperimentRun`; at the end every RC leaves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.errors import SfaError, TimedOut
from sfa.omf.experiment import AppStep, Experiment, WaitStep
from sfa.omf.messages import HELLO, Message, ReplyBook, SequenceNumbers, sign_message
from sfa.omf.rc import Pubsub
from sfa.omf.tree import group_node, resource_node
from sfa.timeutil import utcnow

log = logging.getLogger("sfa.omf.ec")


@dataclass(frozen=True)
class UserIdentity:
    """Who drives the experiment: URN, private key, GID chain (PEM), slice credential."""

    urn: str
    key: rsa.RSAPrivateKey
    chain: str
    credential: str


@dataclass
class ExperimentRun:
    """What came back: every inform (in arrival order) and each app's end per node."""

    experiment_id: str
    slice_hrn: str
    events: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def results(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{node: {app: {exit_code, stdout, stderr, seconds}}} of the apps that exited."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for event in self.events:
            if event.get("event") == "exited":
                out.setdefault(event["node"], {})[event["app"]] = {
                    k: event.get(k) for k in ("exit_code", "stdout", "stderr", "seconds")}
        return out

    @property
    def succeeded(self) -> bool:
        codes = [app["exit_code"] for apps in self.results().values() for app in apps.values()]
        return bool(codes) and all(code == 0 for code in codes)


class ExperimentController:
    def __init__(self, experiment: Experiment, experiment_id: str, user: UserIdentity, *,
                 pubsub: Pubsub, rc_keys: Mapping[str, rsa.RSAPublicKey],
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        """`rc_keys`: node HRN -> the public key its sliver signs informs with."""
        self.experiment = experiment
        self.experiment_id = experiment_id
        self.user = user
        self.pubsub = pubsub
        self.slice_hrn = experiment.slice_hrn
        self.replies = ReplyBook({resource_node(self.slice_hrn, n): k
                                  for n, k in rc_keys.items()})
        self.on_event = on_event
        self.run_record = ExperimentRun(experiment_id, self.slice_hrn)
        self._seq = SequenceNumbers()
        self._changed = asyncio.Condition()
        self._deadline = 0.0

    async def on_item(self, topic: str, text: str) -> None:
        """An item on a resource node: keep it when it is a genuine inform."""
        try:
            message = self.replies.accept(text, topic)
        except SfaError as error:
            if '"kind":"inform"' in text:  # our own commands also appear on these nodes
                self.run_record.refused.append(str(error))
                log.warning("refused a reply on %s: %s", topic, error)
            return
        event = dict(message.body)
        async with self._changed:
            self.run_record.events.append(event)
            self._changed.notify_all()
        if self.on_event is not None:
            self.on_event(event)

    async def run(self) -> ExperimentRun:
        """Run the whole experiment (TimedOut naming who did not answer)."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self.experiment.timeout_seconds
        nodes = self.experiment.nodes
        for node in nodes:
            await self.pubsub.subscribe(resource_node(self.slice_hrn, node))
        try:
            await self._everyone(HELLO, nodes, {}, "hello", chain=True)
            await self._join_groups()
            await self._configure()
            for step in self.experiment.steps:
                await self._step(step)
        finally:
            await self._leave(nodes)
        return self.run_record

    async def _join_groups(self) -> None:
        sent = []
        for name, members in self.experiment.groups.items():
            for index, node in enumerate(members):
                body = {"experiment": self.experiment_id, "group": name, "index": index}
                seq = await self._send("join", resource_node(self.slice_hrn, node), body)
                sent.append((node, seq))
        await self._wait(partial(self._answered, sent, "joined"), "join")

    async def _configure(self) -> None:
        for name, properties in self.experiment.properties.items():
            members = self.experiment.groups[name]
            seq = await self._send("configure", self._group(name), {"properties": properties})
            sent = [(node, seq) for node in members]
            await self._wait(partial(self._answered, sent, "configured"), f"configure {name}")

    async def _step(self, step: AppStep | WaitStep) -> None:
        if isinstance(step, WaitStep):
            members = self._app_members(step.app)
            await self._wait(partial(self._apps_at, members, step.app, "exited"),
                             f"wait for {step.app}")
            return
        members = self.experiment.groups[step.group]
        body = {"app": step.app, "command": list(step.command), "env": dict(step.env),
                "timeout": self.experiment.timeout_seconds}
        await self._send("exec", self._group(step.group), body)
        if step.wait != "none":
            event = "exited" if step.wait == "exit" else "started"
            await self._wait(partial(self._apps_at, members, step.app, event, "exited"),
                             f"{step.app} {event}")

    async def _leave(self, nodes: Iterable[str]) -> None:
        for node in nodes:
            try:
                await self._send("leave", resource_node(self.slice_hrn, node),
                                 {"experiment": self.experiment_id})
            except SfaError as error:
                log.warning("could not ask %s to leave: %s", node, error)

    async def _everyone(self, kind: str, nodes: list[str], body: dict[str, Any], answer: str,
                        *, chain: bool = False) -> None:
        sent = [(node, await self._send(kind, resource_node(self.slice_hrn, node), body,
                                        chain=chain)) for node in nodes]
        await self._wait(partial(self._answered, sent, answer), kind)

    async def _send(self, kind: str, topic: str, body: Mapping[str, Any], *,
                    chain: bool = False) -> int:
        message = Message(kind=kind, sender=self.user.urn, slice_hrn=self.slice_hrn, topic=topic,
                          seq=self._seq.next(), issued=utcnow(), body=body,
                          chain=self.user.chain if chain else "",
                          credential=self.user.credential if chain else "")
        await self.pubsub.publish(topic, sign_message(message, self.user.key))
        return message.seq

    def _group(self, name: str) -> str:
        return group_node(self.slice_hrn, self.experiment_id, name)

    def _app_members(self, app: str) -> tuple[str, ...]:
        for step in self.experiment.steps:
            if isinstance(step, AppStep) and step.app == app:
                return self.experiment.groups[step.group]
        return ()

    def _answered(self, sent: list[tuple[str, int]], event: str) -> list[str]:
        """The nodes of `sent` still without their `event` inform."""
        seen = {(e.get("node"), e.get("re")) for e in self.run_record.events
                if e.get("event") == event}
        return [node for node, seq in sent if (node, seq) not in seen]

    def _apps_at(self, members: Iterable[str], app: str, *events: str) -> list[str]:
        seen = {e.get("node") for e in self.run_record.events
                if e.get("app") == app and e.get("event") in events}
        return [node for node in members if node not in seen]

    async def _wait(self, missing: Callable[[], list[str]], what: str) -> None:
        loop = asyncio.get_running_loop()
        async with self._changed:
            while left := missing():
                remaining = self._deadline - loop.time()
                if remaining <= 0:
                    raise TimedOut(f"{what}: no answer from {', '.join(left)} before the "
                                   f"experiment's {self.experiment.timeout_seconds:g} s ran out")
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    continue
