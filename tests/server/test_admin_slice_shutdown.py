"""`sfa admin DIR slice shutdown|lift HRN`: the operator freezes a slice at the aggregate and
lifts it again; the running aggregate reads the flag on every call."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sfa.aggregate.store import AggregateStore
from sfa.cli.main import main
from sfa.deploy.layout import init_deployment
from sfa.server.am_api import AGGREGATE_DB

SLICE_URN = "urn:publicid:IDN+plc+slice+exp1"


def _sfa(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _is_shutdown(directory: Path) -> bool:
    store = AggregateStore(directory / "db" / AGGREGATE_DB)
    try:
        return store.is_shutdown(SLICE_URN)
    finally:
        store.close()


def test_operator_shuts_down_and_lifts_a_slice(tmp_path: Path) -> None:
    directory = init_deployment(tmp_path / "plc", authority="plc").directory
    code, out = _sfa("admin", str(directory), "slice", "shutdown", "plc.exp1")
    assert code == 0 and "shut down" in out
    assert _is_shutdown(directory)
    code, out = _sfa("admin", str(directory), "slice", "lift", "plc.exp1")
    assert code == 0 and "may be used again" in out
    assert not _is_shutdown(directory)


def test_lifting_a_slice_that_is_not_shut_down_is_refused(tmp_path: Path) -> None:
    directory = init_deployment(tmp_path / "plc", authority="plc").directory
    code, out = _sfa("admin", str(directory), "slice", "lift", "plc.exp1")
    assert code == 1 and out.startswith("BADARGS: slice plc.exp1 is not shut down here")
    code, out = _sfa("admin", str(directory), "slice", "lift", "plc..bad")
    assert code == 1 and out.startswith("BADARGS:")
    assert not _is_shutdown(directory)
