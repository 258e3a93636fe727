"""A real Prosody on 127.0.0.1, a small PKI (root w13o, users alice and bob, slices sa and
sb), and real `sfa rc` processes; skipped only when prosody is not installed."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.deploy.xmpp import (
    AGGREGATE_ACCOUNT,
    ProsodyPaths,
    account_password,
    create_account,
    free_port,
    prosody_installed,
    write_prosody,
)
from sfa.omf.config import RcConfig, XmppLogin, XmppServer, render_rc_config
from sfa.omf.ec import UserIdentity
from sfa.omf.tree import ec_account, rc_account
from sfa.server.prosody import ProsodyProcess
from sfa.trust.credential import create_credential
from sfa.trust.gid import GID
from sfa.trust.hierarchy import Authority, AuthorityStore
from sfa.trust.keys import generate_private_key, save_private_key
from sfa.trust.roots import TrustedRoots

ROOT = "w13o"
SFA = [sys.executable, "-m", "sfa.cli.main"]


@dataclass
class Pki:
    root: Authority
    roots_dir: Path
    users: dict[str, tuple[GID, rsa.RSAPrivateKey]] = field(default_factory=dict)
    slices: dict[str, GID] = field(default_factory=dict)

    def credential(self, user: str, slice_name: str) -> str:
        gid, _ = self.users[user]
        return create_credential(
            owner=gid, target=self.slices[slice_name], privileges="*",
            expires=datetime.now(UTC) + timedelta(hours=1),
            signer_key=self.root.key, signer=self.root.gid).xml

    def identity(self, user: str, slice_name: str) -> UserIdentity:
        gid, key = self.users[user]
        return UserIdentity(gid.urn, key, gid.to_pem(include_chain=True),
                            self.credential(user, slice_name))


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("omfpki")
    root = AuthorityStore(directory / "authorities").create_root(ROOT)
    roots_dir = directory / "trusted_roots"
    roots_dir.mkdir()
    TrustedRoots(roots_dir).write(root.gid, f"{ROOT}.gid")
    made = Pki(root, roots_dir)
    for user in ("alice", "bob"):
        gid, key = root.issue_gid(f"{ROOT}.{user}", "user")
        assert key is not None
        made.users[user] = (gid, key)
    for name in ("sa", "sb"):
        made.slices[name] = root.issue_gid(f"{ROOT}.{name}", "slice", generate_private_key()
                                           .public_key())[0]
    return made


@dataclass
class Xmpp:
    server: XmppServer
    paths: ProsodyPaths
    ca_file: Path

    def login(self, account: str) -> XmppLogin:
        if not (self.paths.secrets / account).exists():
            create_account(self.paths, self.server.domain, account)
        return XmppLogin(self.server, self.ca_file, account,
                         account_password(self.paths, account))

    def jid(self, account: str) -> str:
        return self.server.jid(account)

    def ec_login(self, user: str, slice_name: str) -> XmppLogin:
        return self.login(ec_account(f"{ROOT}.{user}", f"{ROOT}.{slice_name}"))


@pytest.fixture(scope="session")
def xmpp(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xmpp]:
    if not prosody_installed():
        pytest.skip("prosody is not installed (apt-get install prosody; make tools does it)")
    directory = tmp_path_factory.mktemp("xmpp")
    server = XmppServer("127.0.0.1", free_port("127.0.0.1"), "localhost", "pubsub.localhost")
    admin = server.jid(AGGREGATE_ACCOUNT)
    paths = write_prosody(directory, server, pki.root, [AGGREGATE_ACCOUNT], admins=[admin])
    process = ProsodyProcess(paths, server)
    process.start()
    try:
        yield Xmpp(server, paths, pki.roots_dir / f"{ROOT}.gid")
    finally:
        process.stop()


@dataclass
class RcProcess:
    slice_hrn: str
    node_hrn: str
    key: rsa.RSAPrivateKey
    workdir: Path
    process: subprocess.Popen[str]

    @property
    def log(self) -> str:
        return (self.workdir / "rc.log").read_text()

    def wait_log(self, text: str, timeout: float = 20.0) -> str:
        """Poll the RC's log (no event to await across processes) until `text` shows."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log):
            assert time.monotonic() < deadline, f"{text!r} never logged:\n{log}"
            time.sleep(0.05)
        return log

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_rc(xmpp: Xmpp, pki: Pki, slice_name: str, node: str, workdir: Path) -> RcProcess:
    """An `sfa rc` process for (slice, node), its key and rc.toml in `workdir`; returns once
    it has subscribed (its `ready rc` line)."""
    workdir.mkdir(parents=True, exist_ok=True)
    slice_hrn, node_hrn = f"{ROOT}.{slice_name}", f"{ROOT}.{node}"
    key = generate_private_key()
    save_private_key(workdir / "sliver.pkey", key)
    config = RcConfig(xmpp.login(rc_account(slice_hrn, node_hrn)), slice_hrn, node_hrn,
                      workdir / "sliver.pkey", pki.roots_dir)
    (workdir / "rc.toml").write_text(render_rc_config(config))
    log = (workdir / "rc.log").open("w")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([*SFA, "rc", str(workdir / "rc.toml")], stdout=subprocess.PIPE,
                               stderr=log, text=True, env=env)
    log.close()
    return RcProcess(slice_hrn, node_hrn, key, workdir, process)


def await_ready(rcs: list[RcProcess]) -> None:
    for rc in rcs:
        assert rc.process.stdout is not None
        line = rc.process.stdout.readline()
        assert line.startswith("ready rc /OMF/"), (line, rc.process.poll(), rc.log)


def close_loop(loop: asyncio.AbstractEventLoop, clients: dict[str, Any]) -> None:
    """Finish slixmpp's leftover tasks and drop its clients before the loop closes (their
    finalizers schedule callbacks on it)."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    clients.clear()
    gc.collect()
    asyncio.set_event_loop(None)
    loop.close()
