"""The registry with its calls in worker processes: same answers, same refusals, clean stop."""

from __future__ import annotations

import os
import signal
import xmlrpc.client
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.threads import blockingCallFromThread

from sfa.cli.admin import open_admin
from sfa.deploy.config import render_config
from sfa.deploy.layout import Deployment, init_deployment
from sfa.errors import GeniCode
from sfa.server.app import start_deployment
from sfa.server.listener import RunningService
from sfa.server.workers import ProcessCallPool
from sfa.trust.gid import GID
from sfa.trust.keys import public_key_to_openssh
from tests.server.conftest import proxy, wait_deferred, write_identity


def _with_workers(deployment: Deployment, workers: int) -> Deployment:
    config = deployment.config
    changed = replace(
        config,
        registry=replace(config.registry, worker_processes=workers),
        aggregate=replace(config.aggregate, enabled=False),
    )
    (deployment.directory / "sfa.toml").write_text(render_config(changed))
    return Deployment.load(deployment.directory)


def _kill_worker(pool: Any) -> None:
    (process,) = pool._executor._processes.values()  # the one worker of this pool
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)


def _calls_until_served(call: Any) -> int:
    """How many calls it takes to be answered again: a call caught by the dead worker fails
    with SERVERERROR (never a hang), and the next ones reach fresh workers."""
    for attempt in range(1, 4):
        try:
            call()
            return attempt
        except xmlrpc.client.Fault as fault:
            assert fault.faultCode == GeniCode.SERVERERROR
    return 4


def test_registry_in_worker_processes(reactor: Any, keys: list, tmp_path: Path):
    deployment = _with_workers(
        init_deployment(tmp_path / "plc", authority="plc", registry_port=0), 1
    )
    admin = open_admin(deployment)
    try:
        record = admin.admin_add_user("plc.alice", pubkey=public_key_to_openssh(keys[1])).record
    finally:
        admin.close()
    alice = write_identity(tmp_path, "alice", GID.from_pem(record.gid or ""), keys[1])
    services = wait_deferred(reactor, lambda: start_deployment(reactor, deployment, print))
    registry = services["registry"]
    assert isinstance(registry, RunningService) and isinstance(registry.pool, ProcessCallPool)
    root = deployment.trusted_roots_dir / "plc.gid"
    try:
        assert proxy(registry.url, root).GetVersion()["hrn"] == "plc"
        client = proxy(registry.url, root, alice)
        cred = client.GetSelfCredential(alice.gid.to_pem(), "plc.alice", "user")
        (found,) = client.Resolve("plc.alice", [cred], {})
        assert found["reg-urn"] == "urn:publicid:IDN+plc+user+alice"
        with pytest.raises(xmlrpc.client.Fault) as caught:
            client.Resolve("plc.nobody", [cred], {})
        assert caught.value.faultCode == GeniCode.SEARCHFAILED
        with pytest.raises(xmlrpc.client.Fault) as caught:
            proxy(registry.url, root).Resolve("plc.alice", [cred], {})
        assert caught.value.faultCode == GeniCode.FORBIDDEN
        _kill_worker(registry.pool)
        assert _calls_until_served(lambda: client.Resolve("plc.alice", [cred], {})) <= 2
    finally:
        blockingCallFromThread(reactor, registry.stop)
    with pytest.raises(OSError):
        proxy(registry.url, root).GetVersion()
