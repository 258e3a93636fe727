"""Registry referrals between running peers: `sfa admin peer add` reaches the running registry
without a restart, and the referral names the peer's registry (registry-api.md)."""

from __future__ import annotations

import pytest

from sfa.errors import SearchFailed
from sfa.xrn import hrn_to_urn
from tests.federation.conftest import Federation, sfa


def _own_credential(fed: Federation) -> str:
    alice, url = fed.alice, fed.plc.registry.url
    return alice.call(url, "GetSelfCredential", alice.gid.to_pem(include_chain=True),
                      alice.urn, "user")


def test_resolve_of_a_peer_name_is_a_referral_to_the_peer_registry(
        federation: Federation) -> None:
    cred = _own_credential(federation)
    records = federation.alice.call(federation.plc.registry.url, "Resolve",
                                  [hrn_to_urn("ple.bob", "user")], [cred], {})
    assert records == [{"hrn": "ple", "type": "authority",
                        "reg-urn": hrn_to_urn("ple", "authority"),
                        "url": federation.ple.registry.url}]
    with pytest.raises(SearchFailed, match="ask the registry of ple at") as refused:
        federation.alice.call(federation.plc.registry.url, "GetCredential", [cred],
                            hrn_to_urn("ple.bobslice", "slice"), "slice")
    assert federation.ple.registry.url in refused.value.message


def test_peer_removed_while_running_is_no_longer_referred(federation: Federation) -> None:
    cred = _own_credential(federation)
    removed = sfa("admin", federation.plc.directory, "peer", "remove", "ple")
    assert removed.exit_code == 0, removed.output
    try:
        with pytest.raises(SearchFailed) as refused:
            federation.alice.call(federation.plc.registry.url, "Resolve",
                                [hrn_to_urn("ple.bob", "user")], [cred], {})
        assert federation.ple.registry.url not in refused.value.message
    finally:
        added = sfa("admin", federation.plc.directory, "peer", "add", "ple",
                    "--registry", federation.ple.registry.url,
                    "--aggregate", federation.ple.aggregate.url)
        assert added.exit_code == 0, added.output
