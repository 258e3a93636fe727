"""The node-manager Driver: tickets signed and redeemed at the nodes at Provision.

Every operation fans out to the slivers' node managers through a `NodeClient` (bounded
parallelism, per-node timeout) and answers per sliver. A node that does not answer is marked
down in the inventory (so the advertisement and the mapper stop offering it) and its sliver
gets the error; the health check (`check_health`) marks it up again when it answers.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.timeutil import format_rfc3339, utcnow
from sfa.trust.gid import GID
from sfa.trust.keys import (
    generate_private_key,
    load_private_key,
    private_key_to_pem,
    public_key_to_openssh,
)
from sfa.trust.slicekey import seal_slice_key
from sfa.trust.ticket import TicketResources, TicketSpec, TicketUser, create_tickets

from .driver import HealthReport, Inventory, ReconcileReport, SliverResult
from .inventory import Node
from .nm_book import NodeManagerBook, StoredTicket
from .nm_client import NodeCall, NodeClient, NodeReply
from .slivers import Action, OperationalState, Sliver, UserKeys
from .store import AggregateStore

# PlanetLab 3.0 per-sliver defaults
DEFAULT_RESOURCES = TicketResources(cpu_share=32, memory_mb=128, disk_mb=5120, tasks=256,
                                    bandwidth_kbps=1)
NODE_STATES = {
    "creating": OperationalState.CONFIGURING,
    "ready": OperationalState.NOTREADY,
    "stopped": OperationalState.NOTREADY,
    "started": OperationalState.READY,
    "failed": OperationalState.FAILED,
}
Calls = dict[str, tuple[str, tuple[Any, ...]]]  # sliver URN -> method, params
SIGNING_CHUNK = 64  # tickets signed as one batch (one signature) before they go out
MAX_KEPT_SLICE_KEYS = 1024  # parsed slice keys kept in memory (the oldest go first)
ACTION_METHODS = {Action.START: "StartSliver", Action.STOP: "StopSliver",
                  Action.RESTART: "RestartSliver"}


@dataclass
class NodeManagerDriver:
    """A Driver over node managers; `signer`/`key` are the aggregate's GID and key."""

    store: AggregateStore
    book: NodeManagerBook
    client: NodeClient
    signer: GID
    key: rsa.RSAPrivateKey = field(repr=False)
    resources: TicketResources = DEFAULT_RESOURCES
    clock: Callable[[], datetime] = utcnow
    # slice URN -> its key PEM, the key and its OpenSSH public form (parsed once per slice)
    _keys: dict[str, tuple[str, rsa.RSAPrivateKey, str]] = field(
        default_factory=dict, init=False, repr=False)

    # --- the Driver protocol ------------------------------------------------------------------

    async def start(self, inventory: Inventory) -> None:
        """Nothing to start: node managers are reached per call (see `reconcile`)."""

    async def stop(self) -> None:
        """Drop the client's kept-alive connections."""
        await self.client.close()

    async def nodes(self) -> list[Node]:
        """The inventory's nodes that have a node manager (`sfa init --nodes` made both)."""
        managers = self.book.managers()
        return [n for n in self.store.nodes() if n.urn in managers]

    async def reconcile(self) -> ReconcileReport:
        """Compare the records with what each node manager holds (after a crash)."""
        from .reconcile import Reconciler  # noqa: PLC0415 - reconcile imports this module

        return await Reconciler.of(self).run()

    async def allocate(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        """Check that every sliver can get a ticket and make the slice's key pair.

        Nothing is signed yet: Provision fixes the users and the lease end, which a ticket
        carries, so a ticket signed now would be signed again there.
        """
        errors = await self.client.in_thread(self._prepare, list(slivers))
        return [SliverResult(s.urn, OperationalState.PENDING_ALLOCATION, errors.get(s.urn, ""))
                for s in slivers]

    async def provision(
        self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
    ) -> list[SliverResult]:
        """Redeem each sliver's ticket at its node (a sent ticket is retried, never replaced).

        Tickets are signed in chunks, each chunk's new tickets under one batch signature; a
        chunk goes out while the next one is signed, so the nodes work while the aggregate
        signs.
        """
        chosen = [s.with_changes(users=tuple(users)) for s in slivers]
        errors: dict[str, str] = {}
        sending: list[tuple[list[tuple[str, NodeCall]], Awaitable[list[NodeReply]]]] = []
        missing: dict[str, NodeReply] = {}
        for start in range(0, len(chosen), SIGNING_CHUNK):
            chunk = chosen[start:start + SIGNING_CHUNK]
            chunk_errors, tickets = await self.client.in_thread(self._issue_for_provision, chunk)
            errors.update(chunk_errors)
            calls: Calls = {s.urn: ("RedeemTicket", (tickets[s.urn].ticket,
                                                     {"slice_key": tickets[s.urn].slice_key}))
                            for s in chunk if s.urn not in chunk_errors}
            batch, absent = self._batch(chunk, calls)
            missing.update(absent)
            if batch:
                sending.append((batch, self.client.call_many([c for _, c in batch])))
        replies = dict(missing)
        for batch, pending in sending:
            replies.update(await self._collect(batch, await pending))
        results = []
        for sliver in chosen:
            reply = replies.get(sliver.urn)
            if reply is None:
                results.append(SliverResult(sliver.urn, None, errors.get(sliver.urn, "")))
            elif reply.ok:
                login = reply.value.get("login", "") if isinstance(reply.value, dict) else ""
                results.append(SliverResult(sliver.urn, OperationalState.NOTREADY,
                                            login_user=login))
            else:
                results.append(SliverResult(sliver.urn, None, reply.error))
        return results

    async def perform_action(
        self, slivers: Sequence[Sliver], action: Action, users: Sequence[UserKeys]
    ) -> list[SliverResult]:
        if action is Action.UPDATE_USERS:
            return await self.update_users(slivers, users)
        method = ACTION_METHODS[action]
        calls: Calls = {s.urn: (method, (s.urn, [])) for s in slivers}
        return _state_results(slivers, await self._fan_out(slivers, calls))

    async def status(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        calls: Calls = {s.urn: ("SliverStatus", (s.urn, [])) for s in slivers}
        return _state_results(slivers, await self._fan_out(slivers, calls))

    async def renew(self, slivers: Sequence[Sliver], expires: datetime) -> list[SliverResult]:
        """Send each node a renewal: a new ticket for the same sliver with the later expiry."""
        renewals = await self.client.in_thread(self._renewals, list(slivers), expires)
        calls: Calls = {urn: ("RenewLease", (urn, ticket)) for urn, ticket in renewals.items()}
        replies = await self._fan_out(slivers, calls)
        return [SliverResult(s.urn, None, _error(replies.get(s.urn), "no ticket to renew"))
                for s in slivers]

    async def delete(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        """Revoke the slivers' tickets at their nodes, which destroy what the tickets made.

        The revocations are stored first and stay pending until the node answers: a node that
        is down is told later (`deliver_revocations`, run periodically), so its sliver is
        deleted here now and there once it is back, and the ticket can never be redeemed.
        """
        revoked = await self.client.in_thread(
            partial(self.book.revoke_tickets, forget=False), [s.urn for s in slivers])
        calls: Calls = {urn: ("RevokeTickets", ([r.to_wire()],)) for urn, r in revoked.items()}
        replies = await self._fan_out(slivers, calls)
        answered = [revoked[urn].serial for urn, reply in replies.items()
                    if reply.reachable and urn in revoked]
        await self.client.in_thread(self.book.settle_revocations, answered)
        return [SliverResult(s.urn, None, _refusal(replies.get(s.urn))) for s in slivers]

    async def update_users(
        self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
    ) -> list[SliverResult]:
        wire = [{"urn": u.urn, "keys": list(u.keys)} for u in users]
        calls: Calls = {s.urn: ("UpdateKeys", (s.urn, wire, [])) for s in slivers}
        return _state_results(slivers, await self._fan_out(slivers, calls))

    # --- beyond the protocol ------------------------------------------------------------------

    async def check_health(self) -> HealthReport:
        """GetVersion at every node manager; record liveness and load (used capacity share)."""
        managers = self.book.managers()
        calls = [NodeCall(urn, entry.url, "GetVersion", ()) for urn, entry in managers.items()]
        replies = await self.client.call_many(calls) if calls else []
        observed = [(call.node_urn, reply.ok, _load(reply.value) if reply.ok else 1.0)
                    for call, reply in zip(calls, replies, strict=True)]
        changed = await self.client.in_thread(self.store.set_liveness_many, observed,
                                              self.clock())
        enforced = [(call.node_urn, knobs) for call, reply in zip(calls, replies, strict=True)
                    if reply.ok and (knobs := _enforced(reply.value)) is not None]
        if enforced:
            await self.client.in_thread(self.store.set_enforcement_many, enforced)
        return HealthReport(tuple(u for u, ok, _ in observed if ok),
                            tuple(u for u, ok, _ in observed if not ok), changed)

    def tickets_for(self, slivers: Sequence[Sliver]) -> list[dict[str, str]]:
        """Describe's `sfa_tickets`: what a user needs to redeem each sliver themselves."""
        managers = self.book.managers()
        tickets = self.book.tickets([s.urn for s in slivers])
        return [
            {"node_urn": t.node_urn, "sliver_urn": t.sliver_urn,
             "url": managers[t.node_urn].url if t.node_urn in managers else "",
             "ticket": t.ticket, "slice_key": t.slice_key}
            for t in (tickets[s.urn] for s in slivers if s.urn in tickets)
        ]

    # --- internals ----------------------------------------------------------------------------

    async def _fan_out(self, slivers: Sequence[Sliver],
                       calls: Calls) -> dict[str, NodeReply]:
        """Send `calls` (sliver URN -> method, params) to the slivers' nodes; mark the nodes
        that did not answer down."""
        batch, missing = self._batch(slivers, calls)
        replies = await self.client.call_many([c for _, c in batch]) if batch else []
        return {**missing, **await self._collect(batch, replies)}

    def _batch(self, slivers: Sequence[Sliver], calls: Calls
               ) -> tuple[list[tuple[str, NodeCall]], dict[str, NodeReply]]:
        """The NodeCalls of `calls` by sliver URN, and replies for nodes with no manager."""
        managers = self.book.managers()
        batch: list[tuple[str, NodeCall]] = []
        missing: dict[str, NodeReply] = {}
        for sliver in slivers:
            if sliver.urn not in calls:
                continue
            entry = managers.get(sliver.node_urn)
            if entry is None:
                missing[sliver.urn] = NodeReply(code=12, message=f"no node manager is known "
                                                f"for {sliver.node_urn}")
                continue
            method, params = calls[sliver.urn]
            batch.append((sliver.urn, NodeCall(sliver.node_urn, entry.url, method, params)))
        return batch, missing

    async def _collect(self, batch: list[tuple[str, NodeCall]], replies: Sequence[NodeReply]
                       ) -> dict[str, NodeReply]:
        """Replies by sliver URN; the nodes that did not answer are marked down."""
        down = {call.node_urn for (_, call), reply in zip(batch, replies, strict=True)
                if not reply.reachable}
        if down:
            await self.client.in_thread(self._mark_down, down)
        return {urn: reply for (urn, _), reply in zip(batch, replies, strict=True)}

    def _mark_down(self, node_urns: set[str]) -> None:
        loads = {n.urn: n.load for n in self.store.nodes() if n.urn in node_urns}
        self.store.set_liveness_many([(u, False, loads.get(u, 0.0)) for u in node_urns],
                                     self.clock())

    def _prepare(self, slivers: list[Sliver]) -> dict[str, str]:
        """Allocate's checks: sliver URN -> why it cannot get a ticket; the slices' keys made.

        A sliver allocated again (Provision's rollback) loses its old ticket, revoked at its
        node (the next delivery of revocations); Provision signs a new one.
        """
        self.book.revoke_tickets([s.urn for s in slivers], forget=True)
        errors: dict[str, str] = {}
        slice_gids: dict[str, str | None] = {}
        for sliver in slivers:
            if sliver.slice_urn not in slice_gids:
                slice_gids[sliver.slice_urn] = self.store.slice_gid(sliver.slice_urn)
                if slice_gids[sliver.slice_urn]:
                    self._slice_key(sliver.slice_urn)
            error = _unticketable(sliver, self.book.node_gid(sliver.node_urn),
                                  slice_gids[sliver.slice_urn])
            if error:
                errors[sliver.urn] = error
        return errors

    def _issue_for_provision(self, slivers: list[Sliver]
                             ) -> tuple[dict[str, str], dict[str, StoredTicket]]:
        """Sign and store tickets where needed and mark them sent (before any goes out).

        A ticket that was sent is kept (a retry redeems it again); an unsent one is signed
        again only when its terms changed. Returns sliver URN -> why it got no ticket, and
        sliver URN -> the ticket to send (as stored).
        """
        stored = self.book.tickets([s.urn for s in slivers])
        wanted: list[tuple[Sliver, dict[str, Any]]] = []
        for sliver in slivers:
            terms = _terms(sliver)
            old = stored.get(sliver.urn)
            if old is None or not (old.sent or old.terms == terms):
                wanted.append((sliver, terms))
        fresh, errors = self._sign(wanted)
        sent = [s.urn for s in slivers if s.urn not in errors]
        if fresh or sent:
            self.book.put_tickets(fresh, sent=sent)
        tickets = {**stored, **{t.sliver_urn: t for t in fresh}}
        return errors, {urn: tickets[urn] for urn in sent}

    def _slice_key(self, slice_urn: str) -> tuple[rsa.RSAPrivateKey, str]:
        """The slice's key pair (made at its first Allocate) and its OpenSSH public key.

        Parsed once per slice and key text: a key made here is kept as made (loading it back
        would run OpenSSL's RSA check on a key this process generated)."""
        pem = self.book.slice_key(slice_urn)
        made: tuple[str, rsa.RSAPrivateKey] | None = None
        if pem is None:
            new = generate_private_key()
            made = private_key_to_pem(new).decode(), new
            pem = self.book.add_slice_key(slice_urn, made[0])  # another thread's may win
        kept = self._keys.get(slice_urn)
        if kept is not None and kept[0] == pem:
            return kept[1], kept[2]
        key = made[1] if made is not None and made[0] == pem else load_private_key(pem)
        if len(self._keys) >= MAX_KEPT_SLICE_KEYS:
            self._keys.pop(next(iter(self._keys)))
        self._keys[slice_urn] = pem, key, public_key_to_openssh(key.public_key())
        return key, self._keys[slice_urn][2]

    def _sign(self, wanted: list[tuple[Sliver, dict[str, Any]]]
              ) -> tuple[list[StoredTicket], dict[str, str]]:
        """Tickets for `wanted` (sliver, terms), SIGNING_CHUNK of them per batch signature,
        each with the slice key sealed for its node; sliver URN -> why it got none."""
        errors: dict[str, str] = {}
        slice_keys: dict[str, tuple[rsa.RSAPrivateKey, str]] = {}  # key, its OpenSSH public
        slice_gids: dict[str, GID | None] = {}
        ready: list[tuple[Sliver, dict[str, Any], GID, TicketSpec]] = []
        for sliver, terms in wanted:
            node_gid = self.book.node_gid(sliver.node_urn)
            if sliver.slice_urn not in slice_gids:
                pem = self.store.slice_gid(sliver.slice_urn)
                slice_gids[sliver.slice_urn] = GID.from_pem(pem) if pem else None
            slice_gid = slice_gids[sliver.slice_urn]
            if node_gid is None or slice_gid is None:
                errors[sliver.urn] = _unticketable(sliver, node_gid, None)
                continue
            if sliver.slice_urn not in slice_keys:
                slice_keys[sliver.slice_urn] = self._slice_key(sliver.slice_urn)
            spec = self._ticket_spec(sliver, slice_gid, slice_keys[sliver.slice_urn][1])
            ready.append((sliver, terms, node_gid, spec))
        signed: list[StoredTicket] = []
        for start in range(0, len(ready), SIGNING_CHUNK):
            chunk = ready[start:start + SIGNING_CHUNK]
            documents = create_tickets([spec for *_, spec in chunk], signer_key=self.key,
                                       signer=self.signer)
            for (sliver, terms, node_gid, spec), document in zip(chunk, documents, strict=True):
                sealed = seal_slice_key(slice_keys[sliver.slice_urn][0], node_gid.public_key,
                                        sliver.urn)
                signed.append(StoredTicket(sliver.urn, sliver.node_urn, spec.serial or "",
                                           document, sealed, terms))
        return signed, errors

    def _ticket_spec(self, sliver: Sliver, slice_gid: GID, slice_public: str) -> TicketSpec:
        return TicketSpec(
            slice_gid=slice_gid, node_urn=sliver.node_urn, sliver_urn=sliver.urn,
            expires=sliver.expires, resources=self.resources,
            users=[TicketUser(u.urn, tuple(u.keys)) for u in sliver.users],
            slice_keypair_public=slice_public, initscript=sliver.initscript,
            serial=str(uuid.uuid4()))

    def _renewals(self, slivers: list[Sliver], expires: datetime) -> dict[str, str]:
        renewed = [sliver.with_changes(expires=expires) for sliver in slivers]
        signed, _ = self._sign([(sliver, _terms(sliver)) for sliver in renewed])
        return {ticket.sliver_urn: ticket.ticket for ticket in signed}


def _unticketable(sliver: Sliver, node_gid: GID | None, slice_gid: str | None) -> str:
    """Why `sliver` cannot get a ticket ('' when it can)."""
    if node_gid is None:
        return f"no node manager is known for {sliver.node_urn}"
    if not slice_gid:
        return f"the aggregate lacks the GID of {sliver.slice_urn}"
    return ""


def _terms(sliver: Sliver) -> dict[str, Any]:
    return {"expires": format_rfc3339(sliver.expires), "initscript": sliver.initscript,
            "users": [[u.urn, list(u.keys)] for u in sliver.users]}


def _error(reply: NodeReply | None, absent: str) -> str:
    return absent if reply is None else reply.error


def _refusal(reply: NodeReply | None) -> str:
    """A node's refusal ('' when it did it, or did not answer: then it is told later)."""
    return "" if reply is None or not reply.reachable else reply.error


def _state_results(slivers: Sequence[Sliver], replies: dict[str, NodeReply]
                   ) -> list[SliverResult]:
    results = []
    for sliver in slivers:
        reply = replies.get(sliver.urn)
        if reply is None or not reply.ok:
            results.append(SliverResult(sliver.urn, None, _error(reply, "not sent")))
            continue
        value = reply.value if isinstance(reply.value, dict) else {}
        usage = value.get("usage")
        results.append(SliverResult(sliver.urn, NODE_STATES.get(value.get("state", "")),
                                    usage=_counters(usage)))
    return results


def _enforced(version: Any) -> tuple[str, ...] | None:
    """The knobs a node manager's GetVersion says it enforces (None when it does not say)."""
    report = version.get("enforcement") if isinstance(version, dict) else None
    enforced = report.get("enforced") if isinstance(report, dict) else None
    if not isinstance(enforced, dict):
        return None
    return tuple(sorted(k for k in enforced if isinstance(k, str) and k.isidentifier()))


def _counters(usage: Any) -> dict[str, int] | None:
    """A node's usage report as name -> whole number (counts past 32 bits come as doubles)."""
    if not isinstance(usage, dict):
        return None
    return {str(k): int(v) for k, v in usage.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def _load(version: Any) -> float:
    """The share of a node's declared capacity in use (0 idle .. 1 full), from GetVersion."""
    if not isinstance(version, dict):
        return 1.0
    capacity, free = version.get("capacity") or {}, version.get("free") or {}
    shares = [1.0 - float(free.get(k, 0)) / float(v)
              for k, v in capacity.items() if isinstance(v, int | float) and v > 0]
    return round(max(shares, default=0.0), 3)


__all__ = ["HealthReport", "NodeManagerDriver", "format_rfc3339"]
