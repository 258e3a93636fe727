"""Bring the aggregate's records and its node managers back into agreement (after a crash).

The nodes are asked what they hold (ListSlivers: the slivers this aggregate issued), then the
aggregate's records are read, in that order, so that a sliver created meanwhile is never taken
for an orphan. For every node that answered:

- a sliver the node holds and the aggregate has no record of (an orphan) is deleted there;
- a sliver whose ticket went out (`sent`) and that the node holds is adopted: provisioned, with
  the lease end, users and login the node has;
- a sliver whose ticket went out but that the node lacks is redeemed again from the stored
  ticket while it is valid (an interrupted Provision is finished; a lost sliver comes back);
  a provisioned one that cannot come back is marked failed with the node's reason;
- a provisioned sliver whose node reports another operational state takes the node's state.

Before all that, the revocations the nodes have not acknowledged (tickets of slivers deleted
here while their node was down) are sent again. Nodes that do not answer are left alone (the
health check marks them down). Running it again changes nothing: it is idempotent. The server
runs it at start and every `[aggregate] reconcile_interval_seconds`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sfa.timeutil import format_rfc3339, parse_rfc3339, utcnow

from .driver import ReconcileReport
from .nm_book import NodeManagerBook, PendingRevocation, StoredTicket
from .nm_client import NodeCall, NodeClient, NodeReply
from .nm_driver import NODE_STATES, NodeManagerDriver
from .slivers import AllocationState, OperationalState, Sliver, UserKeys
from .store import AggregateStore

Listing = dict[str, dict[str, dict[str, Any]]]  # node URN -> sliver URN -> ListSlivers entry


@dataclass
class _Plan:
    """What to do, decided from the listings and the records."""

    adopt: list[tuple[Sliver, dict[str, Any], StoredTicket]] = field(default_factory=list)
    redeem: list[tuple[Sliver, StoredTicket]] = field(default_factory=list)
    fail: dict[str, tuple[Sliver, str]] = field(default_factory=dict)
    orphans: list[tuple[str, str]] = field(default_factory=list)  # (node URN, sliver URN)
    sync: list[Sliver] = field(default_factory=list)


@dataclass
class Reconciler:
    """Reconciles `store`/`book` with the node managers reached through `client`."""

    store: AggregateStore
    book: NodeManagerBook
    client: NodeClient
    clock: Callable[[], datetime] = utcnow

    @classmethod
    def of(cls, driver: NodeManagerDriver) -> Reconciler:
        return cls(driver.store, driver.book, driver.client, driver.clock)

    async def run(self) -> ReconcileReport:
        """One full pass; safe to run at any time and again."""
        revoked = await self.deliver_revocations()
        listing, skipped = await self._list_nodes()
        slivers, tickets = await self.client.in_thread(self._records)
        plan = _plan(slivers, tickets, listing, self.clock())
        redeemed, failed_late = await self._redeem(plan.redeem)
        plan.fail.update(failed_late)
        deleted = await self._delete_orphans(plan.orphans)
        adopted = [_adopted(s, entry, t) for s, entry, t in plan.adopt]
        failed = [_failed(s, reason) for s, reason in plan.fail.values()]
        read = {s.urn: s for s in slivers}
        applied = await self.client.in_thread(
            self._apply, read, [*adopted, *redeemed, *failed, *plan.sync])

        def done(changed: Sequence[Sliver]) -> tuple[str, ...]:
            return tuple(s.urn for s in changed if s.urn in applied)

        return ReconcileReport(
            adopted=done(adopted), redeemed=done(redeemed),
            failed=done(failed), orphans_deleted=tuple(deleted), synced=done(plan.sync),
            skipped_nodes=tuple(sorted(skipped)), revoked=tuple(revoked),
        )

    async def deliver_revocations(self) -> list[str]:
        """Send every pending revocation to its node (one call per node); the serials the
        nodes acknowledged, which are then forgotten. Revocations of expired tickets are
        dropped unsent."""
        now = format_rfc3339(self.clock())
        pending = await self.client.in_thread(self.book.pending_revocations, now)
        managers = self.book.managers()
        by_node: dict[str, list[PendingRevocation]] = {}
        for revocation in pending:
            if revocation.node_urn in managers:
                by_node.setdefault(revocation.node_urn, []).append(revocation)
        calls = [NodeCall(node, managers[node].url, "RevokeTickets",
                          ([r.to_wire() for r in items],)) for node, items in by_node.items()]
        replies = await self.client.call_many(calls) if calls else []
        acknowledged = [r.serial for call, reply in zip(calls, replies, strict=True) if reply.ok
                        for r in by_node[call.node_urn]]
        await self.client.in_thread(self.book.settle_revocations, acknowledged)
        return acknowledged

    def _apply(self, read: Mapping[str, Sliver], changed: Sequence[Sliver]) -> set[str]:
        """Write the changed slivers whose record is still as read (a call served meanwhile
        wins over this pass); the URNs written."""
        current = {s.urn: s for s in self.store.slivers_by_urn([s.urn for s in changed])}
        writable = [s for s in changed if current.get(s.urn) == read[s.urn]]
        self.store.update(writable)
        return {s.urn for s in writable}

    def _records(self) -> tuple[list[Sliver], dict[str, StoredTicket]]:
        slivers = self.store.all_slivers()
        return slivers, self.book.tickets([s.urn for s in slivers])

    async def _list_nodes(self) -> tuple[Listing, set[str]]:
        """Each answering node's slivers; the nodes that did not answer (or refused)."""
        calls = [NodeCall(urn, entry.url, "ListSlivers", ([],))
                 for urn, entry in self.book.managers().items()]
        replies = await self.client.call_many(calls) if calls else []
        listing: Listing = {}
        skipped: set[str] = set()
        for call, reply in zip(calls, replies, strict=True):
            if reply.ok and isinstance(reply.value, list):
                listing[call.node_urn] = {e["sliver_urn"]: e for e in reply.value
                                          if isinstance(e, dict) and "sliver_urn" in e}
            else:
                skipped.add(call.node_urn)
        return listing, skipped

    async def _redeem(self, wanted: Sequence[tuple[Sliver, StoredTicket]]
                      ) -> tuple[list[Sliver], dict[str, tuple[Sliver, str]]]:
        """Redeem stored tickets again: (the slivers now provisioned, and the provisioned
        ones that could not come back -> reason; an allocated one refused stays allocated)."""
        managers = self.book.managers()
        calls = [NodeCall(s.node_urn, managers[s.node_urn].url, "RedeemTicket",
                          (t.ticket, {"slice_key": t.slice_key})) for s, t in wanted]
        replies = await self.client.call_many(calls) if calls else []
        redeemed: list[Sliver] = []
        failed: dict[str, tuple[Sliver, str]] = {}
        for (sliver, ticket), reply in zip(wanted, replies, strict=True):
            if reply.ok:
                redeemed.append(_adopted(sliver, _redeemed_entry(reply), ticket))
            elif reply.reachable and sliver.allocation is AllocationState.PROVISIONED:
                failed[sliver.urn] = (sliver, _lost(reply.error))
        return redeemed, failed

    async def _delete_orphans(self, orphans: Sequence[tuple[str, str]]) -> list[str]:
        managers = self.book.managers()
        calls = [NodeCall(node, managers[node].url, "DeleteSliver", (urn, []))
                 for node, urn in orphans]
        replies = await self.client.call_many(calls) if calls else []
        return [urn for (_, urn), reply in zip(orphans, replies, strict=True) if reply.ok]


