"""Resolve, List, GetGids, get_trusted_certs, GetVersion and referrals; privacy of e-mail;
operator changes seen without restart; a locked database; a reopened one."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from sfa.errors import (
    BadArgs,
    Busy,
    CredentialSignerUntrusted,
    DatabaseError,
    Forbidden,
    GeniCode,
    SearchFailed,
)
from sfa.registry.api import Registry
from sfa.trust.gid import GID
from sfa.trust.keys import public_key_to_openssh
from tests.registry.conftest import World


def _by_hrn(records: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(r["hrn"]) + "/" + str(r["type"]): r for r in records}


def test_get_version(world: World) -> None:
    version = world.registry.GetVersion({})
    assert version["interface"] == "registry" and version["sfa"] == 3
    assert version["hrn"] == "plc" and version["urn"] == "urn:publicid:IDN+plc+authority+sa"
    assert version["peers"]["ple"] == "https://ple.example:12345"
    assert version["code_tag"]


def test_resolve_fields_relations_and_privacy(world: World) -> None:
    names = ["plc.princeton.alice", "urn:publicid:IDN+plc:princeton+slice+exp1", "plc.princeton"]
    own = _by_hrn(world.registry.Resolve(world.gid("alice"), names, [world.user_cred("alice")]))
    alice = own["plc.princeton.alice/user"]
    assert alice["email"] == "alice@princeton.example"
    assert alice["reg-urn"] == "urn:publicid:IDN+plc:princeton+user+alice"
    assert alice["authority"] == "plc.princeton"
    assert alice["reg-slices"] == ["plc.princeton.exp1"]
    assert alice["reg-keys"] == [public_key_to_openssh(world.keys["alice"])]
    assert str(alice["date_created"]).endswith("Z")
    assert own["plc.princeton.exp1/slice"]["reg-researchers"] == ["plc.princeton.alice"]
    assert own["plc.princeton/authority"]["reg-pis"] == ["plc.princeton.carol"]
    # bob sees alice's record, not her e-mail; her PI does
    seen_by_bob = world.registry.Resolve(
        world.gid("bob"), "plc.princeton.alice", [world.user_cred("bob")]
    )
    assert "email" not in seen_by_bob[0] and seen_by_bob[0]["gid"] == alice["gid"]
    seen_by_pi = world.registry.Resolve(
        world.gid("carol"), "plc.princeton.alice", [world.user_cred("carol")]
    )
    assert seen_by_pi[0]["email"] == "alice@princeton.example"
    seen_by_dave = world.registry.Resolve(
        world.gid("dave"), "plc.princeton.alice", [world.user_cred("dave")]
    )
    assert "email" not in seen_by_dave[0]


def test_resolve_without_details_drops_relations(world: World) -> None:
    (record,) = world.registry.Resolve(
        world.gid("alice"), "plc.princeton.alice", [world.user_cred("alice")],
        {"details": False},
    )
    assert "reg-slices" not in record and record["reg-urn"].endswith("+user+alice")


def test_resolve_unknown_and_malformed(world: World) -> None:
    cred = [world.user_cred("alice")]
    alice = world.gid("alice")
    with pytest.raises(SearchFailed) as info:
        world.registry.Resolve(alice, ["plc.princeton.alice", "plc.princeton.zed"], cred)
    assert info.value.code == GeniCode.SEARCHFAILED and "plc.princeton.zed" in info.value.message
    with pytest.raises(SearchFailed, match="no configured peer"):
        world.registry.Resolve(alice, "unknown.site.x", cred)
    for bad in ([], [42], "plc..x", "urn:publicid:IDN+plc+sliver+x", {"a": 1}):
        with pytest.raises(BadArgs):
            world.registry.Resolve(alice, bad, cred)


def test_resolve_refers_peer_names_with_a_stub(world: World) -> None:
    records = world.registry.Resolve(
        world.gid("alice"), ["ple.inria.joe", "plc.remote.lab.s1", "plc.princeton.bob"],
        [world.user_cred("alice")],
    )
    assert records[0] == {
        "hrn": "ple", "type": "authority", "reg-urn": "urn:publicid:IDN+ple+authority+sa",
        "url": "https://ple.example:12345",
    }
    assert records[1]["hrn"] == "plc.remote" and records[1]["url"] == "https://remote.example:12345"
    assert records[2]["hrn"] == "plc.princeton.bob"


def test_referral_faults_name_the_peer(world: World) -> None:
    cred = [world.user_cred("alice")]
    alice = world.gid("alice")
    with pytest.raises(SearchFailed, match=r"registry of ple at https://ple\.example:12345"):
        world.registry.GetCredential(alice, cred, "ple.inria.s1", "slice")
    with pytest.raises(SearchFailed, match=r"remote\.example"):
        world.registry.List(alice, "plc.remote", cred)


def test_resolve_needs_a_credential(world: World) -> None:
    with pytest.raises(Forbidden):
        world.registry.Resolve(world.gid("alice"), "plc.princeton.alice", [])


def test_bootstrap_resolve_only_with_own_credential(world: World) -> None:
    """The self-signed certificate works for Resolve only with a credential owned by its key,
    and never for anything else."""
    fake = world.self_signed("mallory", "plc.princeton.alice")
    with pytest.raises(CredentialSignerUntrusted):
        world.registry.Resolve(fake, "plc.princeton.alice", [world.user_cred("alice")])
    boot = world.self_signed("alice", "plc.princeton.alice")
    cred = world.registry.GetSelfCredential(boot, None, "plc.princeton.alice", "user")
    with pytest.raises(CredentialSignerUntrusted):
        world.registry.GetCredential(boot, [cred], "plc.princeton.exp1", "slice")


def test_list_direct_and_recursive(world: World) -> None:
    cred = [world.user_cred("bob")]
    bob = world.gid("bob")
    direct = {r["hrn"] for r in world.registry.List(bob, "plc", cred)}
    assert direct == {"plc.admin", "plc.princeton", "plc.other"}
    deep = {r["hrn"] for r in world.registry.List(bob, "plc", cred, {"recursive": True})}
    assert {"plc.princeton.alice", "plc.princeton.exp1", "plc.other.dave"} <= deep
    listed = world.registry.List(bob, "urn:publicid:IDN+plc:princeton+authority+sa", cred)
    assert all("email" not in r for r in listed if r["hrn"] != "plc.princeton.bob")
    with pytest.raises(SearchFailed):
        world.registry.List(bob, "plc.nowhere", cred)


def test_get_gids_needs_getgids(world: World) -> None:
    slice_cred = world.cred("alice", "plc.princeton.exp1", "slice")
    gids = world.registry.GetGids(
        world.gid("alice"), ["plc.princeton.alice", "plc.princeton.exp1"], [slice_cred]
    )
    assert [(g["hrn"], g["type"]) for g in gids] == [
        ("plc.princeton.alice", "user"), ("plc.princeton.exp1", "slice"),
    ]
    assert GID.from_pem(gids[0]["gid"]).urn.endswith("+user+alice")
    with pytest.raises(Forbidden):
        world.registry.GetGids(world.gid("alice"), ["plc.princeton.alice"],
                               [world.user_cred("alice")])


def test_get_trusted_certs(world: World) -> None:
    (own,) = world.registry.get_trusted_certs(world.gid("alice"))
    assert GID.from_pem(own).urn == "urn:publicid:IDN+plc+authority+sa"
    admin_cred = world.cred("admin", "plc", "authority")
    roots = world.registry.get_trusted_certs(world.gid("admin"), admin_cred)
    assert [GID.from_pem(r).fingerprint for r in roots] == [world.root_gid.fingerprint]
    with pytest.raises(Forbidden):
        world.registry.get_trusted_certs(world.gid("alice"), world.user_cred("alice"))


def test_operator_changes_take_effect_without_restart(world: World) -> None:
    with pytest.raises(Forbidden):
        world.cred("bob", "plc.princeton.exp1", "slice")
    world.admin.admin_add_slice("plc.princeton.exp9", ["plc.princeton.bob"])
    (exp1,) = world.admin.admin_show("plc.princeton.exp1", "slice")
    world.admin.book.update(exp1, {"researchers": ["plc.princeton.alice", "plc.princeton.bob"]})
    assert world.cred("bob", "plc.princeton.exp1", "slice")
    assert world.cred("bob", "plc.princeton.exp9", "slice")


def test_locked_database_gives_busy_and_changes_nothing(world: World) -> None:
    cred = world.cred("carol", "plc.princeton", "authority")
    carol = world.gid("carol")
    before = world.dump()
    conn = world.registry.book.repository.database.db().conn
    conn.execute("PRAGMA busy_timeout = 50")
    holder = sqlite3.connect(world.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Busy) as info:
            world.registry.Register(
                carol,
                {"hrn": "plc.princeton.s9", "type": "slice", "researcher": "plc.princeton.alice"},
                [cred],
            )
        assert info.value.code == GeniCode.BUSY
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert world.dump() == before


def test_full_disk_gives_database_error_and_changes_nothing(world: World) -> None:
    cred = world.cred("carol", "plc.princeton", "authority")
    before = world.dump()
    conn = world.registry.book.repository.database.db().conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(DatabaseError, match="full"):
        world.registry.Register(
            world.gid("carol"),
            {"hrn": "plc.princeton.s9", "type": "slice", "researcher": "plc.princeton.alice",
             "description": "x" * 4000},
            [cred],
        )
    assert world.dump() == before


def test_reopen_keeps_every_record(world: World) -> None:
    cred = world.cred("carol", "plc.princeton", "authority")
    world.registry.Register(
        world.gid("carol"),
        {"hrn": "plc.princeton.s9", "type": "slice", "researcher": "plc.princeton.alice"},
        [cred],
    )
    before = world.dump()
    world.registry.close()
    world.registry = Registry(
        world.db_path, world.authorities, world.policy, world.registry.gid, world.registry.key,
        config=world.registry.config,
    )
    assert world.dump() == before
    assert world.cred("alice", "plc.princeton.s9", "slice")


def test_calls_from_several_threads(world: World) -> None:
    """The server calls in from a thread pool: reads and writes interleave without errors."""
    alice, cred = world.gid("alice"), [world.user_cred("alice")]
    carol, auth = world.gid("carol"), [world.cred("carol", "plc.princeton", "authority")]
    key = public_key_to_openssh(world.keys["spare"])

    def work(n: int) -> int:
        world.registry.Register(
            carol, {"hrn": f"plc.princeton.t{n}", "type": "user", "keys": [key]}, auth
        )
        return len(world.registry.Resolve(alice, [f"plc.princeton.t{n}", "plc.princeton"], cred))

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(work, range(8))) == [2] * 8
    listed = {r["hrn"] for r in world.registry.List(alice, "plc.princeton", cred)}
    assert {f"plc.princeton.t{n}" for n in range(8)} <= listed
