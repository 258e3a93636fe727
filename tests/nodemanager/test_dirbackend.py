"""The directory backend: a real sliver directory, a real init script under real limits."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.errors import Forbidden
from sfa.logins import sliver_login
from sfa.nodemanager import process
from sfa.nodemanager.backend import Backend, SliverSpec, UserKeys
from sfa.nodemanager.dirbackend import DirBackend
from sfa.nodemanager.resources import Resources
from sfa.trust.gid import GID
from sfa.trust.keys import load_private_key, private_key_to_pem, public_key_to_openssh
from tests.nodemanager.conftest import Principal, make_fifo, wait_for_fifo

AS_ROOT = os.geteuid() == 0
SLIVER_UID = 230_001


def _spec(
    node1: Principal, exp1: Principal, slice_key: rsa.RSAPrivateKey, alice_ssh: str, **changes
) -> SliverSpec:
    base = SliverSpec(
        login=sliver_login(exp1.gid.urn),
        slice_urn=exp1.gid.urn,
        sliver_urn="urn:publicid:IDN+plc+sliver+s1",
        node_urn=node1.gid.urn,
        expires=datetime.now(UTC) + timedelta(hours=1),
        resources=Resources(),
        slice_gid_pem=exp1.gid.to_pem(),
        node_gid_pem=node1.gid.to_pem(),
        users=(UserKeys("urn:publicid:IDN+plc:princeton+user+alice", (alice_ssh,)),),
        slice_public_key=public_key_to_openssh(slice_key),
        slice_private_key_pem=private_key_to_pem(slice_key),
    )
    return replace(base, **changes)


@pytest.fixture
def spec(node1, exp1, slice_key, alice_ssh) -> SliverSpec:
    return _spec(node1, exp1, slice_key, alice_ssh)


@pytest.fixture
def backend(open_dir: Path) -> DirBackend:
    return DirBackend(open_dir / "slivers", stop_grace=0.5)


def test_is_a_backend(backend: DirBackend) -> None:
    assert isinstance(backend, Backend)


def test_create_makes_the_sliver_directory(backend, spec, node1, exp1, slice_key, alice_ssh):  # noqa: PLR0917
    backend.create(spec)
    root = backend.sliver_dir(spec.login)
    assert root.name == "plc_princeton_exp1"
    assert GID.from_pem((root / "etc/node.gid").read_bytes()).urn == node1.gid.urn
    slice_gid = GID.from_pem((root / "etc/slice.gid").read_bytes())
    assert slice_gid.urn == exp1.gid.urn and len(slice_gid.chain) == 2
    info = json.loads((root / "etc/sliver.json").read_text())
    assert info["slice_urn"] == exp1.gid.urn and info["resources"]["memory_mb"] == 128
    ssh = root / "home" / spec.login / ".ssh"
    keys = (ssh / "authorized_keys").read_text().splitlines()
    assert keys == [alice_ssh, public_key_to_openssh(slice_key)]
    private = load_private_key((ssh / "id_rsa").read_bytes())
    assert private.private_numbers() == slice_key.private_numbers()
    assert stat.S_IMODE((ssh / "id_rsa").stat().st_mode) == 0o600
    assert (root / "log").is_dir()
    status = backend.status(spec.login)
    assert status.exists and not status.running and status.disk_used_bytes > 0


def test_create_again_refreshes_keys_and_keeps_the_private_key(backend, spec, bob):
    backend.create(spec)
    ssh = backend.sliver_dir(spec.login) / "home" / spec.login / ".ssh"
    before = (ssh / "id_rsa").read_bytes()
    bob_key = public_key_to_openssh(bob.key)
    backend.create(replace(spec, users=(UserKeys("bob", (bob_key,)),), slice_private_key_pem=None))
    assert (ssh / "authorized_keys").read_text().splitlines() == [bob_key, spec.slice_public_key]
    assert (ssh / "id_rsa").read_bytes() == before


def test_create_refuses_to_follow_a_planted_symlink(backend, spec, open_dir):
    backend.create(spec)
    home = backend.sliver_dir(spec.login) / "home" / spec.login
    outside = open_dir / "outside"
    outside.mkdir()
    for entry in (home / ".ssh").iterdir():
        entry.unlink()
    (home / ".ssh").rmdir()
    (home / ".ssh").symlink_to(outside)
    with pytest.raises(Forbidden):
        backend.create(spec)
    assert list(outside.iterdir()) == []


def test_create_refuses_a_planted_symlink_in_place_of_log(backend, spec, open_dir):
    backend.create(spec)
    root = backend.sliver_dir(spec.login)
    outside = open_dir / "outside"
    outside.mkdir()
    for name in ("log",):
        (root / name).rmdir()
        (root / name).symlink_to(outside)
        with pytest.raises(Forbidden, match="not a plain directory"):
            backend.create(spec)
        (root / name).unlink()
        (root / name).write_text("a file is no directory either")
        with pytest.raises(Forbidden, match="not a plain directory"):
            backend.create(spec)
        (root / name).unlink()
        backend.create(spec)
        assert (root / name).is_dir() and not (root / name).is_symlink()
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o700
    assert list(outside.iterdir()) == []


def _limits(text: str) -> dict[str, str]:
    rows = {}
    for line in text.splitlines()[1:]:
        name = line[:26].strip()
        rows[name] = line[26:].split()[0]
    return rows


def _run_and_wait(backend: DirBackend, spec: SliverSpec, open_dir: Path, script: str) -> Path:
    fifo = make_fifo(open_dir)
    spec = replace(spec, initscript=f"{script}\necho done > {fifo}\n")
    backend.create(spec)
    backend.start(spec)
    wait_for_fifo(fifo)
    return backend.sliver_dir(spec.login) / "home" / spec.login


def test_start_runs_the_init_script_under_limits_with_the_environment(backend, spec, open_dir):
    resources = Resources(memory_mb=100, tasks=40, disk_mb=7, cpu_seconds=9)
    spec = replace(spec, resources=resources)
    home = _run_and_wait(
        backend, spec, open_dir,
        'cat /proc/self/limits > "$HOME/limits"; env > "$HOME/env"; echo hello',
    )
    limits = _limits((home / "limits").read_text())
    assert limits["Max address space"] == str(100 * 1024 * 1024)
    assert limits["Max processes"] == "40"
    assert limits["Max file size"] == str(7 * 1024 * 1024)
    assert limits["Max cpu time"] == "9"
    env = dict(line.split("=", 1) for line in (home / "env").read_text().splitlines())
    assert env["SFA_SLICE_URN"] == spec.slice_urn
    assert env["SFA_SLIVER_URN"] == spec.sliver_urn
    assert env["SFA_NODE_URN"] == spec.node_urn
    assert env["HOME"] == str(home)
    log = backend.sliver_dir(spec.login) / "log" / "init.log"
    assert "hello" in log.read_text()


@pytest.mark.skipif(not AS_ROOT, reason="per-sliver uids need root")
def test_as_root_the_sliver_runs_as_its_own_uid_and_nproc_holds(backend, spec, open_dir):
    process.kill_all(None, SLIVER_UID)  # RLIMIT_NPROC counts the uid's leftovers too
    spec = replace(spec, uid=SLIVER_UID, resources=Resources(tasks=4))
    # the subshell forks sleeps until the kernel refuses (dash then gives up on the subshell)
    script = (
        'id -u > "$HOME/uid"\n'
        '( i=0; while [ $i -lt 8 ]; do sleep 60 & i=$((i+1)); echo $i > "$HOME/n"; done )'
        ' 2>/dev/null\n'
    )
    try:
        home = _run_and_wait(backend, spec, open_dir, script)
        assert (home / "uid").read_text().strip() == str(SLIVER_UID)
        assert home.stat().st_uid == SLIVER_UID
        # 4 tasks: the script's shell and the subshell leave room for two sleeps at most
        started = int((home / "n").read_text())
        assert 1 <= started <= 2
        # the subshell ran in the foreground, so only the script's own shell may remain
        leader = backend.status(spec.login).pid
        sleeping = set(process.members(uid=SLIVER_UID)) - {leader}
        assert len(sleeping) == started
    finally:
        backend.stop(spec.login)
    assert process.members(uid=SLIVER_UID) == []


def test_stop_kills_the_whole_group_and_destroy_removes_everything(backend, spec, open_dir):
    script = "sleep 60 &\nsleep 60 &\n"
    fifo = make_fifo(open_dir)
    spec = replace(spec, initscript=f"{script}echo started > {fifo}\nexec sleep 60\n")
    backend.create(spec)
    backend.start(spec)
    wait_for_fifo(fifo)
    status = backend.status(spec.login)
    assert status.running and status.processes == 3
    pgid = status.pid
    backend.start(spec)  # already running: nothing new
    assert backend.status(spec.login).processes == 3
    backend.stop(spec.login)
    assert process.members(pgid=pgid) == []
    assert not backend.status(spec.login).running
    backend.start(spec)
    assert backend.status(spec.login).running
    backend.destroy(spec.login)
    assert not backend.sliver_dir(spec.login).exists()
    assert process.members(pgid=pgid) == []
    assert not backend.status(spec.login).exists
    backend.destroy(spec.login)  # idempotent


def test_a_new_backend_finds_and_stops_processes_it_did_not_start(backend, spec, open_dir):
    fifo = make_fifo(open_dir)
    spec = replace(spec, initscript=f"echo up > {fifo}\nexec sleep 60\n")
    backend.create(spec)
    backend.start(spec)
    wait_for_fifo(fifo)
    again = DirBackend(backend.slivers_dir, stop_grace=0.5)  # as after a restart
    assert again.status(spec.login).running
    again.stop(spec.login)
    assert not again.status(spec.login).running
    assert not backend.status(spec.login).running


def test_empty_init_script_starts_nothing(backend, spec):
    backend.create(replace(spec, initscript="echo a script withdrawn later\n"))
    script = backend.sliver_dir(spec.login) / "etc" / "initscript"
    assert script.read_text() == "echo a script withdrawn later\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    backend.create(spec)  # refreshed without one (a renewal's ticket may carry none)
    assert not script.exists()
    backend.start(spec)
    assert not backend.status(spec.login).running
    backend.stop(spec.login)
    assert not (backend.sliver_dir(spec.login) / "run").exists()  # no process record, ever
    backend.destroy(spec.login)
    assert not backend.sliver_dir(spec.login).exists()


def test_the_process_record_lives_in_run_made_at_the_first_start(backend, spec, open_dir):
    fifo = make_fifo(open_dir)
    spec = replace(spec, initscript=f"echo started > {fifo}\nexec sleep 60\n")
    backend.create(spec)
    run = backend.sliver_dir(spec.login) / "run"
    assert not run.exists()
    backend.start(spec)
    wait_for_fifo(fifo)
    assert stat.S_IMODE(run.stat().st_mode) == 0o700 and (run / "init.pid").is_file()
    backend.stop(spec.login)
    assert run.is_dir() and not (run / "init.pid").exists()
    assert not backend.status(spec.login).running


@pytest.mark.parametrize("login", ["", "..", "a/b", "x\0y"])
def test_logins_that_are_not_a_path_component_are_refused(backend, login):
    with pytest.raises(Forbidden):
        backend.destroy(login)
