"""The OMF Resource Controller of each OMF-enabled sliver: installed, started as the sliver's
user under its limits, stopped and removed with the sliver, restarted after a restart.

    NODE/omf/<login>.toml                   what the aggregate enabled (server, account)
    NODE/omf/<login>.pid                    "<pid> <start time>" of the running RC
    slivers/<login>/home/<login>/.omf/      rc.toml, rc.sh, ca.pem, trusted_roots/
    slivers/<login>/log/rc.log              the RC's log (refusals included)

This is the node manager's `SliverCompanions` (set by `sfa.server.app` on each node manager
it serves): it joins the node manager and the OMF programs, so it lives at the edge.

The RC signs with the slice's key (home/<login>/.ssh/id_rsa, delivered sealed to this node)
and logs in with a password derived from it, as the aggregate derives it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sfa
from sfa.errors import BadArgs
from sfa.nodemanager import process, safefs
from sfa.nodemanager.store import SliverRecord
from sfa.omf.config import RcConfig, XmppLogin, XmppServer, render_rc_config
from sfa.omf.tree import rc_account, rc_password
from sfa.trust.keys import load_private_key
from sfa.xrn import urn_to_hrn

PATH = "/usr/local/bin:/usr/bin:/bin"


class OmfControllers:
    """The RCs of one node's slivers."""

    def __init__(self, node_dir: Path, slivers_dir: Path, node_urn: str,
                 trusted_roots: Path) -> None:
        self.state_dir = node_dir / "omf"
        self.slivers_dir = slivers_dir
        self.node_hrn = urn_to_hrn(node_urn)[0]
        self.trusted_roots = trusted_roots

    def enable(self, record: SliverRecord, server: Mapping[str, Any]) -> None:
        """Remember that this sliver runs an RC with `server` (host, port, domain, pubsub)."""
        try:
            parsed = XmppServer(str(server["host"]), int(server["port"]), str(server["domain"]),
                                str(server["pubsub"]))
        except (KeyError, TypeError, ValueError):
            raise BadArgs("OMF server: host, port, domain and pubsub are needed") from None
        self.state_dir.mkdir(mode=0o700, exist_ok=True)
        text = (f'host = "{_plain(parsed.host)}"\nport = {parsed.port}\n'
                f'domain = "{_plain(parsed.domain)}"\npubsub = "{_plain(parsed.pubsub)}"\n')
        with safefs.open_dirs(self.state_dir.parent, [self.state_dir.name], mode=0o700) as fd:
            safefs.write_file(fd, f"{record.login}.toml", text.encode(), mode=0o600)

    def enabled(self, login: str) -> XmppServer | None:
        path = self.state_dir / f"{login}.toml"
        if not path.is_file():
            return None
        data = tomllib.loads(path.read_text())
        return XmppServer(data["host"], int(data["port"]), data["domain"], data["pubsub"])

    def start(self, record: SliverRecord) -> bool:
        """Start the sliver's RC if it is enabled, has its slice key and is not running."""
        server = self.enabled(record.login)
        home = self.slivers_dir / record.login / "home" / record.login
        key_file = home / ".ssh" / "id_rsa"
        if server is None or not key_file.is_file() or self.running(record.login):
            return False
        config = self._install(record, server, home, key_file, rc_interpreter(record.uid)[0])
        with safefs.open_dirs(self.slivers_dir, [record.login, "log"], uid=record.uid) as log:
            log_fd = safefs.open_append(log, "rc.log", uid=record.uid)
        env = {"HOME": str(home), "USER": record.login, "LOGNAME": record.login, "PATH": PATH}
        _, path = rc_interpreter(record.uid)
        if path:
            env["PYTHONPATH"] = os.pathsep.join(path)
        try:
            launched = process.launch(config.parent / "rc.sh", cwd=home, env=env,
                                      log_fd=log_fd, uid=record.uid,
                                      limits=process.Limits.from_resources(record.resources))
        finally:
            os.close(log_fd)
        with safefs.open_dirs(self.state_dir.parent, [self.state_dir.name], mode=0o700) as fd:
            safefs.write_file(fd, f"{record.login}.pid",
                              f"{launched.pid} {launched.start_time}\n".encode(), mode=0o600)
        if launched.popen is not None:
            _reap_later(launched.popen)
        return True

    def _install(self, record: SliverRecord, server: XmppServer, home: Path,
                 key_file: Path, python: str) -> Path:
        slice_hrn = urn_to_hrn(record.slice_urn)[0]
        slice_key = load_private_key(key_file.read_bytes())
        login = XmppLogin(server, home / ".omf" / "ca.pem", rc_account(slice_hrn, self.node_hrn),
                          rc_password(slice_key, self.node_hrn))
        roots = sorted(self.trusted_roots.glob("*.gid"))
        config = RcConfig(login, slice_hrn, self.node_hrn, key_file,
                          home / ".omf" / "trusted_roots")
        script = (f'exec "{python}" -m sfa.cli.main rc "{home}/.omf/rc.toml" '
                  f'--workdir "{home}"\n')
        with (safefs.open_dirs(self.slivers_dir, [record.login, "home", record.login],
                               mode=0o700, uid=record.uid) as home_fd,
              safefs.open_dirs(home_fd, [".omf"], mode=0o700, uid=record.uid) as omf,
              safefs.open_dirs(omf, ["trusted_roots"], mode=0o700, uid=record.uid) as tr):
            safefs.write_file(omf, "rc.toml", render_rc_config(config).encode(), mode=0o600,
                              uid=record.uid)
            safefs.write_file(omf, "rc.sh", script.encode(), mode=0o700, uid=record.uid)
            safefs.write_file(omf, "ca.pem", b"".join(r.read_bytes() for r in roots),
                              mode=0o600, uid=record.uid)
            for root in roots:
                safefs.write_file(tr, root.name, root.read_bytes(), mode=0o600, uid=record.uid)
        return home / ".omf" / "rc.toml"

    def running(self, login: str) -> bool:
        pgid = self._pgid(login)
        return pgid is not None and bool(process.live_pids(pgid, None))

    def stop(self, login: str, grace: float = 2.0) -> None:
        """Stop the RC (its process group) if one runs."""
        pgid = self._pgid(login)
        if pgid is not None:
            process.kill_all(pgid, None, grace=grace)
        (self.state_dir / f"{login}.pid").unlink(missing_ok=True)

    def forget(self, login: str) -> None:
        """The sliver is gone: stop its RC and drop what enabled it."""
        self.stop(login)
        (self.state_dir / f"{login}.toml").unlink(missing_ok=True)

    def _pgid(self, login: str) -> int | None:
        path = self.state_dir / f"{login}.pid"
        try:
            pid_text, start_text = path.read_text().split()
            pid, start = int(pid_text), int(start_text)
        except (OSError, ValueError):
            return None
        return pid if process.process_start_time(pid) == start else None


