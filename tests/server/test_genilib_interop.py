"""geni-lib, a GENI client in the wild, drives our aggregate unchanged (spec/am-api.md).

Its `geni.minigcf.amapi3` calls are what geni-lib's `am.*` methods send: requests with a client
certificate, verification against a root bundle with host-name checks, credentials read from
files as bytes (so `geni_value` goes out as XML-RPC base64) with `geni_version` as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from geni.minigcf import amapi3  # geni-lib: pyproject.toml [interop]

from sfa.rspecs.reader import read_rspec
from tests.server.test_am_api import SLICES, AmSite, ok, request, site  # noqa: F401

NODE2 = "urn:publicid:IDN+plc+node+node2"


@dataclass
class GeniLibCredential:
    """What geni-lib passes to minigcf: a credential file, its type and its version."""

    path: str
    type: str = "geni_sfa"
    version: int = 3


def _cred(am_site: AmSite, tmp_path: Path, name: str) -> GeniLibCredential:
    path = tmp_path / f"{name}.cred"
    path.write_text(am_site.creds[name])
    return GeniLibCredential(str(path))


def _tls(am_site: AmSite) -> tuple[str, str, str, str]:
    url = am_site.aggregate.url + "am/3"
    alice = am_site.ids["alice"]
    return url, str(am_site.root_file), str(alice.cert_file), str(alice.key_file)


def test_genilib_get_version_sees_int_single_allocation_and_both_endpoints(
        site: AmSite) -> None:  # noqa: F811 - the fixture imported above
    url, roots, cert, key = _tls(site)
    # minigcf.getversion hands `options` to xmlrpc dumps as the parameter tuple itself
    reply = amapi3.getversion(url, roots, cert, key, ({},))
    version = ok(reply)
    assert reply["geni_api"] == 3
    assert type(version["geni_single_allocation"]) is int
    assert set(version["geni_api_versions"]) == {"2", "3"}


def test_genilib_allocate_provision_start_delete(site: AmSite,  # noqa: F811
                                                 tmp_path: Path) -> None:
    url, roots, cert, key = _tls(site)
    creds = [_cred(site, tmp_path, "exp4")]
    slice_urn = SLICES[3]
    rspec = request(f'<node client_id="a" component_id="{NODE2}" exclusive="false"/>')
    allocated = ok(amapi3.allocate(url, roots, cert, key, creds, slice_urn, rspec))
    manifest = read_rspec(allocated["geni_rspec"])
    assert [(n.client_id, n.component_id) for n in manifest.nodes] == [("a", NODE2)]
    assert [s["geni_allocation_status"] for s in allocated["geni_slivers"]] == ["geni_allocated"]

    provisioned = ok(amapi3.provision(url, roots, cert, key, creds, slice_urn, {
        "geni_rspec_version": {"type": "GENI", "version": "3"},
        "geni_users": [{"urn": site.ids["alice"].gid.urn, "keys": ["ssh-rsa AAAAB3Nza alice"]}],
    }))
    login = read_rspec(provisioned["geni_rspec"]).nodes[0].services.logins[0]
    assert isinstance(login.port, int)  # geni-lib reads every login port as an int

    started = ok(amapi3.poa(url, roots, cert, key, creds, slice_urn, "geni_start"))
    assert [s["geni_operational_status"] for s in started] == ["geni_ready"]

    deleted = ok(amapi3.delete(url, roots, cert, key, creds, slice_urn))
    assert [s["geni_allocation_status"] for s in deleted] == ["geni_unallocated"]


def test_genilib_gets_errors_in_the_envelope(site: AmSite, tmp_path: Path) -> None:  # noqa: F811
    url, roots, cert, key = _tls(site)
    reply = amapi3.poa(url, roots, cert, key, [_cred(site, tmp_path, "exp4")], SLICES[3],
                       "geni_no_such_action")
    assert reply["code"]["geni_code"] == 13 and reply["value"] == ""
