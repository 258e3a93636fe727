"""The manifest's user elements: the same text as written by hand, parsed once per user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree

from sfa.aggregate import manifest as manifest_module
from sfa.aggregate.inventory import generate_nodes
from sfa.aggregate.manifest import USER_EXT_NS, manifest
from sfa.aggregate.slivers import Sliver, UserKeys
from sfa.rspecs.writer import write_rspec

AM_URN = "urn:publicid:IDN+plc+authority+am"


def test_user_elements_are_parsed_once_per_user_and_read_back_exactly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    manifest_module._user_element.cache_clear()
    parsed: list[Any] = []
    real = manifest_module.parse_xml

    def counted(text, **kw):
        parsed.append(text)
        return real(text, **kw)

    monkeypatch.setattr(manifest_module, "parse_xml", counted)
    nodes = {n.urn: n for n in generate_nodes("plc", 30)}
    when = datetime(2030, 1, 1, tzinfo=UTC)
    users = (UserKeys("urn:publicid:IDN+plc+user+al'i\"ce", ("ssh-rsa AAAA <x>&y", "k2")),
             UserKeys("urn:publicid:IDN+plc+user+bob", ()))
    slivers = [Sliver(urn=f"urn:publicid:IDN+plc+sliver+s{i}",
                      slice_urn="urn:publicid:IDN+plc+slice+exp", node_urn=urn,
                      client_id=f"n{i}", sliver_type="plab-vserver", exclusive=False,
                      expires=when, created=when, users=users)
               for i, urn in enumerate(nodes)]
    text = write_rspec(manifest(slivers, nodes, am_urn=AM_URN))
    assert len(parsed) == 2  # one per user, not per sliver
    root = etree.fromstring(text.encode())
    found = root.findall(f".//{{{USER_EXT_NS}}}services_user")
    assert len(found) == 60
    alice = found[0]
    assert alice.get("login") == "plc_exp" and alice.get("user_urn") == users[0].urn
    assert [k.text for k in alice] == ["ssh-rsa AAAA <x>&y", "k2"]
    assert [len(f) for f in found[:2]] == [2, 0]
