"""spec/security.md item 24 over TLS: slivers of different slices never share a Unix uid, a
readable directory or a process group, however many node managers run on one host.

Two layouts of "several node managers on one host": the node managers of one deployment in one
process (what `sfa serve` runs), and the node managers of two deployments sharing the host's
uid file. In each, two slices get a sliver on different node managers; each init script keeps
a process running, then tries to read the other's private key and secret, append to the other's
authorized_keys, list the other's sliver directory and signal the other's process, and reports
what the kernel answered. Everything must be refused (EACCES / EPERM) and the other sliver must
be intact afterwards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from sfa.logins import sliver_login
from sfa.nodemanager.store import NodeStore
from tests.server.nm_site import GENI3, NmSite, build_deployment, ok, start_site, stop_site

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="slivers get their own uids only when the node manager runs as root (as another "
    "user every sliver runs as that user, by design)")

RSPEC = "http://www.geni.net/resources/rspec/3"
SFA_EXT = "http://sfa.dev/resources/rspec/ext/sfa/1"
DEADLINE = 60.0  # seconds, for a loaded machine
ATTACKS = ("read_key", "read_secret", "append_keys", "list_root", "signal")
# Each attack prints "<name> REFUSED <what the kernel said>" or "<name> ALLOWED".
INIT_SCRIPT = """\
sleep 600 &
echo "secret of $SFA_SLICE_URN" > "$HOME/secret"
chmod 600 "$HOME/secret"
echo $! > "$HOME/sleeper.tmp" && mv "$HOME/sleeper.tmp" "$HOME/sleeper.pid"
while [ ! -f "$HOME/target" ]; do sleep 0.1; done
. "$HOME/target"
try() {
  name=$1; shift
  if "$@" > /dev/null 2> "$HOME/err"; then echo "$name ALLOWED"
  else echo "$name REFUSED $(tr '\\n' ' ' < "$HOME/err")"; fi
}
{
  try read_key cat "$OTHER_HOME/.ssh/id_rsa"
  try read_secret cat "$OTHER_HOME/secret"
  try append_keys sh -c 'echo "ssh-rsa AAAAevil" >> "$1"' _ "$OTHER_HOME/.ssh/authorized_keys"
  try list_root ls "$OTHER_ROOT"
  try signal kill -TERM "$OTHER_PID"
} > "$HOME/report.tmp"
mv "$HOME/report.tmp" "$HOME/report"
wait
"""


@dataclass
class Placed:
    """One slice's sliver on one node manager of a running site."""

    site: NmSite
    name: str
    node_urn: str

    @property
    def slice_urn(self) -> str:
        return f"urn:publicid:IDN+plc:princeton+slice+{self.name}"

    @property
    def login(self) -> str:
        return sliver_login(self.slice_urn)

    @property
    def root(self) -> Path:
        return self.site.deployment.nodes_dir / self.node_urn.rsplit("+", 1)[1] / "slivers" / \
            self.login

    @property
    def home(self) -> Path:
        return self.root / "home" / self.login

    def uid(self) -> int | None:
        store = NodeStore(self.site.nodes[self.node_urn].nm.store.database.path)
        try:
            (record,) = [r for r in store.slivers() if r.slice_urn == self.slice_urn]
            return record.uid
        finally:
            store.close()


