"""The default sliver backend: a directory per sliver and its init script as a real process.

```
slivers/                     0711: no sliver can list the others
slivers/<login>/             0750, owned by the node manager, group = the sliver's uid
  etc/node.gid etc/slice.gid etc/sliver.json etc/initscript (when there is a script)
  run/init.pid               0700 root: "<pid> <start time> <uid|->" of the init script's group
                             (run/ is made when an init script first starts)
  log/init.log               0700, the sliver's: the init script's output
  home/<login>/.ssh/authorized_keys, id_rsa (0600), id_rsa.pub   0700, the sliver's
```
When the node manager runs as root and the spec carries a `uid` (unique on the host, see
`uids`), home/ and log/ belong to that uid, the sliver's root is open to that uid's group only,
and the init script runs as it (gid = uid, no supplementary groups): another sliver can neither
read, write nor signal it; RLIMIT_NPROC counts this sliver's processes only and Stop can also
kill processes that left the process group. The node manager's own files (etc/, run/) stay the
node manager's, so a sliver cannot forge the process record Stop acts on. Run as an ordinary
user, everything runs as that user: RLIMIT_NPROC then counts all of its processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from sfa.errors import Forbidden, Unavailable
from sfa.nodemanager import capabilities, process, safefs
from sfa.nodemanager.backend import BackendStatus, SliverSpec
from sfa.timeutil import format_rfc3339

PATH = "/usr/local/bin:/usr/bin:/bin"


class DirBackend:
    """Slivers as directories under `slivers_dir`; see the module docstring for the layout."""

    enforcement = capabilities.DIRECTORY

    def __init__(
        self,
        slivers_dir: Path,
        *,
        stop_grace: float = 2.0,
        confine: Callable[[SliverSpec], process.Confinement] | None = None,
    ) -> None:
        self.slivers_dir = Path(slivers_dir)
        self.confine = confine  # how a composing backend confines the init script
        self.slivers_dir.mkdir(parents=True, exist_ok=True)
        self.slivers_dir.chmod(0o711)
        self.stop_grace = stop_grace
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    # --- the five operations ------------------------------------------------------------------

    def create(self, spec: SliverSpec) -> None:
        """Make or refresh the sliver's directory, identity files and keys."""
        uid = spec.uid
        with safefs.open_dirs(self.slivers_dir, [spec.login], mode=0o750) as root:
            if uid is not None:
                os.fchown(root, -1, uid)
            os.fchmod(root, 0o750)
            with safefs.open_dirs(root, ["etc"]) as etc:
                safefs.write_file(etc, "node.gid", spec.node_gid_pem.encode())
                safefs.write_file(etc, "slice.gid", spec.slice_gid_pem.encode())
                safefs.write_file(etc, "sliver.json", _sliver_json(spec))
                if spec.initscript.strip():
                    safefs.write_file(etc, "initscript", spec.initscript.encode(), mode=0o755)
                else:  # nothing to run: no file (a renewal may have withdrawn the script)
                    safefs.remove_file(etc, "initscript")
            safefs.ensure_dir(root, "log", mode=0o700, uid=uid)
            self._write_keys(spec, root)  # makes home/ (0755) on the way

    def start(self, spec: SliverSpec) -> None:
        """Run etc/initscript (if not empty and not already running) under the limits."""
        if not spec.initscript.strip() or self._running(spec.login):
            return
        root = self._root(spec.login)
        if spec.uid is not None:
            _check_reachable(self.slivers_dir)
        env = {
            "HOME": str(root / "home" / spec.login),
            "USER": spec.login,
            "LOGNAME": spec.login,
            "PATH": PATH,
            "SFA_SLICE_URN": spec.slice_urn,
            "SFA_SLIVER_URN": spec.sliver_urn,
            "SFA_NODE_URN": spec.node_urn,
        }
        with safefs.open_dirs(self.slivers_dir, [spec.login, "log"], mode=0o700,
                              uid=spec.uid) as log:
            log_fd = safefs.open_append(log, "init.log", uid=spec.uid)
        confinement = self.confine(spec) if self.confine else process.Confinement()
        try:
            launched = process.launch(
                root / "etc" / "initscript",
                cwd=root / "home" / spec.login,
                env=env,
                log_fd=log_fd,
                limits=confinement.limits or process.Limits.from_resources(spec.resources),
                uid=spec.uid,
                confinement=confinement,
            )
        finally:
            os.close(log_fd)
        if launched.popen is not None:
            with self._lock:
                self._children[spec.login] = launched.popen
        record = f"{launched.pid} {launched.start_time} {'-' if spec.uid is None else spec.uid}\n"
        with safefs.open_dirs(self.slivers_dir, [spec.login, "run"], mode=0o700) as run:
            safefs.write_file(run, "init.pid", record.encode(), mode=0o600)

    def stop(self, login: str) -> None:
        """Kill the init script's process group (and the sliver uid's processes)."""
        root = self._root(login)
        if not root.is_dir():
            return
        pgid, uid = self._process_record(login)
        process.kill_all(pgid, uid, grace=self.stop_grace)
        self._reap(login, forget=True)
        if not os.path.lexists(root / "run"):
            return  # no init script ever started: no process record to remove
        with safefs.open_dirs(self.slivers_dir, [login, "run"], mode=0o700) as run:
            safefs.remove_file(run, "init.pid")

    def destroy(self, login: str) -> None:
        """Stop everything and remove the sliver directory."""
        root = self._root(login)
        if not root.exists():
            return
        self.stop(login)
        shutil.rmtree(root)

    def status(self, login: str) -> BackendStatus:
        root = self._root(login)
        if not root.is_dir():
            return BackendStatus(exists=False)
        exit_code = self._reap(login, forget=False)
        pgid, uid = self._process_record(login)
        pids = process.live_pids(pgid, uid)
        return BackendStatus(
            exists=True,
            running=bool(pids),
            processes=len(pids),
            disk_used_bytes=safefs.disk_usage(root),
            pid=pgid,
            exit_code=exit_code,
        )

    # --- helpers ------------------------------------------------------------------------------

    def sliver_dir(self, login: str) -> Path:
        """Where a sliver lives (tests and local tools read it)."""
        return self._root(login)

    def _root(self, login: str) -> Path:
        if not login or "/" in login or login in (".", "..") or "\0" in login:
            raise Forbidden(f"refusing the sliver login {login!r}")
        return self.slivers_dir / login

    def _write_keys(self, spec: SliverSpec, root: int) -> None:
        uid = spec.uid
        with (safefs.open_dirs(root, ["home", spec.login], mode=0o700, uid=uid) as home,
              safefs.open_dirs(home, [".ssh"], mode=0o700, uid=uid) as ssh):
            keys = "".join(f"{key}\n" for key in spec.authorized_keys).encode()
            safefs.write_file(ssh, "authorized_keys", keys, mode=0o600, uid=uid)
            if spec.slice_private_key_pem:
                safefs.write_file(ssh, "id_rsa", spec.slice_private_key_pem, mode=0o600, uid=uid)
            if spec.slice_public_key:
                public = f"{spec.slice_public_key} {spec.login}\n".encode()
                safefs.write_file(ssh, "id_rsa.pub", public, mode=0o644, uid=uid)

    def _running(self, login: str) -> bool:
        """Whether the init script (or the sliver uid) still runs: status without the disk
        walk."""
        self._reap(login, forget=False)
        return bool(process.live_pids(*self._process_record(login)))

    def _process_record(self, login: str) -> tuple[int | None, int | None]:
        """(pgid, uid) of the running init script, or (None, None) when none is recorded or the
        recorded leader is gone and nothing else of its uid runs."""
        try:
            text = (self._root(login) / "run" / "init.pid").read_text()
            pid_text, start_text, uid_text = text.split()
            pid, start = int(pid_text), int(start_text)
            uid = None if uid_text == "-" else int(uid_text)
        except (OSError, ValueError):
            return None, None
        if process.process_start_time(pid) not in (start, None):
            return None, uid  # the pid was reused by an unrelated process
        return pid, uid

    def _reap(self, login: str, *, forget: bool) -> int | None:
        with self._lock:
            child = self._children.get(login)
            if child is None:
                return None
            code = child.poll()
            if forget:
                self._children.pop(login, None)
        return code


def _check_reachable(path: Path) -> None:
    """A sliver running as its own uid must be able to walk down to its home."""
    for folder in (path.resolve(), *path.resolve().parents):
        if not folder.stat().st_mode & 0o001:
            raise Unavailable(
                f"{folder} is not searchable by others (mode o+x), so a sliver running as its "
                "own uid cannot reach its home; chmod o+x it or put the node's data elsewhere"
            )


def _sliver_json(spec: SliverSpec) -> bytes:
    document = {
        "login": spec.login,
        "slice_urn": spec.slice_urn,
        "sliver_urn": spec.sliver_urn,
        "node_urn": spec.node_urn,
        "expires": format_rfc3339(spec.expires),
        "resources": spec.resources.to_dict(),
        "users": [{"urn": user.urn, "keys": list(user.keys)} for user in spec.users],
        "slice_public_key": spec.slice_public_key,
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
