"""Prosody, the XMPP publish-subscribe server of a deployment: its configuration and its
accounts (`sfa init --xmpp`); `sfa.server.prosody` runs it.

    DIR/xmpp/prosody.cfg.lua    written by `sfa init --xmpp`
    DIR/xmpp/xmpp.crt, xmpp.key the server's TLS certificate (issued by the root authority)
    DIR/xmpp/data/              Prosody's own data (accounts, pubsub nodes)
    DIR/xmpp/secrets/<name>     the password of each service account (aggregate, node1, ...)

Accounts are written straight into Prosody's account store (SCRAM-SHA-1, as `prosodyctl
register` does), so making one needs neither a running server nor a `prosodyctl` per account.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sfa.errors import BadArgs
from sfa.omf.config import XmppServer
from sfa.trust.gid import create_gid
from sfa.trust.hierarchy import Authority
from sfa.trust.keys import generate_private_key, save_private_key
from sfa.xrn import hrn_to_urn

if TYPE_CHECKING:
    from sfa.deploy.config import XmppConfig
    from sfa.deploy.layout import Deployment

PROSODY = "prosody"
AGGREGATE_ACCOUNT = "aggregate"
SCRAM_ITERATIONS = 10000
_XMPP_LIFETIME_DAYS = 365


@dataclass(frozen=True)
class ProsodyPaths:
    """The files of a Prosody configured inside a deployment."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "prosody.cfg.lua"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def secrets(self) -> Path:
        return self.directory / "secrets"

    @property
    def certificate(self) -> Path:
        return self.directory / "xmpp.crt"

    @property
    def key(self) -> Path:
        return self.directory / "xmpp.key"

    @property
    def pid_file(self) -> Path:
        return self.directory / "prosody.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "prosody.log"


def xmpp_server(config: XmppConfig) -> XmppServer:
    """The server named by the [xmpp] section."""
    return XmppServer(host=config.host, port=config.port, domain=config.domain,
                      pubsub=config.pubsub)


def deployment_prosody(deployment: Deployment) -> ProsodyPaths:
    return ProsodyPaths(deployment.xmpp_dir)


def init_deployment_xmpp(deployment: Deployment, authority: Authority, nodes: int) -> None:
    """`sfa init --xmpp`: Prosody in DIR/xmpp with accounts for the aggregate (the pubsub
    admin: it alone creates nodes and grants publishing) and each node manager."""
    server = xmpp_server(deployment.config.xmpp)
    accounts = [AGGREGATE_ACCOUNT, *(f"node{i}" for i in range(1, nodes + 1))]
    write_prosody(deployment.xmpp_dir, server, authority, accounts,
                  admins=[server.jid(AGGREGATE_ACCOUNT)])


