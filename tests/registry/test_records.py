"""The record model's wire form: spec names out, aliases in, bad input refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sfa.errors import BadArgs, Forbidden, MissingArgs
from sfa.registry.records import (
    AuthorityRecord,
    NodeRecord,
    SliceRecord,
    UserRecord,
    parse_wire_fields,
    record_from_wire,
    wire_name,
)
from sfa.registry.referral import Referrals

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_to_wire_uses_spec_names_and_hides_private() -> None:
    user = UserRecord(hrn="plc.pri.alice", email="a@x", keys=["ssh-rsa K"], slices=["plc.pri.s"],
                      date_created=WHEN, last_updated=WHEN)
    wire = user.to_wire()
    assert wire["reg-urn"] == "urn:publicid:IDN+plc:pri+user+alice"
    assert (wire["type"], wire["authority"], wire["email"]) == ("user", "plc.pri", "a@x")
    assert wire["reg-keys"] == ["ssh-rsa K"] and wire["reg-slices"] == ["plc.pri.s"]
    assert wire["reg-pi-authorities"] == [] and wire["date_created"] == "2026-12-01T12:00:00Z"
    assert "gid" not in wire  # None is left out: XML-RPC has no nil
    assert "email" not in user.to_wire(include_private=False)
    sl = SliceRecord(hrn="plc.pri.s", researchers=["plc.pri.alice"], expires=WHEN).to_wire()
    assert sl["reg-researchers"] == ["plc.pri.alice"] and sl["expires"] == "2026-12-01T12:00:00Z"
    auth = AuthorityRecord(hrn="plc.pri", pis=["plc.pri.bob"], name="Princeton").to_wire()
    assert auth["reg-urn"] == "urn:publicid:IDN+plc:pri+authority+sa"
    assert auth["reg-pis"] == ["plc.pri.bob"] and auth["authority"] == "plc"
    node = NodeRecord(hrn="ple.inria.node1\\.inria\\.fr", hostname="node1.inria.fr").to_wire()
    assert node["reg-urn"] == "urn:publicid:IDN+ple:inria+node+node1.inria.fr"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"hrn": "plc.pri.s", "type": "slice", "researcher": "plc.pri.alice"},
         {"researchers": ["plc.pri.alice"]}),
        ({"hrn": "plc.pri.s", "type": "slice",
          "reg-researchers": ["urn:publicid:IDN+plc:pri+user+bob"]},
         {"researchers": ["plc.pri.bob"]}),
        ({"hrn": "plc.pri", "type": "authority", "pi": ["plc.pri.bob"]}, {"pis": ["plc.pri.bob"]}),
        ({"hrn": "plc.pri.u", "type": "user", "keys": "ssh-rsa K"}, {"keys": ["ssh-rsa K"]}),
        ({"hrn": "plc.pri.s", "type": "slice", "expires": "2026-12-01T13:00:00+01:00"},
         {"expires": WHEN}),
        ({"hrn": "plc.pri.u", "type": "user", "reg-slices": ["x"], "date_created": "x"}, {}),
    ],
)
def test_wire_aliases_and_computed_fields(data: dict[str, Any], expected: dict[str, Any]) -> None:
    assert parse_wire_fields(data, data["type"]) == expected


def test_record_from_wire_by_urn() -> None:
    record = record_from_wire({"reg-urn": "urn:publicid:IDN+plc:pri+slice+s1", "url": "http://x"})
    assert isinstance(record, SliceRecord) and record.hrn == "plc.pri.s1"
    assert record.url == "http://x"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"hrn": "plc.pri.u", "type": "user", "gid": "PEM"}, Forbidden),
        ({"hrn": "plc.pri.u"}, MissingArgs),
        ({"type": "user"}, MissingArgs),
        ({"hrn": "plc.pri.u", "type": "sliver"}, BadArgs),
        ({"hrn": "plc..u", "type": "user"}, BadArgs),
        ({"hrn": "plc.pri.u", "type": "user", "email": "no-at-sign"}, BadArgs),
        ({"hrn": "plc.pri.u", "type": "user", "email": 7}, BadArgs),
        ({"hrn": "plc.pri.u", "type": "user", "keys": ["k", 3]}, BadArgs),
        ({"hrn": "plc.pri.s", "type": "slice", "description": "bad\x00nul"}, BadArgs),
        ({"hrn": "plc.pri.s", "type": "slice", "researcher": ["a b"]}, BadArgs),
        ({"hrn": "plc.pri.s", "type": "slice", "researcher": ["x"],
          "reg-researchers": ["y"]}, BadArgs),
        ({"reg-urn": "urn:publicid:IDN+plc:pri+slice+s1", "type": "user"}, BadArgs),
        ({"reg-urn": "urn:publicid:IDN+plc:pri+slice+s1", "hrn": "plc.pri.other"}, BadArgs),
        ({"hrn": "plc.pri.s", "type": "slice", "researcher": ["u"] * 5000}, BadArgs),
        ("not a struct", BadArgs),
    ],
)
def test_bad_wire_records_are_refused(data: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        record_from_wire(data)


def test_wire_name_prefers_urn() -> None:
    xrn = wire_name({"urn": "urn:publicid:IDN+plc+authority+sa"})
    assert (xrn.hrn, xrn.type) == ("plc", "authority")


def test_referrals_longest_prefix_wins() -> None:
    referrals = Referrals("plc", {"ple": "https://a", "plc.remote": "https://b",
                                  "ple.inria": "https://c"})
    assert referrals.is_ours("plc.pri.alice")
    assert not referrals.is_ours("plc.remote.x")
    assert referrals.referral_for("plc.remote.x").url == "https://b"  # type: ignore[union-attr]
    assert referrals.referral_for("ple.inria.x").url == "https://c"  # type: ignore[union-attr]
    assert referrals.referral_for("ple.upmc.x").url == "https://a"  # type: ignore[union-attr]
    assert referrals.referral_for("plc.remotely") is None  # component-wise, not by prefix
    assert referrals.referral_for("other.x") is None and not referrals.is_ours("other.x")
