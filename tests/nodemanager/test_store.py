"""The node's store: one SQLite connection shared by every thread, changes serialized."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sfa.nodemanager.store import NodeStore


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _in_threads(count: int, work) -> None:
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_many_threads_share_one_connection(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "node.sqlite")
    try:
        store.slivers()  # the connection (and its WAL files) opened
        opened = _descriptors()
        _in_threads(24, lambda n: store.slivers())
        assert _descriptors() == opened
    finally:
        store.close()


def test_concurrent_changes_from_threads_all_land(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "node.sqlite")
    try:
        def add(n: int) -> None:
            for i in range(20):
                with store.transaction():
                    assert store.ticket(f"s{n}-{i}") is None
                    store.add_ticket(f"s{n}-{i}", "d", "urn:publicid:IDN+plc+sliver+x", "redeem")

        _in_threads(8, add)
        rows = store.database.dump()["tickets"]
        assert len(rows) == 160 and len({row["serial"] for row in rows}) == 160
    finally:
        store.close()
