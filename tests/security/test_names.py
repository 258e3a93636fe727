"""spec/security.md item 26 over TLS: two names that differ only in case are one name. The
registry refuses the second spelling (ALREADYEXISTS, enforced by the database), gives its
credential to no one but the first one's researchers, and nobody else can act on the slice at
the aggregate whatever spelling they use."""

from __future__ import annotations

from typing import Any

import pytest

from sfa.aggregate.store import AggregateStore
from sfa.errors import GeniCode
from sfa.server.am_api import AGGREGATE_DB
from tests.security.conftest import (
    GENI3,
    World,
    ok,
    refused_by_aggregate,
    refused_by_registry,
    request,
    slice_urn,
)

VICTIM = slice_urn("exp3")
SHOUTED = VICTIM.replace("exp3", "EXP3")
ONE_NODE = request('<node client_id="a" exclusive="false"/>')


@pytest.fixture
def victim_slivers(world: World) -> Any:
    """alice's slice exp3 with one allocated sliver, deleted again after the test."""
    ok(world.am().Allocate(VICTIM, world.cred("exp3"), ONE_NODE, {}))
    yield
    ok(world.am().Delete([VICTIM], world.cred("exp3"), {}))


@pytest.mark.parametrize("spelling", ["plc.princeton.EXP3", "plc.princeton.Exp3",
                                      "PLC.Princeton.exp3"])
def test_26_registering_a_name_that_differs_only_in_case_is_alreadyexists(
        world: World, spelling: str) -> None:
    pi = world.registry("pi")
    authority = pi.GetCredential([world.creds["pi"]], "plc.princeton", "authority")
    record = {"hrn": spelling, "type": "slice", "reg-researchers": ["plc.bob"]}
    message = refused_by_registry(world, lambda: pi.Register(record, [authority]),
                                  GeniCode.ALREADYEXISTS)
    assert "exp3" in message.lower()


def test_26_the_other_spelling_gives_no_credential_to_a_stranger(world: World) -> None:
    bob = world.registry("bob")
    refused_by_registry(
        world, lambda: bob.GetCredential([world.creds["bob"]], "plc.princeton.EXP3", "slice"),
        GeniCode.FORBIDDEN)


def test_26_the_other_spelling_is_the_same_slice_for_its_researcher(world: World) -> None:
    """One name: alice's credential asked for with another spelling is her slice's."""
    alice = world.registry("alice")
    cred = alice.GetCredential([world.creds["alice"]], "plc.princeton.EXP3", "slice")
    assert "<target_urn>urn:publicid:IDN+plc:princeton+slice+exp3</target_urn>" in cred


def _am_calls(world: World, creds: list[Any]) -> dict[str, Any]:
    am, opts = world.am("bob"), {"geni_rspec_version": GENI3}
    return {
        "Describe": lambda: am.Describe([SHOUTED], creds, opts),
        "Status": lambda: am.Status([SHOUTED], creds, {}),
        "Renew": lambda: am.Renew([SHOUTED], creds, "2099-01-01T00:00:00Z", {}),
        "Provision": lambda: am.Provision([SHOUTED], creds, opts),
        "PerformOperationalAction": lambda: am.PerformOperationalAction(
            [SHOUTED], creds, "geni_stop", {}),
        "Delete": lambda: am.Delete([SHOUTED], creds, {}),
        "Shutdown": lambda: am.Shutdown(SHOUTED, creds, {}),
        "Allocate": lambda: am.Allocate(SHOUTED, creds, ONE_NODE, {}),
    }


@pytest.mark.usefixtures("victim_slivers")
@pytest.mark.parametrize("method", ["Describe", "Status", "Renew", "Provision",
                                    "PerformOperationalAction", "Delete", "Shutdown",
                                    "Allocate"])
def test_26_a_stranger_cannot_act_on_the_slice_under_another_spelling(
        world: World, method: str) -> None:
    """bob holds every credential the registry gives him (his own user credential) and names
    alice's slice in capitals: each call is refused and nothing changes."""
    call = _am_calls(world, world.cred("bob"))[method]
    refused_by_aggregate(world, call, (GeniCode.CREDENTIAL_MISMATCH, GeniCode.FORBIDDEN))


def test_26_a_shut_down_slice_stays_shut_down_under_another_spelling(world: World) -> None:
    """The operator froze exp3; its own researcher, spelling it in capitals, is refused too."""
    store = AggregateStore(world.deployment.db_dir / AGGREGATE_DB)
    try:
        store.set_shutdown(VICTIM)
        alice_cred = world.registry("alice").GetCredential(
            [world.creds["alice"]], "plc.princeton.EXP3", "slice")
        creds = world.wrap(alice_cred)
        output = refused_by_aggregate(
            world, lambda: world.am().Allocate(SHOUTED, creds, ONE_NODE, {}), GeniCode.REFUSED)
        assert "shut down" in output
    finally:
        store.set_shutdown(VICTIM, False)
        store.close()
