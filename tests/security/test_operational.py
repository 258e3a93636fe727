"""spec/security.md item 23 over TLS: a database held locked by another connection gives BUSY
(or DBERROR) in the reply, leaves no partial state, and the service works once released."""

from __future__ import annotations

import sqlite3
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sfa.errors import GeniCode
from sfa.server.am_api import AGGREGATE_DB
from tests.security.conftest import World, no_traceback, ok, request, slice_urn

LOCKED = (GeniCode.BUSY, GeniCode.DBERROR)
EXP6 = slice_urn("exp6")
ONE_NODE = request('<node client_id="l" exclusive="false"/>')


@contextmanager
def held_exclusively(path: Path) -> Iterator[None]:
    """Another writer holding the file: BEGIN EXCLUSIVE on its own connection."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_23_aggregate_database_locked(world: World) -> None:
    am, creds = world.am(), world.cred("exp6")
    before = world.dump()
    with held_exclusively(world.deployment.db_dir / AGGREGATE_DB):
        reply = am.Allocate(EXP6, creds, ONE_NODE, {})
    assert reply["code"]["geni_code"] in LOCKED, reply["output"]
    assert reply["value"] == ""
    no_traceback(str(reply["output"]))
    assert world.dump() == before
    world.answers()
    ok(am.Allocate(EXP6, creds, ONE_NODE, {}))
    ok(am.Delete([EXP6], creds, {}))


def test_23_registry_database_locked(world: World) -> None:
    registry = world.registry("alice")
    change = {"hrn": "plc.princeton.exp6", "type": "slice", "description": "locked out"}
    before = world.dump()
    with held_exclusively(world.deployment.registry_db), \
            pytest.raises(xmlrpc.client.Fault) as caught:
        registry.Update(change, [world.creds["exp6"]])
    assert caught.value.faultCode in LOCKED, caught.value.faultString
    no_traceback(caught.value.faultString)
    assert world.dump() == before
    world.answers()
    assert registry.Update(change, [world.creds["exp6"]]) == 1