def rc_interpreter(uid: int | None) -> tuple[str, list[str]]:
    """The Python an RC runs with, and its import path. sfa's own interpreter when the
    sliver's user may execute it; else `python3` from PATH given sfa's import path (a venv
    under a private home, as in development, is out of the sliver user's reach)."""
    own = Path(sys.executable)
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if uid is None or _reachable_by_others(own.resolve()):
        return str(own), inherited
    system = shutil.which("python3", path=PATH)
    if system is None:
        raise BadArgs("no python3 on PATH that a sliver's user may run")
    package_root = str(Path(sfa.__file__).resolve().parent.parent)
    path = [package_root, *(p for p in sys.path if p.endswith("site-packages")
                            and _reachable_by_others(Path(p)))]
    return system, list(dict.fromkeys(path))


def _reachable_by_others(path: Path) -> bool:
    """Every directory above `path` searchable, and `path` readable/executable, by others."""
    try:
        if not path.stat().st_mode & 0o005:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in path.parents)
    except OSError:
        return False


def _plain(text: str) -> str:
    if any(c in text for c in '"\\\n\r'):
        raise BadArgs(f"OMF server field {text[:60]!r} has a character TOML would need escaped")
    return text


def _reap_later(popen: Any) -> None:
    """Collect the RC's exit status when it ends, so it never lingers as a zombie."""
    import threading  # noqa: PLC0415

    threading.Thread(target=popen.wait, name="sfa-rc-reaper", daemon=True).start()
