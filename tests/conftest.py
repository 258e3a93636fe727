"""Shared test fixtures: where the shared specs, schemas and samples live, and the one
reactor every suite that serves over the network shares."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.threads import blockingCallFromThread

from sfa.server.reactor import install_asyncio_reactor

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SFA_SHARED_DIR", REPO.parent / "shared")).resolve()
SCHEMAS = SHARED / "schemas"
SAMPLES = SHARED / "samples"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"the shared directory is missing: {SHARED} (set SFA_SHARED_DIR)")
    return SHARED


@pytest.fixture(scope="session")
def schemas_dir(shared_dir: Path) -> Path:
    return shared_dir / "schemas"


@pytest.fixture(scope="session")
def samples_dir(shared_dir: Path) -> Path:
    return shared_dir / "samples"


@pytest.fixture(scope="session")
def reactor() -> Iterator[Any]:
    """The global reactor, Twisted's asyncio reactor as under `sfa serve`, in a daemon thread
    for the whole session; a reactor that is already running (started by something else in
    this process) is reused and left running."""
    the_reactor: Any = install_asyncio_reactor()
    if the_reactor.running:
        yield the_reactor
        return
    thread = threading.Thread(
        target=the_reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
    )
    thread.start()
    blockingCallFromThread(the_reactor, lambda: None)  # returns once the reactor runs
    yield the_reactor
    the_reactor.callFromThread(the_reactor.stop)
    thread.join(10)
