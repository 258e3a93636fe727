"""A child process that must not outlive its parent, even when the parent is SIGKILLed."""

from __future__ import annotations

import ctypes
import os
import sys

_PR_SET_PDEATHSIG = 1


def signal_on_parent_death(signum: int, parent_pid: int) -> None:
    """In the child: have the kernel send `signum` when the parent dies (Linux only; it fires
    on the death of the thread that forked us); exit at once if `parent_pid` is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
