"""Security item 16: the sliver login (a path component and a user name) is derived, safe."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfa.errors import BadArgs
from sfa.nodemanager.naming import sliver_login
from sfa.xrn import hrn_to_urn

SAFE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def test_planetlab_style_login() -> None:
    assert sliver_login("urn:publicid:IDN+plc:princeton+slice+codeen") == "princeton_codeen"
    assert sliver_login("urn:publicid:IDN+emulab.net:proj+slice+exp1") == "proj_exp1"


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
