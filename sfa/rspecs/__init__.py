"""RSpecs: the GENI v3 model, a lenient reader, a strict writer, validation and compression."""

from sfa.rspecs.builder import Request, advertisement, manifest
from sfa.rspecs.compress import compress, decompress
from sfa.rspecs.reader import read_rspec
from sfa.rspecs.validate import ValidationError, validate
from sfa.rspecs.writer import write_rspec

__all__ = [
    "Request",
    "ValidationError",
    "advertisement",
    "compress",
    "decompress",
    "manifest",
    "read_rspec",
    "validate",
    "write_rspec",
]
