"""`sfa init`, `sfa serve` (a real subprocess) and `sfa admin` end to end, and SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfa.errors import GeniCode
from sfa.trust.gid import GID
from sfa.trust.keys import load_private_key
from tests.server.conftest import Identity, proxy

SFA = [sys.executable, "-m", "sfa.cli.main"]


def sfa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SFA, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, str, subprocess.Popen]]:
    """A deployment made by `sfa init` (with a slice manager) and served by `sfa serve`."""
    directory = tmp_path_factory.mktemp("e2e") / "plc"
    made = sfa("init", str(directory), "--authority", "plc", "--registry-port", "0",
               "--am-port", "0", "--sm-port", "0")
    assert made.returncode == 0, made.stderr
    log = (directory.parent / "serve.log").open("w")  # a file: a full pipe would block it
    server = subprocess.Popen(
        [*SFA, "serve", str(directory)], stdout=subprocess.PIPE, stderr=log, text=True
    )
    assert server.stdout is not None
    line = server.stdout.readline()  # blocks until the ready line (or EOF if it died)
    assert line.startswith("ready registry https://127.0.0.1:"), (line, server.poll())
    aggregate = server.stdout.readline()
    assert aggregate.startswith("ready aggregate https://127.0.0.1:"), aggregate
    (directory / "aggregate.url").write_text(aggregate.split()[2])
    slicemgr = server.stdout.readline()
    assert slicemgr.startswith("ready slicemgr https://127.0.0.1:"), slicemgr
    (directory / "slicemgr.url").write_text(slicemgr.split()[2])
    yield directory, line.split()[2], server
    if server.poll() is None:
        server.kill()
        server.wait(10)
    log.close()


def test_init_with_sm_port_serves_the_slice_manager(served):
    directory, _, _ = served
    url = (directory / "slicemgr.url").read_text()
    reply = proxy(url, directory / "trusted_roots" / "plc.gid").GetVersion({})
    assert reply["code"]["geni_code"] == 0
    assert reply["value"]["geni_api"] == 3


def test_init_without_sm_port_leaves_the_slice_manager_off(tmp_path: Path):
    made = sfa("init", str(tmp_path / "ple"), "--authority", "ple")
    assert made.returncode == 0, made.stderr
    config = (tmp_path / "ple" / "sfa.toml").read_text()
    assert "[slicemgr]\nenabled = false" in config


def test_admin_changes_reach_the_running_server(served, tmp_path: Path):
    directory, url, _ = served
    root = directory / "trusted_roots" / "plc.gid"
    added = sfa("admin", str(directory), "user", "add", "plc.alice", "--email", "a@example.org",
                "--out", str(tmp_path / "alice"))
    assert added.returncode == 0, added.stderr
    alice = Identity(
        GID.from_pem((tmp_path / "alice.gid").read_bytes()),
        load_private_key((tmp_path / "alice.pkey").read_bytes()),
        tmp_path / "alice.gid", tmp_path / "alice.pkey",
    )
    assert os.stat(alice.key_file).st_mode & 0o077 == 0
    client = proxy(url, root, alice)
    cred = client.GetSelfCredential(alice.gid.to_pem(), "plc.alice", "user")
    assert sfa("admin", str(directory), "slice", "add", "plc.exp1",
               "--researcher", "plc.alice").returncode == 0
    (record,) = client.Resolve("plc.exp1", [cred], {})
    assert record["reg-researchers"] == ["plc.alice"]
    shown = sfa("admin", str(directory), "show", "plc.exp1", "--json")
    assert '"plc.alice"' in shown.stdout
    assert "plc.exp1" in sfa("admin", str(directory), "list").stdout
    assert sfa("admin", str(directory), "remove", "plc.exp1").returncode == 0
    with pytest.raises(xmlrpc.client.Fault) as caught:
        client.Resolve("plc.exp1", [cred], {})
    assert caught.value.faultCode == GeniCode.SEARCHFAILED


def test_every_service_takes_a_lone_credential_and_empty_options(served, tmp_path: Path):
    """Registry, aggregate and slice manager declare their arguments in one layer: a lone
    credential is a list of one and options "" are {} everywhere; other shapes are BADARGS."""
    directory, url, _ = served
    root = directory / "trusted_roots" / "plc.gid"
    assert sfa("admin", str(directory), "user", "add", "plc.carol",
               "--out", str(tmp_path / "carol")).returncode == 0
    assert sfa("admin", str(directory), "slice", "add", "plc.exp3",
               "--researcher", "plc.carol").returncode == 0
    carol = Identity(GID.from_pem((tmp_path / "carol.gid").read_bytes()),
                     load_private_key((tmp_path / "carol.pkey").read_bytes()),
                     tmp_path / "carol.gid", tmp_path / "carol.pkey")
    registry = proxy(url, root, carol)
    cred = registry.GetSelfCredential(carol.gid.to_pem(), "plc.carol", "user")
    slice_cred = registry.GetCredential(cred, "plc.exp3", "slice")
    (record,) = registry.Resolve("plc.exp3", cred, "")
    assert record["hrn"] == "plc.exp3"
    with pytest.raises(xmlrpc.client.Fault) as caught:
        registry.Resolve("plc.exp3", cred, "force")
    assert caught.value.faultCode == GeniCode.BADARGS

    version = {"geni_rspec_version": {"type": "GENI", "version": "3"}}
    for service in ("aggregate", "slicemgr"):
        am = proxy((directory / f"{service}.url").read_text(), root, carol)
        assert am.GetVersion("")["code"]["geni_code"] == 0, service
        listed = am.ListResources(cred, version)
        assert listed["code"]["geni_code"] == 0, (service, listed)
        status = am.Status(["urn:publicid:IDN+plc+slice+exp3"], slice_cred, "")
        assert status["code"]["geni_code"] != GeniCode.BADARGS, (service, status)
        refused = am.Status(["urn:publicid:IDN+plc+slice+exp3"], 42, "")
        assert refused["code"]["geni_code"] == GeniCode.BADARGS, (service, refused)
        assert "credentials must be a list" in refused["output"]


def test_admin_unknown_name_exits_1_with_searchfailed(served):
    directory, _, _ = served
    result = sfa("admin", str(directory), "show", "plc.nobody")
    assert result.returncode == 1
    assert result.stderr.startswith("SEARCHFAILED:")
    assert sfa("admin", str(directory), "trust", "remove", "ple").returncode == 1


def test_admin_trust_add_list_remove(served, tmp_path: Path):
    directory, _, _ = served
    peer = tmp_path / "ple"
    assert sfa("init", str(peer), "--authority", "ple", "--am-port", "0").returncode == 0
    peer_root = peer / "trusted_roots" / "ple.gid"
    assert sfa("admin", str(directory), "trust", "add", str(peer_root)).returncode == 0
    assert "ple" in sfa("admin", str(directory), "trust", "list", "--json").stdout
    assert (directory / "trusted_roots" / "ple.gid").is_file()
    assert sfa("admin", str(directory), "trust", "remove", "ple").returncode == 0
    assert not (directory / "trusted_roots" / "ple.gid").exists()
    own = sfa("admin", str(directory), "trust", "remove", "plc")
    assert own.returncode == 1 and (directory / "trusted_roots" / "plc.gid").is_file()


def test_sigterm_shuts_down_cleanly(served):
    _, url, server = served
    root = served[0] / "trusted_roots" / "plc.gid"
    assert proxy(url, root).GetVersion()["hrn"] == "plc"
    server.send_signal(signal.SIGTERM)
    out, _ = server.communicate(timeout=30)
    err = (served[0].parent / "serve.log").read_text()
    assert server.returncode == 0, err
    assert out.strip().endswith("stopped")
    assert "Traceback" not in err
    assert "registry GetVersion caller=- code=0" in err  # every call is logged
    with pytest.raises(OSError):
        proxy(url, root).GetVersion()


def test_serve_without_deployment_fails_clearly(tmp_path: Path):
    result = sfa("serve", str(tmp_path))
    assert result.returncode == 1
    assert "sfa.toml" in result.stderr


def test_serve_on_a_taken_port_fails_clearly(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        directory = tmp_path / "busy"
        made = sfa("init", str(directory), "--authority", "plc", "--registry-port", str(port),
                   "--am-port", "0")
        assert made.returncode == 0, made.stderr
        result = sfa("serve", str(directory))
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr and str(port) in result.stderr
    assert "ready" not in result.stdout
    # the registry's worker pool, made before the port was found taken, stops without a fault
    assert "While calling system event trigger" not in result.stderr, result.stderr
    assert "ProcessCallPool" not in result.stderr
