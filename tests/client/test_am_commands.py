"""sfi against real aggregates over TLS: every AM command in v3 and v2, several aggregates
at once, per-node output lines, and refusals shown as GENI codes."""

from __future__ import annotations

from pathlib import Path

from sfa.rspecs.reader import read_rspec
from sfa.timeutil import parse_rfc3339, utcnow
from tests.client.conftest import World, configure, sfi, sfi_json

EXP = "plc.princeton.exp1"


def _request(tmp_path: Path, *nodes: str) -> Path:
    path = tmp_path / "request.xml"
    path.write_text('<rspec xmlns="http://www.geni.net/resources/rspec/3" type="request">'
                    + "".join(f'<node client_id="n{i}" component_id="{urn}" '
                              'component_manager_id="urn:publicid:IDN+plc+authority+am"/>'
                              for i, urn in enumerate(nodes)) + "</rspec>")
    return path


def test_version_of_aggregates_in_parallel(world: World, alice_dir: Path) -> None:
    document = sfi_json(alice_dir, "version", "-a", "plc", "-a", "ple")
    assert document["aggregates"]["plc"]["urn"] == "urn:publicid:IDN+plc+authority+am"
    assert document["aggregates"]["ple"]["geni_api"] == 3
    v2 = sfi_json(alice_dir, "version", "-a", "plc", "-V", "2")
    assert v2["aggregates"]["plc"]["geni_api"] == 2
    unknown = sfi(alice_dir, "version", "-a", "nope")
    assert unknown.exit_code == 1 and unknown.output.startswith("BADARGS: unknown aggregate")


def test_resources_table_json_and_file(alice_dir: Path, tmp_path: Path) -> None:
    nodes = sfi_json(alice_dir, "resources")["nodes"]
    assert len([n for n in nodes if n["aggregate"] == "plc"]) == 8
    assert len([n for n in nodes if n["aggregate"] == "ple"]) == 4
    out = tmp_path / "ad.xml"
    sfi_json(alice_dir, "resources", "-a", "plc", "--available", "-o", str(out))
    assert read_rspec(out.read_text()).type == "advertisement"
    text = sfi(alice_dir, "resources", "-a", "ple", "-V", "2")
    assert text.exit_code == 0 and "urn:publicid:IDN+ple+node+node4" in text.output


def test_rspec_request_and_show(alice_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "req.xml"
    sfi_json(alice_dir, "rspec", "request", "--nodes", "3", "-a", "plc", "-o", str(out))
    request = read_rspec(out.read_text())
    assert request.type == "request" and len(request.nodes) == 3
    assert all((n.component_manager_id or "").endswith("plc+authority+am") for n in request.nodes)
    named = sfi_json(alice_dir, "rspec", "request", "--component-id", "node2",
                     "--component-id", "urn:publicid:IDN+ple+node+node1")
    nodes = read_rspec(named["rspec"]).nodes
    assert [n.component_id for n in nodes] == ["urn:publicid:IDN+plc+node+node2",
                                               "urn:publicid:IDN+ple+node+node1"]
    shown = sfi_json(alice_dir, "rspec", "show", str(out))
    assert len(shown["rspec"]["nodes"]) == 3
    too_many = sfi_json(alice_dir, "rspec", "request", "--nodes", "99", ok=False)
    assert too_many["errors"][0]["code"] == "INSUFFICIENT_NODES"


def test_rspec_request_carries_the_init_script(alice_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "init.sh"
    script.write_text("#!/bin/sh\necho 'hello from' \"$SFA_NODE_URN\" > hello.txt\n")
    made = sfi_json(alice_dir, "rspec", "request", "--nodes", "2", "-a", "plc",
                    "--init-script", str(script))
    assert read_rspec(made["rspec"]).init_script == script.read_text()


def test_v3_lifecycle_node_by_node(world: World, alice_dir: Path, tmp_path: Path) -> None:
    request = _request(tmp_path, "urn:publicid:IDN+plc+node+node1",
                       "urn:publicid:IDN+plc+node+node2")
    allocated = sfi(alice_dir, "allocate", "-a", "plc", EXP, str(request))
    assert allocated.exit_code == 0, allocated.output
    assert sorted(allocated.output.split("\n")[:2]) == ["Success on node1", "Success on node2"]
    provisioned = sfi_json(alice_dir, "provision", "-a", "plc", EXP)
    assert [r["ok"] for r in provisioned["results"]] == [True, True]
    for verb in ("start", "restart"):
        assert sfi_json(alice_dir, verb, "-a", "plc", EXP)["ok"]
    slivers = sfi_json(alice_dir, "status", "-a", "plc", EXP)["slivers"]
    assert {(s["node"], s["state"]) for s in slivers} == {("node1", "geni_ready"),
                                                         ("node2", "geni_ready")}
    described = sfi_json(alice_dir, "describe", "-a", "plc", EXP)["slivers"]
    assert {s["client_id"] for s in described} == {"n0", "n1"}
    renewed = sfi_json(alice_dir, "renew", "-a", "plc", EXP, "+2d")
    assert len(renewed["results"]) == 2
    for sliver in sfi_json(alice_dir, "status", "-a", "plc", EXP)["slivers"]:
        assert (parse_rfc3339(sliver["expires"]) - utcnow()).days in (1, 2)
    assert sfi_json(alice_dir, "stop", "-a", "plc", EXP)["ok"]
    v2 = sfi_json(alice_dir, "status", "-a", "plc", "-V", "2", EXP)
    assert {s["state"] for s in v2["slivers"]} == {"configuring"}  # v2 has no "stopped"
    deleted = sfi(alice_dir, "delete", "-a", "plc", EXP)
    assert deleted.exit_code == 0 and "Success on node1" in deleted.output
    assert sfi_json(alice_dir, "status", "-a", "plc", EXP)["slivers"] == []
    assert not world.plc.driver.slivers or all(
        "exp1" not in urn for urn in world.plc.driver.slivers)


def test_refusals_show_code_and_change_nothing(world: World, tmp_path: Path) -> None:
    bob = configure(tmp_path / "bob", world, "bob", hrn="ple.bob")
    before = dict(world.plc.driver.slivers)
    request = _request(tmp_path, "urn:publicid:IDN+plc+node+node3")
    refused = sfi(bob, "allocate", "-a", "plc", EXP, str(request))
    assert refused.exit_code == 1
    assert refused.output.startswith("Error on plc: ")  # not a researcher of exp1
    assert "FORBIDDEN" in refused.output or "SEARCHFAILED" in refused.output
    assert world.plc.driver.slivers == before
    bad_time = sfi(bob, "renew", "-a", "plc", EXP, "tomorrow")
    assert bad_time.exit_code == 1 and bad_time.output.startswith("BADARGS: not a time")


def test_v2_cannot_allocate(alice_dir: Path, tmp_path: Path) -> None:
    request = _request(tmp_path, "urn:publicid:IDN+plc+node+node4")
    result = sfi_json(alice_dir, "allocate", "-a", "plc", "-V", "2", EXP, str(request), ok=False)
    assert result["results"][0]["code"] == "BADVERSION"
