"""The worked example (examples/netns): `sfa serve` with the netns driver, driven over TLS
through Allocate, Provision, geni_start, Status, geni_update_users and Delete, checking the
real effect in the kernel: the namespace and the process inside it exist, then are gone. Its
[driver] settings are checked, and bad ones refused by name, without root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfa.aggregate import DriverContext, DriverError, build_driver
from sfa.aggregate.store import AggregateStore
from sfa.rspecs.builder import Request
from sfa.trust.hierarchy import AuthorityStore
from sfa.trust.keys import generate_private_key
from tests.server.nm_site import GENI3, ok
from tests.server.served import REPO, SLICE_URN, served

EXAMPLE = REPO / "examples" / "netns"
PREFIX = f"w14a-{os.getpid()}"

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None
    or bool(subprocess.run(["ip", "netns", "list"], check=False,
                           capture_output=True).returncode),
    reason="the netns example makes network namespaces: it needs root and iproute2's "
           "`ip netns`")


def namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            check=True).stdout
    return [line.split()[0] for line in listed.splitlines()
            if line.startswith(PREFIX + "-")]


def pids_in(netns: str) -> list[int]:
    listed = subprocess.run(["ip", "netns", "pids", netns], check=False, capture_output=True,
                            text=True)
    return [int(word) for word in listed.stdout.split()]


@pytest.fixture
def cleanup() -> Iterator[None]:
    """Whatever happens, no namespace of this run (nor a process in one) is left behind."""
    yield
    for netns in namespaces():
        for pid in pids_in(netns):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "delete", netns], check=False)


@needs_netns
def test_netns_slivers_are_real_and_gone_after_delete(tmp_path: Path, cleanup: None) -> None:
    options = {"nodes": 2, "prefix": PREFIX, "command": ["sleep", "3600"]}
    with served(tmp_path, driver="netns_driver:netns_driver", alice_key=generate_private_key(),
                options=options, python_path=[EXAMPLE]) as site:
        am, creds = site.am(), site.creds()
        rspec = Request().node("a", sliver_type="netns").node("b").to_xml()
        ok(am.Allocate(SLICE_URN, creds, rspec, {}))
        assert namespaces() == []  # allocation reserves; nothing exists yet
        users = [{"urn": site.alice.gid.urn, "keys": ["ssh-ed25519 AAAA alice"]}]
        ok(am.Provision([SLICE_URN], creds, {"geni_rspec_version": GENI3,
                                             "geni_users": users}))
        made = namespaces()
        assert len(made) == 2 and all(pids_in(n) == [] for n in made)
        homes = site.deployment.data_dir / "driver" / "slivers"
        assert {(homes / n / "authorized_keys").read_text() for n in made} == {
            "ssh-ed25519 AAAA alice\n"}

        started = ok(am.PerformOperationalAction([SLICE_URN], creds, "geni_start", {}))
        assert {s["geni_operational_status"] for s in started} == {"geni_ready"}
        for netns in made:
            (pid,) = pids_in(netns)
            assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [
                b"sleep", b"3600"]
        status = ok(am.Status([SLICE_URN], creds, {}))
        assert {s["geni_operational_status"] for s in status["geni_slivers"]} == {"geni_ready"}

        new = [{"urn": site.alice.gid.urn, "keys": ["ssh-ed25519 BBBB rotated"]}]
        ok(am.PerformOperationalAction([SLICE_URN], creds, "geni_update_users",
                                       {"geni_users": new}))
        assert {(homes / n / "authorized_keys").read_text() for n in made} == {
            "ssh-ed25519 BBBB rotated\n"}

        pids = [pid for n in made for pid in pids_in(n)]
        ok(am.Delete([SLICE_URN], creds, {}))
        assert namespaces() == []
        assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
        assert not any(homes.iterdir())


@pytest.fixture
def example_on_path() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLE))
    yield
    sys.path.remove(str(EXAMPLE))


@pytest.mark.parametrize(("options", "message"), [
    ({"nodes": 0}, "nodes must be 1..64"),
    ({"nodes": True}, "nodes must be 1..64"),
    ({"prefix": "Bad Prefix"}, "prefix must be lowercase"),
    ({"command": []}, "command must be a non-empty list"),
    ({"command": "sleep 1"}, "command must be a non-empty list"),
    ({"bridge": "br0"}, "unknown keys ['bridge']"),
])
def test_bad_driver_settings_are_refused_by_name(example_on_path: None, tmp_path: Path,
                                                 options: dict[str, object],
                                                 message: str) -> None:
    root = AuthorityStore(tmp_path / "authorities").create_root("plc")
    store = AggregateStore(tmp_path / "aggregate.sqlite")
    context = DriverContext(name="netns_driver:netns_driver", authority_hrn="plc",
                            am_urn="urn:publicid:IDN+plc+authority+am", store=store,
                            state_dir=tmp_path, gid=root.gid, key=root.key, options=options)
    try:
        with pytest.raises(DriverError) as refused:
            build_driver("netns_driver:netns_driver", context)
        assert "refused its settings: [driver] " + message in refused.value.message
    finally:
        store.close()
