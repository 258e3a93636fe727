"""Prosody as a child process of `sfa serve` (configured by `sfa.deploy.xmpp`): started
before the services, stopped after them, and dead with its parent even on SIGKILL."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sfa.deploy.xmpp import (
    PROSODY,
    ProsodyPaths,
    deployment_prosody,
    prosody_installed,
    xmpp_server,
)
from sfa.errors import Unavailable
from sfa.omf.config import XmppServer
from sfa.server.parent_death import signal_on_parent_death

if TYPE_CHECKING:
    from sfa.deploy.layout import Deployment

class ProsodyProcess:
    """Prosody as a child process that dies with its parent."""

    def __init__(self, paths: ProsodyPaths, server: XmppServer) -> None:
        self.paths = paths
        self.server = server
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        """Start Prosody and wait until its client port accepts connections."""
        if not prosody_installed():
            raise Unavailable("prosody is not installed (apt-get install prosody)")
        log = open(self.paths.log_file.with_suffix(".out"), "ab")
        try:
            self.process = subprocess.Popen(
                [PROSODY, "--config", str(self.paths.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=functools.partial(signal_on_parent_death, signal.SIGTERM, os.getpid()),  # noqa: PLW1509
                close_fds=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not _port_open(self.server.host, self.server.port):
            if self.process.poll() is not None:
                raise Unavailable(f"prosody exited with {self.process.returncode}; "
                                  f"see {self.paths.log_file}")
            if time.monotonic() > deadline:
                self.stop()
                raise Unavailable(f"prosody did not listen on port {self.server.port} "
                                  f"within {timeout:.0f} s; see {self.paths.log_file}")
            time.sleep(0.05)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_deployment_prosody(
    deployment: Deployment, announce: Callable[[str], None], warn: Callable[[str], None]
) -> ProsodyProcess | None:
    """`sfa serve`: start the deployment's Prosody when [xmpp] is enabled and managed; without
    the program, say so once and return None (the other services run regardless)."""
    config = deployment.config.xmpp
    if not config.enabled:
        return None
    server = xmpp_server(config)
    if not config.managed:
        announce(f"ready xmpp {server.host}:{server.port} (external)")
        return None
    if not prosody_installed():
        warn("prosody is not installed (apt-get install prosody): OMF experiment control "
             "over XMPP is off; every other service runs")
        return None
    process = ProsodyProcess(deployment_prosody(deployment), server)
    process.start()
    announce(f"ready xmpp {server.host}:{server.port}")
    return process
