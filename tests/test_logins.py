"""Security items 16 and 29: the sliver login (a path component and a user name) is derived
from the full slice name, safe, and distinct for distinct slices."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfa.errors import BadArgs
from sfa.logins import sliver_login
from sfa.xrn import hrn_to_urn

SAFE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def test_a_plain_slice_name_is_its_hrn_with_underscores() -> None:
    assert sliver_login("urn:publicid:IDN+plc:princeton+slice+codeen") == "plc_princeton_codeen"
    escaped = sliver_login("urn:publicid:IDN+emulab.net:proj+slice+exp1")  # emulab\\.net...
    assert escaped.startswith("emulab__net_proj_ex-") and len(escaped) == 32


def test_29_same_leaves_under_other_authorities_get_other_logins() -> None:
    nested = sliver_login(hrn_to_urn("plc.other.lab.aslice", "slice"))
    short = sliver_login(hrn_to_urn("plc.lab.aslice", "slice"))
    assert (nested, short) == ("plc_other_lab_aslice", "plc_lab_aslice")


def test_29_long_names_keep_a_readable_prefix_and_a_hash() -> None:
    one = sliver_login(hrn_to_urn("plc.a_very_long_authority_name.experiment_one", "slice"))
    two = sliver_login(hrn_to_urn("plc.a_very_long_authority_name.experiment_two", "slice"))
    assert one != two and SAFE.match(one) and SAFE.match(two)
    assert one.startswith("plc_a_very_long_aut") and len(one) == 32


def test_29_names_differing_only_in_case_are_one_name() -> None:
    assert sliver_login(hrn_to_urn("plc.lab.ASlice", "slice")) == sliver_login(
        hrn_to_urn("plc.lab.aslice", "slice"))


def test_29_a_hashed_login_never_equals_a_plain_one() -> None:
    # the underscore spelling of a plain name is not a plain name: it is hashed, with a dash
    plain = sliver_login(hrn_to_urn("plc.lab.a", "slice"))
    escaped = sliver_login(hrn_to_urn("plc.lab_a", "slice"))
    assert plain == "plc_lab_a" and "-" in escaped and escaped != plain


HOSTILE = ["a'b", 'a"b', "a<b", "..", "a;rm_-rf", "a$(id)", "a|b&c", "../../etc", "ä", "A-B"]


@pytest.mark.parametrize("leaf", HOSTILE)
def test_hostile_slice_names_become_safe_distinct_logins(leaf: str) -> None:
    urn = hrn_to_urn(f"plc.site.{leaf.replace('.', chr(92) + '.')}", "slice")
    login = sliver_login(urn)
    assert SAFE.match(login), login
    assert login != sliver_login(hrn_to_urn("plc.site.ab", "slice"))


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
               min_size=1, max_size=60))
def test_any_slice_name_gives_a_safe_login(leaf: str) -> None:
    try:
        urn = hrn_to_urn("plc.site." + leaf.replace("\\", "\\\\").replace(".", "\\."), "slice")
    except BadArgs:
        return
    assert SAFE.match(sliver_login(urn))


def test_a_non_slice_urn_is_refused() -> None:
    with pytest.raises(BadArgs):
        sliver_login("urn:publicid:IDN+plc+user+alice")


@given(st.lists(st.text(alphabet="abcAB._-1", min_size=1, max_size=12), min_size=2,
                max_size=2, unique_by=str.lower))
def test_29_distinct_slice_names_never_share_a_login(leaves: list[str]) -> None:
    urns = []
    for leaf in leaves:
        try:
            urns.append(hrn_to_urn("plc.site." + leaf.replace(".", "\\."), "slice"))
        except BadArgs:
            return
    assert sliver_login(urns[0]) != sliver_login(urns[1])
