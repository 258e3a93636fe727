"""The RSpec versions this library reads and writes, as GetVersion advertises them."""

from __future__ import annotations

from typing import Any

from sfa.rspecs.extension import SFA_EXT_NS
from sfa.rspecs.model import GENI_NS, OPSTATE_NS


def rspec_versions(kind: str) -> list[dict[str, Any]]:
    """GetVersion's `geni_request_rspec_versions` (kind "request") or `geni_ad_rspec_versions`
    (kind "ad"): GENI v3 with the opstate and sfa extensions."""
    return [{
        "type": "GENI", "version": "3", "namespace": GENI_NS,
        "schema": f"{GENI_NS}/{kind}.xsd", "extensions": [OPSTATE_NS, SFA_EXT_NS],
    }]