def _plan(slivers: Sequence[Sliver], tickets: Mapping[str, StoredTicket], listing: Listing,
          now: datetime) -> _Plan:
    plan = _Plan()
    known: set[tuple[str, str]] = set()
    for sliver in slivers:
        held = listing.get(sliver.node_urn)
        if held is None:  # the node did not answer: leave it for the health check
            continue
        known.add((sliver.node_urn, sliver.urn))
        entry = held.get(sliver.urn)
        ticket = tickets.get(sliver.urn)
        sent = ticket is not None and ticket.sent
        if entry is not None:
            _plan_present(plan, sliver, entry, ticket if sent else None)
        elif sent and ticket is not None and _valid(ticket, now):
            if sliver.operational is not OperationalState.FAILED:
                plan.redeem.append((sliver, ticket))
        elif (sliver.allocation is AllocationState.PROVISIONED
              and sliver.operational is not OperationalState.FAILED):
            reason = "its ticket has expired" if sent else "the aggregate holds no sent ticket"
            plan.fail[sliver.urn] = (sliver, _lost(reason))
    for node, held in listing.items():
        plan.orphans.extend((node, urn) for urn in sorted(held) if (node, urn) not in known)
    return plan


def _plan_present(plan: _Plan, sliver: Sliver, entry: dict[str, Any],
                  sent: StoredTicket | None) -> None:
    """A sliver the node holds: adopt it, sync its state, or (never sent) delete it there."""
    if sliver.allocation is AllocationState.PROVISIONED:
        state = NODE_STATES.get(str(entry.get("state", "")))
        if state is not None and state != sliver.operational:
            plan.sync.append(sliver.with_changes(operational=state))
    elif sent is not None:
        plan.adopt.append((sliver, entry, sent))
    else:  # the aggregate never sent a ticket for it: the node's copy has no record here
        plan.orphans.append((sliver.node_urn, sliver.urn))


def _valid(ticket: StoredTicket, now: datetime) -> bool:
    expires = ticket.terms.get("expires")
    return isinstance(expires, str) and parse_rfc3339(expires) > now


def _adopted(sliver: Sliver, entry: dict[str, Any], ticket: StoredTicket) -> Sliver:
    """The sliver as provisioned from `ticket`, in the state its node reports."""
    terms = ticket.terms
    users = tuple(UserKeys(urn, tuple(keys)) for urn, keys in terms.get("users", []))
    expires = entry.get("expires") or terms.get("expires")
    return sliver.with_changes(
        allocation=AllocationState.PROVISIONED,
        operational=NODE_STATES.get(str(entry.get("state", "")), OperationalState.NOTREADY),
        expires=parse_rfc3339(expires) if isinstance(expires, str) else sliver.expires,
        users=users or sliver.users,
        login_user=str(entry.get("login") or sliver.login_user),
        error="",
    )


def _redeemed_entry(reply: NodeReply) -> dict[str, Any]:
    """A RedeemTicket reply (lease, sliver_urn, expires, login) read as a listing entry."""
    value = reply.value if isinstance(reply.value, dict) else {}
    return {**value, "state": "ready"}


def _failed(sliver: Sliver, reason: str) -> Sliver:
    return sliver.with_changes(operational=OperationalState.FAILED, error=reason)


def _lost(reason: str) -> str:
    return f"the node no longer holds this sliver and it could not be redeemed again: {reason}"


__all__ = ["ReconcileReport", "Reconciler"]
