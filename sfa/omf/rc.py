"""The Resource Controller's logic: verify each command, act, answer with signed informs.

Transport-free: `sfa.omf.xmpp` hands it (topic, text) items and gives it a `Pubsub` to
subscribe and publish with. Commands (EC -> RC), each a signed `Message`:

    hello      on the RC's resource node: chain + credential; the RC learns the user's key
    join       {experiment, group, index}: subscribe to /OMF/<slice>/<experiment>/<group>
    configure  {properties}: on a group node; variables for the group's later apps
    exec       {app, command, env, timeout}: on a group node; start the app
    leave      {experiment}: stop its apps, unsubscribe its groups

Informs (RC -> EC, on the RC's resource node, signed with the sliver's key) carry `re` (the
command's seq), `node`, and `event`: hello, joined, configured, started, exited (exit_code,
stdout, stderr), left, error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.errors import BadArgs, SfaError
from sfa.omf.apps import AppResult, run_app
from sfa.omf.messages import (
    HELLO,
    INFORM,
    Message,
    SenderBook,
    SequenceNumbers,
    parse_message,
    sign_message,
)
from sfa.omf.tree import check_label, group_node, resource_node
from sfa.timeutil import utcnow

log = logging.getLogger("sfa.omf.rc")
MAX_APP_SECONDS = 24 * 3600


class Pubsub(Protocol):
    async def subscribe(self, node: str) -> None: ...

    async def unsubscribe(self, node: str) -> None: ...

    async def publish(self, node: str, text: str) -> None: ...


@dataclass
class _Group:
    experiment: str
    name: str
    index: int
    properties: dict[str, str] = field(default_factory=dict)


class ResourceController:
    """One sliver's RC."""

    def __init__(self, slice_hrn: str, node_hrn: str, *, senders: SenderBook,
                 key: rsa.RSAPrivateKey, pubsub: Pubsub, workdir: Path) -> None:
        self.slice_hrn = slice_hrn
        self.node_hrn = node_hrn
        self.topic = resource_node(slice_hrn, node_hrn)
        self.senders = senders
        self.key = key
        self.pubsub = pubsub
        self.workdir = workdir
        self.refusals: list[str] = []
        self._seq = SequenceNumbers()
        self._groups: dict[str, _Group] = {}  # group node -> membership
        self._apps: dict[tuple[str, str], asyncio.Task[None]] = {}  # (experiment, app)

    async def start(self) -> None:
        await self.pubsub.subscribe(self.topic)

    async def on_item(self, topic: str, text: str) -> None:
        """One item published on a node this RC follows."""
        try:
            if parse_message(text).message.kind == INFORM:
                return  # an RC's own (or a sibling's) answer, not a command
            message = self.senders.accept(text, topic)
            if topic != self.topic and topic not in self._groups:
                raise BadArgs(f"{topic} is not a node this RC joined")
            await self._dispatch(message)
        except SfaError as error:
            self.refusals.append(str(error))
            log.warning("refused a message on %s: %s", topic, error)

    async def _dispatch(self, message: Message) -> None:
        body = message.body
        if message.kind == HELLO:
            log.info("accepted hello from %s", message.sender)
            await self._inform(message, "hello")
        elif message.kind == "join":
            await self._join(message, body)
        elif message.kind == "configure":
            group = self._group(message.topic)
            group.properties.update({str(k): str(v) for k, v in _mapping(body, "properties")})
            await self._inform(message, "configured")
        elif message.kind == "exec":
            self._exec(message, self._group(message.topic), body)
        elif message.kind == "leave":
            await self._leave(message, check_label(str(body.get("experiment")), "experiment"))
        else:
            raise BadArgs(f"unknown command {message.kind[:40]!r}")

    def _group(self, topic: str) -> _Group:
        if topic not in self._groups:
            raise BadArgs(f"configure and exec go to a group node this RC joined, not {topic}")
        return self._groups[topic]

    async def _join(self, message: Message, body: Mapping[str, Any]) -> None:
        experiment = check_label(str(body.get("experiment")), "experiment id")
        name = check_label(str(body.get("group")), "group name")
        index = body.get("index", 0)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise BadArgs("join: index must be a non-negative integer")
        node = group_node(self.slice_hrn, experiment, name)
        self._groups[node] = _Group(experiment, name, index)
        await self.pubsub.subscribe(node)
        log.info("joined %s", node)
        await self._inform(message, "joined", group=node)

    def _exec(self, message: Message, group: _Group, body: Mapping[str, Any]) -> None:
        app = check_label(str(body.get("app")), "app name")
        command = body.get("command")
        if not isinstance(command, list) or not command or not all(
                isinstance(c, str) for c in command):
            raise BadArgs("exec: command must be a non-empty list of strings")
        timeout = body.get("timeout", 3600)
        if not isinstance(timeout, int | float) or not 0 < timeout <= MAX_APP_SECONDS:
            raise BadArgs("exec: timeout out of range")
        env = {"OMF_SLICE": self.slice_hrn, "OMF_NODE": self.node_hrn,
               "OMF_GROUP": group.name, "OMF_INDEX": str(group.index),
               "OMF_EXPERIMENT": group.experiment, **group.properties,
               **{str(k): str(v) for k, v in _mapping(body, "env")}}
        key = (group.experiment, app)
        if key in self._apps and not self._apps[key].done():
            raise BadArgs(f"app {app} of {group.experiment} is already running")
        self._apps[key] = asyncio.ensure_future(
            self._run(message, app, [str(c) for c in command], env, float(timeout)))

    async def _run(self, message: Message, app: str, command: list[str], env: dict[str, str],
                   timeout: float) -> None:
        async def started(pid: int) -> None:
            await self._inform(message, "started", app=app, pid=pid)

        log.info("starting %s: %s", app, command)
        result: AppResult = await run_app(app, command, env, self.workdir, on_started=started,
                                          timeout=timeout)
        await self._inform(message, "exited", app=app, exit_code=result.exit_code,
                           stdout=result.stdout, stderr=result.stderr,
                           seconds=round(result.seconds, 3), truncated=result.truncated)

    async def _leave(self, message: Message, experiment: str) -> None:
        for (exp, _app), task in list(self._apps.items()):
            if exp == experiment:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for node, group in list(self._groups.items()):
            if group.experiment == experiment:
                del self._groups[node]
                await self.pubsub.unsubscribe(node)
        await self._inform(message, "left", experiment=experiment)

    async def _inform(self, to: Message, event: str, **fields: Any) -> None:
        reply = Message(kind=INFORM, sender=self.topic, slice_hrn=self.slice_hrn,
                        topic=self.topic, seq=self._seq.next(), issued=utcnow(),
                        body={"re": to.seq, "node": self.node_hrn, "event": event, **fields})
        await self.pubsub.publish(self.topic, sign_message(reply, self.key))

    async def stop(self) -> None:
        """Stop every running app."""
        for task in self._apps.values():
            task.cancel()
        for task in self._apps.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _mapping(body: Mapping[str, Any], key: str) -> list[tuple[str, Any]]:
    value = body.get(key, {})
    if not isinstance(value, dict):
        raise BadArgs(f"{key} must be an object")
    return list(value.items())
