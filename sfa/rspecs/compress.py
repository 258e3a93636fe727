"""`geni_compressed` RSpecs: base64 of the zlib-compressed UTF-8 document, both ways."""

from __future__ import annotations

import base64
import binascii
import zlib

from sfa.errors import BadArgs, TooBig

DEFAULT_MAX_OUTPUT = 50 * 1024 * 1024


def compress(text: str) -> str:
    """The AM API `geni_compressed` form of an RSpec."""
    return base64.b64encode(zlib.compress(text.encode("utf-8"), 6)).decode("ascii")


def decompress(text: str | bytes, max_bytes: int = DEFAULT_MAX_OUTPUT) -> str:
    """The RSpec inside a `geni_compressed` value; refuses more than `max_bytes` (TooBig)."""
    try:
        packed = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadArgs("the compressed RSpec is not valid base64") from None
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(packed, max_bytes + 1)
    except zlib.error as exc:
        raise BadArgs(f"the compressed RSpec is not zlib data: {exc}") from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise TooBig(f"the compressed RSpec expands beyond {max_bytes} bytes")
    if not inflater.eof:
        raise BadArgs("the compressed RSpec is truncated")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadArgs("the compressed RSpec is not UTF-8 text") from None
