"""`sfa init --xmpp` and `sfa serve` with a real Prosody child: login over TLS, dies with serve."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sfa.deploy.config import load_config
from sfa.deploy.xmpp import ProsodyPaths, account_password, prosody_installed
from sfa.errors import Forbidden
from sfa.omf.config import XmppLogin, XmppServer
from sfa.omf.xmpp import PubsubClient

SFA = [sys.executable, "-m", "sfa.cli.main"]
needs_prosody = pytest.mark.skipif(not prosody_installed(),
                                   reason="prosody is not installed (apt-get install prosody)")


def _init(directory: Path) -> None:
    made = subprocess.run([*SFA, "init", str(directory), "--authority", "w13x", "--nodes", "1",
                           "--registry-port", "0", "--am-port", "0", "--nm-base-port", "0",
                           "--xmpp"], capture_output=True, text=True, timeout=120, check=False)
    assert made.returncode == 0, made.stderr
    assert "xmpp: Prosody configured" in made.stdout


def _serve(directory: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    log = (directory.parent / "serve.log").open("w")
    return subprocess.Popen([*SFA, "serve", str(directory)], stdout=subprocess.PIPE, stderr=log,
                            text=True, env=env)


def _ready_lines(server: subprocess.Popen[str]) -> list[str]:
    assert server.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("ready aggregate"):
        line = server.stdout.readline()
        assert line, (lines, server.poll())
        lines.append(line.strip())
    return lines


def _gone(pid: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie of init is gone for our purpose
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split()[2] == "Z":
            return True
        time.sleep(0.05)
    return False


async def _login(jid: str, password: str, host: str, port: int, cafile: Path) -> bool:
    """True when `jid` logs in over TLS (the server's certificate checked against `cafile`)."""
    account, domain = jid.split("@")
    client = PubsubClient(XmppLogin(XmppServer(host, port, domain, f"pubsub.{domain}"),
                                    cafile, account, password))
    try:
        await client.connect()
    except Forbidden:
        return False
    finally:
        await client.close()
    return True


def test_init_xmpp_writes_prosody_config_and_accounts(tmp_path: Path):
    directory = tmp_path / "w13x"
    _init(directory)
    config = load_config(directory).xmpp
    assert config.enabled and config.managed and config.port > 0
    lua = (directory / "xmpp" / "prosody.cfg.lua").read_text()
    assert f"c2s_ports = {{ {config.port} }}" in lua
    assert 'admins = { "aggregate@localhost" }' in lua
    assert 'Component "pubsub.localhost" "pubsub"' in lua
    accounts = directory / "xmpp" / "data" / "localhost" / "accounts"
    assert sorted(p.name for p in accounts.iterdir()) == ["aggregate.dat", "node1.dat"]
    assert (directory / "xmpp" / "secrets" / "aggregate").stat().st_mode & 0o077 == 0


@needs_prosody
def test_serve_runs_prosody_which_dies_with_serve_even_on_sigkill(tmp_path: Path):
    directory = tmp_path / "w13x"
    _init(directory)
    config = load_config(directory).xmpp
    server = _serve(directory)
    try:
        lines = _ready_lines(server)
        assert f"ready xmpp 127.0.0.1:{config.port}" in lines
        pid = int((directory / "xmpp" / "prosody.pid").read_text())
        password = account_password(ProsodyPaths(directory / "xmpp"), "aggregate")
        root = directory / "trusted_roots" / "w13x.gid"
        assert asyncio.run(_login("aggregate@localhost", password, "127.0.0.1", config.port, root))
        assert not asyncio.run(_login("aggregate@localhost", "wrong", "127.0.0.1", config.port,
                                      root))
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        assert _gone(pid, time.monotonic() + 15), "prosody outlived a SIGKILLed sfa serve"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)


def test_serve_without_prosody_says_so_once_and_runs_the_rest(tmp_path: Path):
    directory = tmp_path / "w13x"
    _init(directory)
    # a PATH holding the Python that runs sfa, but no prosody
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**os.environ, "PATH": str(bin_dir)}
    server = _serve(directory, env=env)
    try:
        lines = _ready_lines(server)
        assert not any(line.startswith("ready xmpp") for line in lines)
        server.send_signal(signal.SIGTERM)
        server.wait(20)
        log = (tmp_path / "serve.log").read_text()
        assert log.count("prosody is not installed") == 1, log
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
