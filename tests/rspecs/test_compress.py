"""geni_compressed helpers."""

from __future__ import annotations

import base64
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfa.errors import BadArgs, TooBig
from sfa.rspecs.compress import compress, decompress


@given(st.text())
def test_round_trip(text: str) -> None:
    assert decompress(compress(text)) == text


def test_is_base64_of_zlib() -> None:
    assert zlib.decompress(base64.b64decode(compress("<rspec/>"))) == b"<rspec/>"


def test_bomb_is_refused() -> None:
    bomb = base64.b64encode(zlib.compress(b"a" * 2_000_000)).decode()
    with pytest.raises(TooBig):
        decompress(bomb, max_bytes=1_000_000)


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"plain").decode(),
                                   compress("x" * 1000)[:-10]])
def test_garbage_is_refused(value: str) -> None:
    with pytest.raises(BadArgs):
        decompress(value)
