"""Applications an RC starts: one process group each, output captured (bounded), exit code kept.

The RC itself runs as the sliver's user under the sliver's limits, so its applications do too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

MAX_OUTPUT_BYTES = 1024 * 1024
_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "USER", "LOGNAME", "TMPDIR")


@dataclass(frozen=True)
class AppResult:
    app: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    truncated: bool = False


def app_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """A small inherited base (PATH, HOME, locale) and the experiment's variables."""
    env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
    env.update(extra)
    return env


async def run_app(
    app: str, command: list[str] | tuple[str, ...], env: Mapping[str, str], cwd: Path,
    *, on_started: Callable[[int], Awaitable[None]] | None = None, timeout: float = 3600.0,
) -> AppResult:
    """Run `command` to its end (killed after `timeout` s, exit code then -9)."""
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=cwd, env=app_environment(env), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
    except OSError as exc:
        return AppResult(app, 127, "", f"cannot start {command[0]}: {exc.strerror}",
                         time.monotonic() - started)
    if on_started is not None:
        await on_started(process.pid)
    assert process.stdout is not None and process.stderr is not None
    reads = asyncio.gather(_bounded(process.stdout), _bounded(process.stderr))
    try:
        (out, out_cut), (err, err_cut) = await asyncio.wait_for(reads, timeout)
        code = await process.wait()
    except TimeoutError:
        _kill_group(process.pid)
        await process.wait()
        return AppResult(app, -signal.SIGKILL, "", f"killed after {timeout:g} s",
                         time.monotonic() - started)
    except asyncio.CancelledError:
        _kill_group(process.pid)
        await process.wait()
        raise
    return AppResult(app, code, out.decode(errors="replace"), err.decode(errors="replace"),
                     time.monotonic() - started, out_cut or err_cut)


async def _bounded(stream: asyncio.StreamReader) -> tuple[bytes, bool]:
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(65536):
        room = MAX_OUTPUT_BYTES - len(kept)
        kept += chunk[:room]
        truncated = truncated or len(chunk) > room
    return bytes(kept), truncated


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
