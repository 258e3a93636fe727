"""RSpecs: the GENI v3 model, a lenient hardened reader, a strict writer, a builder, validation
and compression.

This package's names are the stable surface (docs/library.md); submodules are internal.
"""

from sfa.rspecs.builder import Request, advertisement, manifest
from sfa.rspecs.compress import compress, decompress
from sfa.rspecs.model import (
    AD,
    MANIFEST,
    REQUEST,
    DiskImage,
    Extension,
    HardwareType,
    Interface,
    InterfaceRef,
    Link,
    Location,
    Login,
    Node,
    NodeResources,
    ResourceAmounts,
    RSpec,
    Services,
    SliverType,
)
from sfa.rspecs.reader import read_rspec
from sfa.rspecs.validate import ValidationError, validate
from sfa.rspecs.versions import rspec_versions
from sfa.rspecs.writer import write_rspec

__all__ = [
    "AD",
    "MANIFEST",
    "REQUEST",
    "DiskImage",
    "Extension",
    "HardwareType",
    "Interface",
    "InterfaceRef",
    "Link",
    "Location",
    "Login",
    "Node",
    "NodeResources",
    "RSpec",
    "Request",
    "ResourceAmounts",
    "Services",
    "SliverType",
    "ValidationError",
    "advertisement",
    "compress",
    "decompress",
    "manifest",
    "read_rspec",
    "rspec_versions",
    "validate",
    "write_rspec",
]
