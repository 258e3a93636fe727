"""Where an OMF program finds the pubsub server and as whom it logs in.

The node manager writes an RC's file, `rc.toml`, into the sliver (mode 0600, the sliver's):

    [xmpp]
    host = "127.0.0.1"
    port = 5222
    domain = "localhost"
    pubsub = "pubsub.localhost"
    ca = "/path/to/root.gid"        # the roots the server certificate must chain to
    account = "rc-..."
    password = "..."

    [rc]
    slice = "plc.princeton.exp1"
    node = "plc.node1"
    key = "/path/to/sliver.pkey"      # signs the RC's informs
    trusted_roots = "/path/to/trusted_roots"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfa.errors import BadArgs


@dataclass(frozen=True)
class XmppServer:
    """Where the pubsub server is and what it is called."""

    host: str  # address to connect to
    port: int  # client-to-server port
    domain: str  # the virtual host of every account: <name>@<domain>
    pubsub: str  # the pubsub service's JID

    def jid(self, account: str) -> str:
        return f"{account}@{self.domain}"


@dataclass(frozen=True)
class XmppLogin:
    """A server, the CA file its certificate must chain to, and an account."""

    server: XmppServer
    ca_file: Path | None  # None: trust `ca_pem` instead
    account: str
    password: str
    ca_pem: str = ""

    @property
    def jid(self) -> str:
        return self.server.jid(self.account)


@dataclass(frozen=True)
class RcConfig:
    login: XmppLogin
    slice_hrn: str
    node_hrn: str
    key_file: Path
    trusted_roots: Path


def render_rc_config(config: RcConfig) -> str:
    """The text of rc.toml."""
    login, server = config.login, config.login.server

    def q(value: object) -> str:
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "\n".join([
        "[xmpp]", f"host = {q(server.host)}", f"port = {server.port}",
        f"domain = {q(server.domain)}", f"pubsub = {q(server.pubsub)}",
        f"ca = {q(login.ca_file)}", f"account = {q(login.account)}",
        f"password = {q(login.password)}", "",
        "[rc]", f"slice = {q(config.slice_hrn)}", f"node = {q(config.node_hrn)}",
        f"key = {q(config.key_file)}", f"trusted_roots = {q(config.trusted_roots)}", "",
    ])


def load_rc_config(path: Path) -> RcConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        xmpp: dict[str, Any] = data["xmpp"]
        rc: dict[str, Any] = data["rc"]
        server = XmppServer(str(xmpp["host"]), int(xmpp["port"]), str(xmpp["domain"]),
                            str(xmpp["pubsub"]))
        login = XmppLogin(server, Path(xmpp["ca"]), str(xmpp["account"]), str(xmpp["password"]))
        return RcConfig(login, str(rc["slice"]), str(rc["node"]), Path(rc["key"]),
                        Path(rc["trusted_roots"]))
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadArgs(f"cannot read the RC configuration {path}: {exc}") from None
