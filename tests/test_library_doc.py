"""docs/library.md runs as written: its python blocks, in order, in one namespace, in an empty
directory. Each block asserts what the page claims."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import sfa.rspecs
import sfa.trust
import sfa.trust.hazmat

PAGE = Path(__file__).resolve().parents[1] / "docs" / "library.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[str]:
    return BLOCK.findall(PAGE.read_text())


def test_the_page_has_examples() -> None:
    assert len(blocks()) >= 4


def test_the_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "library_md"}
    for number, code in enumerate(blocks(), 1):
        exec(compile(code, f"{PAGE.name} block {number}", "exec"), namespace)  # noqa: S102
    assert "refused:" in capsys.readouterr().out


@pytest.mark.parametrize("package", [sfa.trust, sfa.trust.hazmat, sfa.rspecs])
def test_every_exported_name_exists(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert names and all(hasattr(package, name) for name in names)


def test_the_door_is_public_and_the_raw_primitives_are_not() -> None:
    for name in ("authorize", "verify_credential", "TrustPolicy", "GID", "Authority",
                 "create_credential", "delegate"):
        assert name in sfa.trust.__all__
    for name in ("assemble_credential", "sign_element", "sign_document", "create_gid"):
        assert name not in sfa.trust.__all__ and name in sfa.trust.hazmat.__all__
    assert not hasattr(sfa.trust.credential, "assemble_credential")