@pytest.fixture(scope="module")
def one_process(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[list[Placed]]:
    """One deployment, two node managers in one process (`sfa serve`), a slice on each."""
    base = tmp_path_factory.mktemp("iso-serve")
    deployment, ids, _ = build_deployment(base, 2, keys, ["iso1", "iso2"])
    site = start_site(reactor, deployment, ids, ["iso1", "iso2"])
    first, second = sorted(site.nodes)
    yield [Placed(site, "iso1", first), Placed(site, "iso2", second)]
    stop_site(reactor, site)


@pytest.fixture(scope="module")
def two_deployments(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[list[Placed]]:
    """Two deployments on one host, each with its own node manager, one uid file."""
    base = tmp_path_factory.mktemp("iso-host")
    shared = base / "host-uids.db"
    placed = []
    for name in ("iso1", "iso2"):
        (base / name).mkdir()
        deployment, ids, _ = build_deployment(base / name, 1, keys, [name], uid_db=shared)
        site = start_site(reactor, deployment, ids, [name])
        placed.append(Placed(site, name, next(iter(site.nodes))))
    yield placed
    for each in placed:
        stop_site(reactor, each.site)


@pytest.mark.parametrize("layout", ["one_process", "two_deployments"])
def test_24_slivers_cannot_read_write_or_signal_each_other(
        layout: str, request: pytest.FixtureRequest) -> None:
    placed: list[Placed] = request.getfixturevalue(layout)
    try:
        for each in placed:  # every uid is chosen before any sliver runs a process
            _provision(each)
        for each in placed:
            _start(each)
        pids = {each.name: int(_wait_for_file(each.home / "sleeper.pid")) for each in placed}
        uids = [each.uid() for each in placed]
        assert None not in uids and len(set(uids)) == len(uids), uids
        before = {each.name: _intact(each, pids[each.name]) for each in placed}
        for attacker, victim in ((placed[0], placed[1]), (placed[1], placed[0])):
            _aim(attacker, victim, pids[victim.name])
        for attacker in placed:
            report = _wait_for_file(attacker.home / "report")
            _assert_refused(report)
        for each in placed:
            assert _intact(each, pids[each.name]) == before[each.name]
        first, second = placed
        _delete(first)  # stopping one sliver signals its own processes only
        assert not first.root.exists() and not _alive(pids[first.name])
        assert _intact(second, pids[second.name]) == before[second.name]
    finally:
        for each in placed:
            _delete(each)
    for each in placed:
        assert not each.root.exists()
        assert not _alive(pids[each.name])


def _delete(placed: Placed) -> None:
    ok(placed.site.am().Delete([placed.slice_urn], placed.site.cred(placed.name), {}))


def _provision(placed: Placed) -> None:
    am, creds, urn = placed.site.am(), placed.site.cred(placed.name), placed.slice_urn
    rspec = (f'<rspec xmlns="{RSPEC}" type="request">'
             f'<node client_id="n" component_id="{placed.node_urn}" exclusive="false"/>'
             f'<sfa:init_script xmlns:sfa="{SFA_EXT}">{escape(INIT_SCRIPT)}</sfa:init_script>'
             "</rspec>")
    ok(am.Allocate(urn, creds, rspec, {}))
    ok(am.Provision([urn], creds, {"geni_rspec_version": GENI3}))


def _start(placed: Placed) -> None:
    am, creds, urn = placed.site.am(), placed.site.cred(placed.name), placed.slice_urn
    started = ok(am.PerformOperationalAction([urn], creds, "geni_start", {}))
    assert [s["geni_error"] for s in started] == [""], started


def _aim(attacker: Placed, victim: Placed, victim_pid: int) -> None:
    """Tell the attacker's init script (as root, through a file in its home) what to attack."""
    target = (f'OTHER_HOME="{victim.home}"\nOTHER_ROOT="{victim.root}"\n'
              f"OTHER_PID={victim_pid}\n")
    temporary = attacker.home / "target.tmp"
    temporary.write_text(target)
    temporary.chmod(0o644)
    temporary.rename(attacker.home / "target")


def _assert_refused(report: str) -> None:
    lines = dict(line.split(" ", 1) for line in report.strip().splitlines())
    assert set(lines) == set(ATTACKS), report
    for name in ("read_key", "read_secret", "append_keys", "list_root"):
        assert lines[name].startswith("REFUSED") and "Permission denied" in lines[name], report
    assert lines["signal"].startswith("REFUSED"), report
    assert "not permitted" in lines["signal"].lower(), report


def _intact(placed: Placed, pid: int) -> tuple[Any, ...]:
    """What the other slice must find unchanged: its files, and its process alive, its own."""
    ssh = placed.home / ".ssh"
    assert _alive(pid)
    owner = os.stat(f"/proc/{pid}").st_uid
    return ((ssh / "authorized_keys").read_text(), (ssh / "id_rsa").read_bytes(),
            (placed.home / "secret").read_text(), owner, placed.root.stat().st_mode & 0o777)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for_file(path: Path) -> str:
    deadline = time.monotonic() + DEADLINE
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {DEADLINE:g} s for {path}: the init script did not get there")
        time.sleep(0.05)
    return path.read_text()
