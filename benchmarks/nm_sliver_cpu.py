"""A node manager's CPU per sliver, library level: redeem, start and delete (a revocation by the
aggregate, as its Delete sends), each timed alone, with the SQLite statements each one runs.

One `NodeManager` over a real node directory (DirBackend, SQLite, as root the host's uid file);
tickets signed by a real aggregate key in batches of 64, as the node-manager driver signs them,
with the slice key sealed for the node. Each sliver is redeemed, started and revoked before the
next one, so the node holds one sliver at a time, as each node of a slice does. CPU is this
thread's, user + system (`time.thread_time`: the scheduler's own count, exact at each read;
getrusage's is only as fresh as the last tick, which made short operations read 0), divided by
the slivers; the tickets are signed before timing. Run it on two trees alternately (the
machine's speed drifts): the sliver backend's part (the filesystem) varies most between runs.

    .venv/bin/python benchmarks/nm_sliver_cpu.py [--slivers 200] [--rounds 2] [--profile FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sfa.nodemanager.manager import NodeManager  # noqa: E402
from sfa.nodemanager.store import Revocation  # noqa: E402
from sfa.trust.hierarchy import AuthorityStore  # noqa: E402
from sfa.trust.keys import public_key_to_openssh  # noqa: E402
from sfa.trust.slicekey import seal_slice_key  # noqa: E402
from sfa.trust.ticket import (  # noqa: E402
    TicketResources,
    TicketSpec,
    TicketUser,
    create_tickets,
    parse_ticket,
)
from tests.nodemanager.conftest import Principal  # noqa: E402
from tests.nodemanager.nodes import make_node_dir, reopen  # noqa: E402

BATCH = 64  # sfa.aggregate.nm_driver.SIGNING_CHUNK
OPERATIONS = ("redeem", "start", "delete")


class Statements:
    """SQLite statements run on the connections it watches, counted per label."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.label = ""

    def watch(self, conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(self._seen)

    def _seen(self, _sql: str) -> None:
        if self.label:
            self.counts[self.label] += 1

    @contextmanager
    def counting(self, label: str) -> Iterator[None]:
        self.label = label
        try:
            yield
        finally:
            self.label = ""


def make_node(base: Path) -> tuple[NodeManager, Principal, tuple[Any, Any, Any]]:
    """A node directory and its NodeManager; the aggregate; a slice with its key."""
    authorities = AuthorityStore(base / "authorities")
    plc = authorities.create_root("plc")
    node_gid, node_key = plc.issue_gid("plc.node1", "node")
    am_gid, am_key = plc.issue_service_gid("am", "127.0.0.1")
    assert node_key is not None and am_key is not None
    slice_gid, slice_key = plc.issue_gid("plc.bench", "slice")
    assert slice_key is not None
    nodedir = make_node_dir(base / "nodes" / "node1", Principal(node_gid, node_key), plc)
    nm = reopen(nodedir)
    nm.recover()
    nm.warm_up()
    return nm, Principal(am_gid, am_key), (slice_gid, slice_key, node_gid)


def sign_tickets(am: Principal, slice_: Any, count: int, tag: str
                 ) -> list[tuple[str, str, str, str, datetime]]:
    """`count` tickets for the node, signed in batches: (ticket, sealed key, sliver, serial,
    expires) each."""
    slice_gid, slice_key, node_gid = slice_
    public = public_key_to_openssh(slice_key)
    user = TicketUser("urn:publicid:IDN+plc+user+alice", (public + " alice@example",))
    expires = datetime.now(UTC) + timedelta(hours=2)
    specs = [
        TicketSpec(slice_gid=slice_gid, node_urn=node_gid.urn,
                   sliver_urn=f"urn:publicid:IDN+plc+sliver+{tag}{i}", expires=expires,
                   resources=TicketResources(cpu_share=32, memory_mb=128, disk_mb=5120,
                                             tasks=256, bandwidth_kbps=1),
                   users=(user,), slice_keypair_public=public)
        for i in range(count)
    ]
    tickets: list[str] = []
    for start in range(0, count, BATCH):
        tickets += create_tickets(specs[start:start + BATCH], signer_key=am.key, signer=am.gid)
    out = []
    for spec, ticket in zip(specs, tickets, strict=True):
        sealed = seal_slice_key(slice_key, node_gid.public_key, spec.sliver_urn)
        out.append((ticket, sealed, spec.sliver_urn, parse_ticket(ticket).serial, expires))
    return out


thread_cpu = time.thread_time  # this thread's user + system CPU seconds


class BackendClock:
    """The CPU spent inside the sliver backend's methods (the filesystem and processes), per
    operation of the node manager: the node manager's own share is the rest."""

    def __init__(self, backend: Any) -> None:
        self.spent: Counter[str] = Counter()
        self.label = ""
        for name in ("create", "start", "stop", "destroy", "status"):
            setattr(backend, name, self._timed(getattr(backend, name)))

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = thread_cpu()
            try:
                return method(*args, **kwargs)
            finally:
                self.spent[self.label] += thread_cpu() - began
        return timed


def run_round(nm: NodeManager, am: Principal, tickets: list[Any], statements: Statements,
              backend: BackendClock) -> Counter[str]:
    """CPU seconds per operation over the round."""
    cpu: Counter[str] = Counter()
    for ticket, sealed, sliver_urn, serial, expires in tickets:
        steps: dict[str, Callable[[], Any]] = {
            "redeem": lambda t=ticket, s=sealed: nm.redeem(t, slice_key=s),
            "start": lambda u=sliver_urn: nm.start(u, am.gid, []),
            "delete": lambda u=sliver_urn, n=serial, e=expires: nm.revoke(
                [Revocation(n, am.gid.urn, u, e)], am.gid),
        }
        for name in OPERATIONS:
            backend.label = name
            with statements.counting(name):
                began = thread_cpu()
                steps[name]()
                cpu[name] += thread_cpu() - began
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slivers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", default="", help="write cProfile statistics here")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="nm-sliver-cpu-"))
    base.chmod(0o711)
    try:
        nm, am, slice_ = make_node(base)
        statements = Statements()
        backend = BackendClock(nm.backend)
        statements.watch(nm.store.database.db().conn)
        if nm.uids is not None:
            statements.watch(nm.uids.allocator.database.db().conn)
        profile: Any = None
        if args.profile:
            import cProfile  # noqa: PLC0415
            profile = cProfile.Profile(time.process_time)
        print(f"load {os.getloadavg()[0]:.2f}; {args.slivers} slivers a round, "
              f"uids {'on' if nm.uids is not None else 'off'}", flush=True)
        for number in range(args.rounds):
            tickets = sign_tickets(am, slice_, args.slivers, f"r{number}s")
            statements.counts.clear()
            backend.spent.clear()
            if profile is not None:
                profile.enable()
            spent = run_round(nm, am, tickets, statements, backend)
            if profile is not None:
                profile.disable()
            print(f"round {number + 1}: CPU ms per sliver (user + system), of which in the "
                  "sliver backend (filesystem, processes) and outside it:", flush=True)
            for name in (*OPERATIONS, "total"):
                names = OPERATIONS if name == "total" else (name,)
                cpu, inside = (1000 * sum(c[n] for n in names) / args.slivers
                               for c in (spent, backend.spent))
                count = sum(statements.counts[n] for n in names) / args.slivers
                print(f"  {name:7s} {cpu:6.2f} = backend {inside:5.2f} + node manager "
                      f"{cpu - inside:5.2f}; SQL statements {count:.1f}", flush=True)
        if profile is not None:
            profile.dump_stats(args.profile)
        print(f"load {os.getloadavg()[0]:.2f}", flush=True)
        nm.store.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
