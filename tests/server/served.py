"""A deployment served by a real `sfa serve` process with a chosen aggregate driver, and alice
with a slice credential: what the driver tests (and the worked example's) drive over TLS."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from sfa.cli.admin import open_admin
from sfa.deploy.config import render_config
from sfa.deploy.layout import Deployment, init_deployment
from sfa.trust.gid import GID
from sfa.trust.keys import public_key_to_openssh
from tests.server.conftest import Identity, proxy, write_identity

REPO = Path(__file__).resolve().parents[2]
SLICE_HRN = "plc.princeton.exp1"
SLICE_URN = "urn:publicid:IDN+plc:princeton+slice+exp1"


@dataclass
class Served:
    """The running `sfa serve` process, its URLs, and alice's way in."""

    deployment: Deployment
    process: subprocess.Popen[str]
    urls: dict[str, str]
    alice: Identity
    slice_cred: str

    @property
    def root_file(self) -> Path:
        return self.deployment.trusted_roots_dir / "plc.gid"

    def am(self) -> Any:
        return proxy(self.urls["aggregate"] + "am/3", self.root_file, self.alice)

    def creds(self) -> list[dict[str, Any]]:
        value = xmlrpc.client.Binary(self.slice_cred.encode())
        return [{"geni_type": "geni_sfa", "geni_version": 3, "geni_value": value}]


def deploy(base: Path, *, driver: str, options: Mapping[str, Any] | None = None,
           alice_key: RSAPrivateKey, health_seconds: int = 30) -> tuple[Deployment, GID]:
    """`sfa init` with `driver` (and its [driver] `options`), threads instead of worker
    processes; alice registered with slice exp1. Returns the deployment and alice's GID."""
    deployment = init_deployment(base / "plc", authority="plc", registry_port=0, am_port=0)
    config = deployment.config
    config = replace(config, registry=replace(config.registry, worker_processes=0),
                     aggregate=replace(config.aggregate, driver=driver,
                                       health_interval_seconds=health_seconds),
                     driver=dict(options or {}))
    (deployment.directory / "sfa.toml").write_text(render_config(config))
    deployment = Deployment.load(deployment.directory)
    admin = open_admin(deployment)
    try:
        added = admin.admin_add_user("plc.alice", pubkey=public_key_to_openssh(alice_key))
        admin.admin_add_authority("plc.princeton", pis=["plc.alice"])
        admin.admin_add_slice(SLICE_HRN, ["plc.alice"])
    finally:
        admin.close()
    return deployment, GID.from_pem(added.record.gid or "")


def serve_process(deployment: Deployment, *, python_path: Sequence[Path] = ()
                  ) -> subprocess.Popen[str]:
    """`sfa serve DIR` as a process of its own (its own session, killed as a group)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (REPO, *python_path))
    log = (deployment.directory / "serve.log").open("w")
    return subprocess.Popen([sys.executable, "-m", "sfa.cli.main", "serve",
                             str(deployment.directory)], stdout=subprocess.PIPE, stderr=log,
                            text=True, env=env, start_new_session=True)


def read_ready(process: subprocess.Popen[str], wanted: set[str], deadline: float = 60.0
               ) -> dict[str, str]:
    """The `ready NAME URL` lines until every name in `wanted` has one (or the process ends:
    then what it announced so far)."""
    assert process.stdout is not None
    urls: dict[str, str] = {}
    until = time.monotonic() + deadline
    while not wanted <= set(urls):
        remaining = until - time.monotonic()
        assert remaining > 0, f"sfa serve did not announce {wanted - set(urls)} in time"
        readable, _, _ = select.select([process.stdout], [], [], remaining)
        if not readable:
            continue
        line = process.stdout.readline()
        if not line:
            break
        words = line.split()
        if len(words) == 3 and words[0] == "ready":
            urls[words[1]] = words[2]
    return urls


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM the serve process group; SIGKILL when it does not stop in time."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def served(base: Path, *, driver: str, alice_key: RSAPrivateKey,
           options: Mapping[str, Any] | None = None, python_path: Sequence[Path] = (),
           health_seconds: int = 30) -> Iterator[Served]:
    """A deployment on `driver` served by `sfa serve`, stopped on exit whatever happens."""
    deployment, alice_gid = deploy(base, driver=driver, options=options, alice_key=alice_key,
                                   health_seconds=health_seconds)
    alice = write_identity(base / "ids", "alice", alice_gid, alice_key)
    process = serve_process(deployment, python_path=python_path)
    try:
        urls = read_ready(process, {"registry", "aggregate"})
        assert {"registry", "aggregate"} <= set(urls), (
            process.poll(), (deployment.directory / "serve.log").read_text()[-3000:])
        registry = proxy(urls["registry"], deployment.trusted_roots_dir / "plc.gid", alice)
        own = registry.GetSelfCredential(alice_gid.to_pem(), "plc.alice", "user")
        slice_cred = str(registry.GetCredential([own], SLICE_HRN, "slice"))
        yield Served(deployment, process, urls, alice, slice_cred)
    finally:
        stop(process)
