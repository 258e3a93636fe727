"""The host-wide sliver uid allocator (security item 24): one file, many node managers, many
processes; a uid is held until its sliver is released and never one the system uses."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

from sfa.nodemanager import process
from sfa.nodemanager.uids import UidAllocator, host_allocator

BASE = 300_000


def test_two_owners_on_one_file_never_share_a_uid(tmp_path: Path) -> None:
    one, two = UidAllocator(tmp_path / "uids.db"), UidAllocator(tmp_path / "uids.db")
    first = one.allocate("/nodes/a", "urn:publicid:IDN+plc+sliver+s", BASE)
    second = two.allocate("/nodes/b", "urn:publicid:IDN+plc+sliver+s", BASE)
    assert first != second
    assert one.holders() == {first: ("/nodes/a", "urn:publicid:IDN+plc+sliver+s"),
                             second: ("/nodes/b", "urn:publicid:IDN+plc+sliver+s")}


def test_a_sliver_keeps_its_uid_until_released(tmp_path: Path) -> None:
    uids = UidAllocator(tmp_path / "uids.db")
    held = uids.allocate("/n", "urn:publicid:IDN+plc+sliver+a", BASE)
    assert uids.allocate("/n", "urn:publicid:IDN+plc+sliver+a", BASE) == held
    other = uids.allocate("/n", "urn:publicid:IDN+plc+sliver+b", BASE)
    assert other != held
    uids.release("/n", "urn:publicid:IDN+plc+sliver+a")
    assert uids.allocate("/n", "urn:publicid:IDN+plc+sliver+c", BASE) == held


def test_the_lowest_free_uid_is_given_whether_the_range_is_full_to_its_top_or_has_gaps(
    tmp_path: Path,
) -> None:
    uids = UidAllocator(tmp_path / "uids.db")
    first = uids.allocate("/n", "urn:publicid:IDN+plc+sliver+s0", BASE)
    given = [first] + [uids.allocate("/n", f"urn:publicid:IDN+plc+sliver+s{i}", BASE)
                       for i in range(1, 6)]
    assert given == sorted(given) and len(set(given)) == 6  # each the next free one above
    for i in (1, 3):
        uids.release("/n", f"urn:publicid:IDN+plc+sliver+s{i}")
    assert uids.allocate("/n", "urn:publicid:IDN+plc+sliver+t1", BASE) == given[1]
    assert uids.allocate("/n", "urn:publicid:IDN+plc+sliver+t3", BASE) == given[3]
    assert uids.allocate("/n", "urn:publicid:IDN+plc+sliver+t6", BASE) > given[5]
    assert BASE + 1_000 <= uids.allocate("/n", "urn:publicid:IDN+plc+sliver+x", BASE + 1_000)


def test_reconcile_releases_what_the_owner_lost_and_records_what_it_holds(tmp_path: Path
                                                                         ) -> None:
    uids = UidAllocator(tmp_path / "uids.db")
    kept = uids.allocate("/n", "urn:publicid:IDN+plc+sliver+a", BASE)
    uids.allocate("/n", "urn:publicid:IDN+plc+sliver+b", BASE)
    theirs = uids.allocate("/m", "urn:publicid:IDN+plc+sliver+b", BASE)
    held = {"urn:publicid:IDN+plc+sliver+a": kept,
            "urn:publicid:IDN+plc+sliver+old": BASE + 50,  # made before the host file existed
            "urn:publicid:IDN+plc+sliver+twice": theirs}  # the old scheme gave it twice
    assert uids.reconcile("/n", held) == ["urn:publicid:IDN+plc+sliver+twice"]
    assert uids.holders() == {kept: ("/n", "urn:publicid:IDN+plc+sliver+a"),
                              BASE + 50: ("/n", "urn:publicid:IDN+plc+sliver+old"),
                              theirs: ("/m", "urn:publicid:IDN+plc+sliver+b")}


def test_uids_of_system_users_and_running_processes_are_skipped(tmp_path: Path) -> None:
    uids = UidAllocator(tmp_path / "uids.db")
    given = uids.allocate("/n", "urn:publicid:IDN+plc+sliver+a", 0, 70_000)
    assert given not in process.running_uids()
    assert all(pwd_uid.pw_uid != given for pwd_uid in pwd.getpwall())
    assert given > 0  # uid 0 is root's


def test_one_allocator_per_file_in_a_process(tmp_path: Path) -> None:
    assert host_allocator(tmp_path / "uids.db") is host_allocator(tmp_path / "." / "uids.db")


def test_processes_allocating_at_once_get_distinct_uids(tmp_path: Path) -> None:
    program = (
        "import sys\n"
        "from sfa.nodemanager.uids import UidAllocator\n"
        "uids = UidAllocator(sys.argv[1])\n"
        "print(*[uids.allocate(sys.argv[2], f'urn:publicid:IDN+plc+sliver+s{i}', 300000)"
        " for i in range(20)])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    children = [subprocess.Popen([sys.executable, "-c", program, str(tmp_path / "uids.db"),
                                  f"/node{n}"], stdout=subprocess.PIPE, text=True, env=env)
                for n in range(4)]
    given = [int(uid) for child in children for uid in child.communicate(timeout=120)[0].split()]
    assert all(child.returncode == 0 for child in children)
    assert len(given) == 80 and len(set(given)) == 80
