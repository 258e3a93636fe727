"""The whole OMF path on a deployment: aggregate and 4 node managers over TLS, a real Prosody,
a slice of 4 slivers made and opted in with `sfi createslice --omf`, RCs started by the node
managers as the slivers' users, `sfi exp run` of a senders/receivers experiment, Delete
removing tree and RCs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sfa.demo_omf import free_loopback_port
from sfa.deploy.config import XmppConfig
from sfa.deploy.layout import Deployment
from sfa.deploy.xmpp import (
    AGGREGATE_ACCOUNT,
    account_password,
    create_account,
    deployment_prosody,
    free_port,
    init_deployment_xmpp,
    prosody_installed,
    xmpp_server,
)
from sfa.omf.config import XmppLogin
from sfa.omf.messages import Message, SequenceNumbers, parse_message, sign_message
from sfa.omf.xmpp import PubsubClient
from sfa.server.prosody import ProsodyProcess
from sfa.timeutil import utcnow
from tests.omf.test_experiment_e2e import experiment_text
from tests.server.conftest import keys  # noqa: F401 - fixture reused
from tests.server.nm_site import NmSite, build_deployment, ok, request, start_site, stop_site

SLICE = "omf1"
SLICE_URN = f"urn:publicid:IDN+plc:princeton+slice+{SLICE}"
RESTARTED = "omf2"
SYSTEM_SLICE = "omf3"
SFI = [str(Path(sys.executable).parent / "sfi")]  # the entry point, as users run it


@pytest.fixture(scope="module")
def site(reactor: Any, keys: list) -> Iterator[NmSite]:  # noqa: F811 - the shared fixture
    if not prosody_installed():
        pytest.skip("prosody is not installed (apt-get install prosody; make tools does it)")
    # Not under /tmp/pytest-of-root: other pytest sessions reset it to 0700 at any moment, and
    # the slivers' own uids must reach their homes.
    base = Path(tempfile.mkdtemp(prefix=f"w13-omf-{os.getpid()}-"))
    base.chmod(0o711)
    try:
        yield from _site(reactor, keys, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _site(reactor: Any, keys: list, base: Path) -> Iterator[NmSite]:  # noqa: F811
    deployment, ids, _ = build_deployment(base, 4, keys, [SLICE, RESTARTED, SYSTEM_SLICE])
    xmpp = XmppConfig(enabled=True, port=free_port("127.0.0.1"))
    deployment = Deployment(deployment.directory, replace(deployment.config, xmpp=xmpp))
    init_deployment_xmpp(deployment, deployment.root_authority(), 4)
    prosody = ProsodyProcess(deployment_prosody(deployment), xmpp_server(xmpp))
    prosody.start()
    try:
        running = start_site(reactor, deployment, ids, [SLICE, RESTARTED, SYSTEM_SLICE])
        try:
            yield running
        finally:
            stop_site(reactor, running)
    finally:
        prosody.stop()


def sfi(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SFI, "-d", str(directory), *args], capture_output=True, text=True,
                          timeout=120, check=False)


def rc_logs(site: NmSite, name: str = SLICE) -> list[Path]:
    return sorted(site.deployment.nodes_dir.glob(f"*/slivers/plc_princeton_{name}/log/rc.log"))


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll (no event crosses these processes) until `condition()` is truthy."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return value


def omf_nodes(site: NmSite) -> list[str]:
    deployment = site.deployment
    paths = deployment_prosody(deployment)
    login = XmppLogin(xmpp_server(deployment.config.xmpp),
                      deployment.trusted_roots_dir / "plc.gid", AGGREGATE_ACCOUNT,
                      account_password(paths, AGGREGATE_ACCOUNT))

    async def listing() -> list[str]:
        client = PubsubClient(login)
        await client.connect()
        try:
            return await client.list_nodes()
        finally:
            await client.close()

    return asyncio.run(listing())


def rc_pids(site: NmSite, name: str = SLICE) -> list[int]:
    files = site.deployment.nodes_dir.glob(f"*/omf/plc_princeton_{name}.pid")
    return [int(f.read_text().split()[0]) for f in files]


def slivers_of(site: NmSite, urn: str) -> list[str]:
    store = site.store()
    try:
        return [s.urn for s in store.slivers_of(urn)]
    finally:
        store.close()


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split()[2] != "Z"
    except OSError:
        return False


def test_sfi_exp_run_on_an_omf_enabled_slice(site: NmSite, tmp_path: Path):
    am, creds = site.am(), site.cred(SLICE)
    system = [n for n in omf_nodes(site) if n.startswith("/OMF/system/")]
    assert len(system) == 4, system

    alice = site.ids["alice"]
    sfidir = tmp_path / "sfi"
    configured = sfi(sfidir, "config", "--registry", site.registry.url, "--user", "plc.alice",
                     "--key", str(alice.key_file), "--trusted-root", str(site.root_file),
                     "--aggregate", f"plc={site.aggregate.url}")
    assert configured.returncode == 0, configured.stderr
    rspec = tmp_path / "four.xml"
    rspec.write_text(request(4))
    created = sfi(sfidir, "createslice", "--omf", f"plc.princeton.{SLICE}", str(rspec))
    assert created.returncode == 0, created.stdout + created.stderr
    enabled = sfi(sfidir, "--json", "omf", "enable", f"plc.princeton.{SLICE}")  # idempotent
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    assert len(json.loads(enabled.stdout)["results"]) == 4
    logs = wait_for(lambda: len(rc_logs(site)) == 4 and rc_logs(site), "4 RC logs")
    for log in logs:
        wait_for(lambda log=log: "ready rc /OMF/plc.princeton.omf1/resources/" in log.read_text(),
                 f"RC ready in {log}")
    sliver_uids = {os.stat(log).st_uid for log in logs}

    nodes = sorted({log.parts[-5] for log in logs})
    text = experiment_text(free_loopback_port()).replace("w13o.sa", f"plc.princeton.{SLICE}")
    for index, node in enumerate(["node1", "node2", "node3", "node4"]):
        text = text.replace(f"w13o.{node}", f"plc.{nodes[index]}")
    description = tmp_path / "pingpong.toml"
    description.write_text(text)
    out = tmp_path / "out"
    run = sfi(sfidir, "--json", "exp", "run", str(description), "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads(run.stdout)
    assert document["ok"] and len(document["results"]) == 4, document["results"]
    assert document["experiment"].startswith("pingpong-")
    exp_dirs = list(out.iterdir())
    assert len(exp_dirs) == 1
    summary = json.loads((exp_dirs[0] / "summary.json").read_text())
    assert summary["succeeded"], summary
    for index, receiver in enumerate(nodes[:2]):
        stdout = (exp_dirs[0] / f"plc.{receiver}" / "listen.stdout").read_text()
        assert f"received: hello from plc.{nodes[2 + index]}" in stdout
    pids = rc_pids(site)
    assert len(pids) == 4
    if os.geteuid() == 0:  # the RCs ran as the slivers' users, not as the node manager
        assert 0 not in sliver_uids
        for pid in pids:
            assert os.stat(f"/proc/{pid}").st_uid in sliver_uids

    ok(am.Delete([SLICE_URN], creds, {}))
    left = [n for n in omf_nodes(site) if n.startswith(f"/OMF/plc.princeton.{SLICE}")]
    assert left == []
    for pid in pids:
        wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists() or
                 Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", f"RC {pid} stopped")


def test_rc_restarts_with_the_sliver_and_after_a_node_manager_recovery(site: NmSite):
    """Opted in by `<sfa:omf/>` in the request: the RC starts with the sliver, without any
    OMF call."""
    urn = f"urn:publicid:IDN+plc:princeton+slice+{RESTARTED}"
    am, creds = site.am(), site.cred(RESTARTED)
    opt_in = '<sfa:omf xmlns:sfa="http://sfa.dev/resources/rspec/ext/sfa/1"/></rspec>'
    ok(am.Allocate(urn, creds, request(1).replace("</rspec>", opt_in), {}))
    ok(am.Provision([urn], creds, {"geni_rspec_version": {"type": "GENI", "version": "3"}}))
    ok(am.PerformOperationalAction([urn], creds, "geni_start", {}))
    assert f"/OMF/plc.princeton.{RESTARTED}/resources" in omf_nodes(site)
    (first,) = wait_for(lambda: rc_pids(site, RESTARTED), "the RC started")
    assert alive(first)

    ok(am.PerformOperationalAction([urn], creds, "geni_restart", {}))
    (second,) = wait_for(lambda: [p for p in rc_pids(site, RESTARTED) if p != first],
                         "a new RC after the sliver restart")
    wait_for(lambda: not alive(first), "the old RC stopped")
    assert alive(second)

    os.kill(second, signal.SIGKILL)  # as if the node manager had gone down with its RCs
    wait_for(lambda: not alive(second), "the RC killed")
    (manager,) = [s.nm for s in site.nodes.values() if any(
        r.slice_urn == urn for r in s.nm.store.slivers())]
    manager.recover()
    (third,) = wait_for(lambda: [p for p in rc_pids(site, RESTARTED) if p != second],
                        "the RC restarted by recovery")
    assert alive(third)
    ok(am.Delete([urn], creds, {}))
    wait_for(lambda: not alive(third), "the RC stopped by Delete")


def test_system_commands_run_through_the_am_door(site: NmSite):
    """create / status / delete of alice's sliver on node1, published on /OMF/system/plc.node1
    and answered there signed by the aggregate; a command signed by bob for alice runs not."""
    deployment = site.deployment
    paths = deployment_prosody(deployment)
    server = xmpp_server(deployment.config.xmpp)
    login = XmppLogin(server, deployment.trusted_roots_dir / "plc.gid", "w13-system-test",
                      create_account(paths, server.domain, "w13-system-test"))
    topic = "/OMF/system/plc.node1"
    urn = f"urn:publicid:IDN+plc:princeton+slice+{SYSTEM_SLICE}"
    alice, bob = site.ids["alice"], site.ids["bob"]
    aggregate_key = deployment.service_identity("aggregate").gid.public_key
    sequence = SequenceNumbers()

    def command(kind: str, signer: Any) -> tuple[int, str]:
        message = Message(kind=kind, sender=alice.gid.urn, topic=topic,
                          slice_hrn=f"plc.princeton.{SYSTEM_SLICE}", seq=sequence.next(),
                          issued=utcnow(), chain=alice.gid.to_pem(include_chain=True),
                          credential=site.creds[SYSTEM_SLICE])
        return message.seq, sign_message(message, signer)

    def slivers() -> list[str]:
        return slivers_of(site, urn)

    async def scenario() -> None:
        answers: dict[int, dict[str, Any]] = {}
        arrived = asyncio.Event()

        async def on_item(node: str, text: str) -> None:
            signed = parse_message(text)
            if signed.message.kind == "inform" and node == topic:
                signed.verify(aggregate_key)
                answers[signed.message.body["re"]] = dict(signed.message.body)
                arrived.set()

        async def ask(kind: str, signer: Any) -> dict[str, Any]:
            seq, text = command(kind, signer)
            await client.publish(topic, text)
            while seq not in answers:
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), 60)
            return answers[seq]

        client = PubsubClient(login, on_item)
        await client.connect()
        await client.subscribe(topic)
        try:
            created = await ask("create", alice.key)
            assert created["event"] == "done", created
            assert created["result"][0]["geni_operational_status"] == "geni_ready"
            made = slivers()
            assert len(made) == 1
            seq, forged = command("delete", bob.key)  # alice's chain, bob's signature
            await client.publish(topic, forged)
            status = await ask("status", alice.key)
            assert status["event"] == "done" and seq not in answers
            assert slivers() == made
            deleted = await ask("delete", alice.key)
            assert deleted["event"] == "done", deleted
            assert slivers() == []
        finally:
            await client.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))
