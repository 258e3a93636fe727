"""Naming: every rule and example of spec/naming.md, and round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfa import xrn as xrn_module
from sfa.errors import BadArgs, GeniCode
from sfa.xrn import (
    MAX_HRN_LENGTH,
    Xrn,
    hrn_authority,
    hrn_join,
    hrn_leaf,
    hrn_split,
    hrn_to_urn,
    is_authority_for,
    is_authority_type,
    name_key,
    publicid_to_urn,
    same_name,
    urn_to_hrn,
    urn_to_publicid,
    validate_hrn,
    validate_slice_name,
    validate_sliver_name,
    validate_urn,
    validate_user_name,
)

SPEC_EXAMPLES = [
    ("plc.princeton.alice", "user", "urn:publicid:IDN+plc:princeton+user+alice"),
    ("plc.princeton", "authority", "urn:publicid:IDN+plc:princeton+authority+sa"),
    ("plc", "authority+am", "urn:publicid:IDN+plc+authority+am"),
    (r"emulab\.net.proj.exp1", "slice", "urn:publicid:IDN+emulab.net:proj+slice+exp1"),
    (r"ple.inria.node1\.inria\.fr", "node", "urn:publicid:IDN+ple:inria+node+node1.inria.fr"),
]


@pytest.mark.parametrize(("hrn", "type", "urn"), SPEC_EXAMPLES)
def test_spec_examples_both_ways(hrn: str, type: str, urn: str) -> None:
    assert hrn_to_urn(hrn, type) == urn
    assert urn_to_hrn(urn) == (hrn, type)


@pytest.mark.parametrize("service", ["sa", "am", "sm", "cm", "ma"])
def test_authority_services(service: str) -> None:
    urn = f"urn:publicid:IDN+plc:princeton+authority+{service}"
    expected_type = "authority" if service == "sa" else f"authority+{service}"
    assert urn_to_hrn(urn) == ("plc.princeton", expected_type)
    assert hrn_to_urn("plc.princeton", f"authority+{service}") == urn
    assert hrn_to_urn("plc.princeton", "authority+sa") == hrn_to_urn("plc.princeton", "authority")


def test_prefix_is_case_insensitive_and_output_canonical() -> None:
    assert urn_to_hrn("URN:PUBLICID:idn+plc:princeton+user+alice") == (
        "plc.princeton.alice",
        "user",
    )
    assert Xrn.from_urn("URN:publicid:IDN+plc+authority+SA").urn == (
        "urn:publicid:IDN+plc+authority+sa"
    )


def test_escaping_leading_dots_and_runs_of_dots() -> None:
    assert hrn_split(r"x.\.a") == ["x", ".a"]
    assert hrn_split(r"x.a\.\.b") == ["x", "a..b"]
    assert hrn_split(r"x.a\\b") == ["x", "a\\b"]
    assert hrn_join(["x", ".a", "a..b", "c."]) == r"x.\.a.a\.\.b.c\."
    assert hrn_to_urn(r"x.\.a", "user") == "urn:publicid:IDN+x+user+.a"
    assert urn_to_hrn("urn:publicid:IDN+x+user+a..b") == (r"x.a\.\.b", "user")
    assert urn_to_hrn("urn:publicid:IDN+.x:y+user+z") == (r"\.x.y.z", "user")


def test_leaf_and_authority() -> None:
    assert hrn_leaf(r"ple.inria.node1\.inria\.fr") == "node1.inria.fr"
    assert hrn_authority(r"ple.inria.node1\.inria\.fr") == "ple.inria"
    assert hrn_authority(r"emulab\.net.proj") == r"emulab\.net"
    assert hrn_authority("plc") == ""


def test_is_authority_for_is_component_wise() -> None:
    assert is_authority_for("plc", "plc.princeton.x")
    assert is_authority_for("plc.princeton", "plc.princeton.x")
    assert is_authority_for("plc.princeton", "plc.princeton")
    assert not is_authority_for("plc.prince", "plc.princeton.x")
    assert not is_authority_for("plc.princeton.x", "plc.princeton")
    assert not is_authority_for("ple", "plc.x")
    assert not is_authority_for(r"emulab", r"emulab\.net.x")
    assert not is_authority_for("", "plc")
    assert not is_authority_for("plc", "plc..x")


def test_name_may_contain_plus_and_colon() -> None:
    urn = "urn:publicid:IDN+emulab.net+interface+switch1+port+2"
    assert urn_to_hrn(urn) == (r"emulab\.net.switch1+port+2", "interface")
    assert hrn_to_urn(r"emulab\.net.switch1+port+2", "interface") == urn
    urn = "urn:publicid:IDN+emulab.net+interface+pc1:eth0"
    assert urn_to_hrn(urn) == (r"emulab\.net.pc1:eth0", "interface")
    assert hrn_to_urn(r"emulab\.net.pc1:eth0", "interface") == urn


def test_percent_escapes_and_transcription() -> None:
    # %-escapes are decoded on input and produced on output.
    assert urn_to_hrn("urn:publicid:IDN+a%3Ab+user+x%25y%2Bz") == ("a:b.x%y+z", "user")
    assert hrn_to_urn("a:b.x%y", "user") == "urn:publicid:IDN+a%3Ab+user+x%25y"
    assert hrn_to_urn("a+b.c", "user") == "urn:publicid:IDN+a%2Bb+user+c"
    # `;` stands for `::` (RFC 3151)
    assert urn_to_hrn("urn:publicid:IDN+a+user+b;c") == ("a.b::c", "user")
    assert hrn_to_urn("a.b::c", "user") == "urn:publicid:IDN+a+user+b;c"
    # characters outside the URN alphabet are escaped on output
    assert hrn_to_urn("a.o'neil", "user") == "urn:publicid:IDN+a+user+o%27neil"
    assert hrn_to_urn("a.caf\u00e9", "user") == "urn:publicid:IDN+a+user+caf%C3%A9"
    assert urn_to_hrn("urn:publicid:IDN+a+user+caf%C3%A9") == ("a.caf\u00e9", "user")


def test_rfc3151_publicid() -> None:
    publicid = "IDN plc//princeton user alice"
    urn = "urn:publicid:IDN+plc:princeton+user+alice"
    assert publicid_to_urn(publicid) == urn
    assert urn_to_publicid(urn) == publicid
    assert publicid_to_urn("IDN a::b  c+d  e") == "urn:publicid:IDN+a;b+c%2Bd+e"
    assert urn_to_publicid("urn:publicid:IDN+a;b+c%2Bd+e") == "IDN a::b c+d e"


def _refused(func, *args) -> BadArgs:
    with pytest.raises(BadArgs) as info:
        func(*args)
    assert info.value.code == GeniCode.BADARGS
    return info.value


@pytest.mark.parametrize(
    "hrn",
    ["", "plc..x", ".plc", "plc.", "plc. x", "plc.x\ny", "plc.\x00", "plc.a\\b", "plc.a\\",
     "a" * (MAX_HRN_LENGTH + 1), "plc.\tx"],
)
def test_bad_hrns_refused(hrn: str) -> None:
    _refused(validate_hrn, hrn)
    _refused(hrn_to_urn, hrn, "user")


def test_non_string_names_refused() -> None:
    _refused(validate_hrn, 42)
    _refused(urn_to_hrn, None)
    _refused(hrn_to_urn, "plc.x", "")


@pytest.mark.parametrize(
    "urn",
    [
        "",
        "plc.princeton.alice",
        "urn:publicid:IDN",
        "urn:publicid:IDN+plc+user",
        "urn:publicid:IDN++user+alice",
        "urn:publicid:IDN+plc::x+user+alice",
        "urn:publicid:IDN+plc+user+",
        "urn:publicid:IDN+plc+authority+x%2Fy",
        "urn:publicid:IDN+plc+authority+9",
        "urn:publicid:IDN+plc+bad type+x",
        "urn:publicid:IDN+plc+user+a b",
        "urn:publicid:IDN+plc+user+a\nb",
        "urn:publicid:IDN+plc+user+a\x00b",
        'urn:publicid:IDN+plc+user+a"b',
        "urn:publicid:IDN+plc+user+<script>",
        "urn:publicid:IDN+plc+user+a\\b",
        "urn:publicid:IDN+plc+user+%2",
        "urn:publicid:IDN+plc+user+%zz",
        "urn:publicid:IDN+plc+user+%FF",
        "urn:publicid:IDN+plc+user+%0A",
        "urn:publicid:IDN+plc+user+" + "a" * 5000,
    ],
)
def test_bad_urns_refused(urn: str) -> None:
    _refused(urn_to_hrn, urn)
    _refused(validate_urn, urn)


def test_foreign_authority_names_are_read_never_written() -> None:
    """C-BAS signs as `+authority+ca`: read as an authority, but we never write such a name."""
    cbas = "urn:publicid:IDN+cbas.eict.de+authority+ca"
    assert urn_to_hrn(cbas) == ("cbas\\.eict\\.de", "authority+ca")
    assert is_authority_type(urn_to_hrn(cbas)[1]) and is_authority_type("authority")
    assert not is_authority_type("user")
    _refused(validate_urn, cbas)
    _refused(hrn_to_urn, "cbas\\.eict\\.de", "authority+ca")


def test_validate_urn_type_check() -> None:
    node = "urn:publicid:IDN+plc:princeton+node+n1"
    sliver = "urn:publicid:IDN+plc:princeton+sliver+s1"
    assert validate_urn(sliver, "sliver").leaf == "s1"
    error = _refused(validate_urn, node, "sliver")
    assert "sliver" in error.message and "node" in error.message
    assert validate_urn(node, ("sliver", "node")).type == "node"
    assert validate_urn("urn:publicid:IDN+plc+authority+sa", "authority+sa").type == "authority"
    _refused(validate_urn, "urn:publicid:IDN+plc+authority+am", "authority")


def test_xrn_values() -> None:
    xrn = Xrn.parse("urn:publicid:IDN+plc:princeton+user+alice")
    assert (xrn.hrn, xrn.type, xrn.leaf) == ("plc.princeton.alice", "user", "alice")
    assert xrn.authority_hrn == "plc.princeton"
    assert xrn.authority_urn == "urn:publicid:IDN+plc:princeton+authority+sa"
    assert not xrn.is_authority
    assert str(xrn) == xrn.urn
    assert Xrn.parse("plc.princeton.alice", "user") == xrn
    root = Xrn.from_hrn("plc", "authority+sa")
    assert root.type == "authority" and root.is_authority and root.authority_urn == ""
    _refused(Xrn.parse, "plc.princeton.alice")
    _refused(Xrn.parse, "urn:publicid:IDN+plc:princeton+user+alice", "slice")
    _refused(Xrn.from_hrn, "alice", "user")
    _refused(Xrn.from_hrn, "plc", "authority+xx")


def test_slice_sliver_user_names() -> None:
    assert validate_slice_name("exp-1") == "exp-1"
    assert validate_slice_name("a" * 19)
    for bad in ["", "a" * 20, "-exp", "exp_1", "exp.1", "exp 1", "ex\np", 7]:
        _refused(validate_slice_name, bad)
    assert validate_sliver_name("s1_a.b-c")
    for bad in ["", "a/b", "a b", "a\x00", "../x"]:
        _refused(validate_sliver_name, bad)
    assert validate_user_name("alice")
    assert validate_user_name("alice_smith_long_name")
    for bad in ["", "1alice", "al ice", "al\x07ice", "a" * 65, "al/ice"]:
        _refused(validate_user_name, bad)


# --- properties -------------------------------------------------------------------------------

_component = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp", "Cf", "Co", "Cn"),
        blacklist_characters="\x85\xa0",
    ),
    min_size=1,
    max_size=12,
)
_types = st.sampled_from(["user", "slice", "node", "sliver", "interface", "link"])
_services = st.sampled_from(["authority", "authority+am", "authority+sm", "authority+cm",
                             "authority+ma"])


@given(st.lists(_component, min_size=2, max_size=5), _types)
def test_hrn_urn_hrn_identity(parts: list[str], type: str) -> None:
    hrn = hrn_join(parts)
    assert hrn_split(hrn) == parts
    assert urn_to_hrn(hrn_to_urn(hrn, type)) == (hrn, type)


@given(st.lists(_component, min_size=1, max_size=5), _services)
def test_authority_hrn_urn_hrn_identity(parts: list[str], type: str) -> None:
    hrn = hrn_join(parts)
    assert urn_to_hrn(hrn_to_urn(hrn, type)) == (hrn, type)


@given(st.lists(_component, min_size=2, max_size=5), _types)
def test_urn_hrn_urn_identity(parts: list[str], type: str) -> None:
    urn = hrn_to_urn(hrn_join(parts), type)
    hrn, parsed_type = urn_to_hrn(urn)
    assert hrn_to_urn(hrn, parsed_type) == urn
    assert Xrn.from_urn(urn).urn == urn


def test_names_differing_only_in_case_are_one_name() -> None:
    assert same_name("plc.lab.ASLICE", "plc.lab.aslice")
    assert same_name("urn:publicid:IDN+plc:lab+slice+ASLICE",
                     "URN:publicid:IDN+PLC:lab+slice+aslice")
    assert not same_name("plc.lab.aslice", "plc.lab.aslice2")
    assert name_key("plc.Lab.X") == "plc.lab.x"
    # ASCII letters only, as SQLite's NOCASE collation (the registry's unique index) folds
    assert not same_name("plc.lab.Ä", "plc.lab.ä")


def test_authority_is_component_wise_and_ignores_case() -> None:
    assert is_authority_for("PLC.Lab", "plc.lab.alice")
    assert not is_authority_for("plc.la", "plc.LAB.alice")


# --- the name caches ----------------------------------------------------------------------------


def test_parsed_names_are_cached_bounded_and_not_shared_mutably() -> None:
    urn = "urn:publicid:IDN+plc:princeton+slice+cached"
    assert urn_to_hrn(urn) == urn_to_hrn(urn) == ("plc.princeton.cached", "slice")
    parts = hrn_split("plc.princeton.cached")
    parts.append("changed by the caller")
    assert hrn_split("plc.princeton.cached") == ["plc", "princeton", "cached"]
    for cached in (xrn_module._urn_to_hrn, xrn_module._hrn_split, xrn_module._hrn_to_urn):
        info = cached.cache_info()
        assert info.maxsize == xrn_module.NAME_CACHE_SIZE and info.currsize <= info.maxsize
    for n in range(xrn_module.NAME_CACHE_SIZE + 10):
        hrn_to_urn(f"plc.n{n}", "node")
    assert xrn_module._hrn_to_urn.cache_info().currsize == xrn_module.NAME_CACHE_SIZE


def test_long_names_are_parsed_but_not_kept() -> None:
    escaped = xrn_module.CACHED_NAME_LENGTH // 3 + 1  # %61 is `a`: a long URN, a short HRN
    long_urn = "urn:publicid:IDN+plc+slice+" + "%61" * escaped
    before = xrn_module._urn_to_hrn.cache_info()
    assert urn_to_hrn(long_urn) == ("plc." + "a" * escaped, "slice")
    after = xrn_module._urn_to_hrn.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)  # the cache not asked


def test_bad_names_are_refused_every_time_and_non_strings_clearly() -> None:
    for _ in range(2):
        with pytest.raises(BadArgs):
            urn_to_hrn("urn:publicid:IDN+plc+slice+bad name")
        with pytest.raises(BadArgs):
            hrn_split("plc..x")
    for value in (["a list"], None, 3):
        with pytest.raises(BadArgs):
            urn_to_hrn(value)  # type: ignore[arg-type]
        with pytest.raises(BadArgs):
            hrn_split(value)  # type: ignore[arg-type]
        with pytest.raises(BadArgs):
            hrn_to_urn(value, "slice")  # type: ignore[arg-type]


def test_whitespace_and_control_characters_are_refused_wherever_they_are() -> None:
    """The check is `str.isprintable()` plus the space: every whitespace character."""
    unicode_spaces = "\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000\x85\xa0"
    for ch in [*map(chr, range(0x100)), *unicode_spaces]:
        refused = ch.isspace() or not ch.isprintable()
        for hrn in (f"plc.a{ch}b", f"plc\\.x.{ch}"):
            if refused:
                with pytest.raises(BadArgs, match="whitespace or a control"):
                    hrn_split(hrn)
            elif ch not in ".\\":
                assert hrn_split(hrn)[-1].endswith(ch if hrn.endswith(ch) else "b")