def free_port(host: str) -> int:
    """A port free on `host` right now (for a server that cannot listen on port 0)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def prosody_installed() -> bool:
    """True when the `prosody` program is on PATH."""
    return shutil.which(PROSODY) is not None


def render_prosody_config(paths: ProsodyPaths, server: XmppServer, admins: list[str]) -> str:
    """Prosody's Lua configuration: loopback-or-host c2s with TLS required, no s2s, no HTTP,
    hashed passwords, and a pubsub component where only `admins` create nodes."""

    def lua(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    admin_list = "; ".join(lua(a) for a in admins)
    return "\n".join([
        "-- written by `sfa init --xmpp`; Prosody runs as a child of `sfa serve`",
        "run_as_root = true  -- the same user as sfa serve itself",
        "daemonize = false",
        f"pidfile = {lua(str(paths.pid_file))}",
        f"data_path = {lua(str(paths.data))}",
        f"log = {{ info = {lua(str(paths.log_file))} }}",
        f"interfaces = {{ {lua(server.host)} }}",
        f"c2s_ports = {{ {server.port} }}",
        "s2s_ports = { }", "component_ports = { }", "http_ports = { }", "https_ports = { }",
        "legacy_ssl_ports = { }",
        "c2s_require_encryption = true",
        "allow_registration = false",
        'authentication = "internal_hashed"',
        'modules_enabled = { "saslauth"; "tls"; "disco"; "ping"; "posix" }',
        'modules_disabled = { "s2s"; "offline" }',
        f"certificates = {lua(str(paths.directory))}",
        f"ssl = {{ certificate = {lua(str(paths.certificate))}; key = {lua(str(paths.key))} }}",
        f"admins = {{ {admin_list} }}",
        "",
        f"VirtualHost {lua(server.domain)}",
        "",
        f"Component {lua(server.pubsub)} \"pubsub\"",
        "",
    ])


def write_prosody(
    directory: Path, server: XmppServer, authority: Authority, accounts: list[str],
    admins: list[str],
) -> ProsodyPaths:
    """Create DIR/xmpp: certificate, configuration, and one account (with a fresh password
    kept under secrets/) for each of `accounts`."""
    paths = ProsodyPaths(directory)
    for sub in (paths.directory, paths.data, paths.secrets):
        sub.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = generate_private_key()
    dns = (server.domain, "localhost") if _is_ip(server.host) else (server.domain, server.host)
    gid = create_gid(
        urn=hrn_to_urn(f"{authority.hrn}.xmpp", "node"), public_key=key.public_key(),
        issuer_key=authority.key, issuer=authority.gid, cn=f"{authority.hrn}.xmpp",
        dns_names=tuple(dict.fromkeys(dns)),
        ip_addresses=(server.host,) if _is_ip(server.host) else (),
        lifetime=timedelta(days=_XMPP_LIFETIME_DAYS))
    save_private_key(paths.key, key)
    paths.certificate.write_text(gid.to_pem(include_chain=True))
    paths.config.write_text(render_prosody_config(paths, server, admins), encoding="utf-8")
    for account in accounts:
        create_account(paths, server.domain, account)
    return paths


def create_account(paths: ProsodyPaths, domain: str, account: str,
                   password: str | None = None) -> str:
    """Write (or replace) `account@domain` in Prosody's store and its password under secrets/;
    returns the password. Prosody reads the store on each login, so no restart is needed."""
    _check_localpart(account)
    password = password or secrets.token_urlsafe(24)
    salt = secrets.token_hex(16)
    salted = hashlib.pbkdf2_hmac("sha1", password.encode(), salt.encode(), SCRAM_ITERATIONS)
    # SCRAM-SHA-1 is what Prosody's internal_hashed store holds (RFC 5802)
    client_key = hmac.new(salted, b"Client Key", "sha1").digest()
    stored_key = hashlib.new("sha1", client_key).hexdigest()  # noqa: S324 - the protocol's hash
    server_key = hmac.new(salted, b"Server Key", "sha1").hexdigest()
    accounts = paths.data / _encode(domain) / "accounts"
    accounts.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = (
        "return {\n"
        f'\t["iteration_count"] = {SCRAM_ITERATIONS};\n'
        f'\t["server_key"] = "{server_key}";\n'
        f'\t["stored_key"] = "{stored_key}";\n'
        f'\t["salt"] = "{salt}";\n'
        "};\n"
    )
    _write_private(accounts / f"{_encode(account)}.dat", body)
    _write_private(paths.secrets / account, password)
    return password


def remove_account(paths: ProsodyPaths, domain: str, account: str) -> None:
    """Delete an account and its kept password (absent is fine)."""
    _check_localpart(account)
    (paths.data / _encode(domain) / "accounts" / f"{_encode(account)}.dat").unlink(missing_ok=True)
    (paths.secrets / account).unlink(missing_ok=True)


def account_password(paths: ProsodyPaths, account: str) -> str:
    """The kept password of a service account."""
    _check_localpart(account)
    try:
        return (paths.secrets / account).read_text().strip()
    except FileNotFoundError:
        raise BadArgs(f"no XMPP account {account!r} in {paths.secrets}") from None


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _encode(part: str) -> str:
    """Prosody's datamanager file-name encoding: every non-alphanumeric byte as %xx."""
    return "".join(c if c.isascii() and c.isalnum() else f"%{ord(c):02x}" for c in part)


def _check_localpart(account: str) -> None:
    if not account or len(account) > 64 or not all(
        c.isascii() and (c.isalnum() or c in "-_.") for c in account
    ):
        raise BadArgs(f"not a valid XMPP account name: {account[:80]!r}")


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True
