"""spec/security.md item 19 on the node-manager driver over TLS: many slices Allocate the same
exclusive node at once; exactly one wins and the losers leave nothing behind."""

from __future__ import annotations

import threading
from typing import Any

from sfa.errors import GeniCode
from tests.security.conftest import World, ok, request, slice_urn

NODE1 = "urn:publicid:IDN+plc+node+node1"
RACERS = ["exp1", "exp2", "exp3", "exp4"]


def test_19_concurrent_allocates_of_one_exclusive_node(world: World) -> None:
    rspec = request(f'<node client_id="x" component_id="{NODE1}" exclusive="true"/>')
    before = world.dump()
    barrier = threading.Barrier(len(RACERS))
    replies: dict[str, Any] = {}

    def race(name: str) -> None:
        am, creds = world.am(), world.cred(name)
        barrier.wait()
        replies[name] = am.Allocate(slice_urn(name), creds, rspec, {})

    threads = [threading.Thread(target=race, args=(name,)) for name in RACERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    codes = sorted(r["code"]["geni_code"] for r in replies.values())
    assert codes == [0] + [GeniCode.INSUFFICIENT_NODES] * (len(RACERS) - 1), replies
    winner = next(n for n, r in replies.items() if r["code"]["geni_code"] == 0)
    slivers = world.dump()["aggregate"]["slivers"]
    assert {s["slice_urn"] for s in slivers} == {slice_urn(winner)}
    ok(world.am().Delete([slice_urn(winner)], world.cred(winner), {}))
    after = world.dump()
    assert after["aggregate"]["slivers"] == before["aggregate"]["slivers"]
    world.answers()
