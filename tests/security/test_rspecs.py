"""spec/security.md items 13-16 sent over TLS: hostile XML in RSpecs and in the XML-RPC body,
oversized and over-counted requests, wrong RSpec types, and injection through names."""

from __future__ import annotations

import os
import resource
import socket
from pathlib import Path
from typing import Any

import pytest

from sfa.errors import GeniCode
from tests.security.conftest import (
    GENI3,
    World,
    files_under,
    no_traceback,
    ok,
    post_raw,
    refused_by_aggregate,
    refused_by_registry,
    request,
    slice_urn,
    split_url,
)
from tests.server.conftest import client_context

EXP5 = slice_urn("exp5")
ONE_NODE = request('<node client_id="a" exclusive="false"/>')
XML_HEAD = '<?xml version="1.0"?>'
LAUGHS = ('<!DOCTYPE rspec [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
          '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>')
XXE = '<!DOCTYPE rspec [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
NET = '<!DOCTYPE rspec SYSTEM "http://127.0.0.1:9/evil.dtd">'
XINCLUDE = ('<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"'
            ' parse="text"/>')

HOSTILE_RSPECS = {
    "billion-laughs": XML_HEAD + LAUGHS + request('<node client_id="&c;"/>'),
    "xxe": XML_HEAD + XXE + request('<node client_id="&x;"/>'),
    "network-dtd": XML_HEAD + NET + ONE_NODE,
    "plain-dtd": XML_HEAD + "<!DOCTYPE rspec []>" + ONE_NODE,
    "xinclude": request(XINCLUDE),
    "deep-nesting": request("<a>" * 5000 + "</a>" * 5000),
    "manifest-as-request": request('<node client_id="a"/>', kind="manifest"),
    "advertisement-as-request": request('<node client_id="a"/>', kind="advertisement"),
}


def allocate(world: World, rspec: str, urn: str = EXP5) -> Any:
    return world.am().Allocate(urn, world.cred("exp5"), rspec, {})


# 13 and 15 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(HOSTILE_RSPECS))
def test_13_15_hostile_rspec_is_badargs(world: World, name: str) -> None:
    output = refused_by_aggregate(world, lambda: allocate(world, HOSTILE_RSPECS[name]),
                                  GeniCode.BADARGS)
    assert "root:" not in output  # /etc/passwd never echoed back


def test_15_wrong_namespace_and_unknown_version(world: World) -> None:
    old = ONE_NODE.replace("rspec/3", "rspec/2")
    refused_by_aggregate(world, lambda: allocate(world, old), GeniCode.BADVERSION)
    unknown = {"geni_rspec_version": {"type": "GENI", "version": "9"}}
    refused_by_aggregate(world, lambda: world.am().ListResources(world.cred("exp5"), unknown),
                         GeniCode.BADVERSION)


def test_13_entities_in_the_xml_rpc_body(world: World) -> None:
    body = (XML_HEAD + LAUGHS.replace("rspec", "methodCall")
            + "<methodCall><methodName>GetVersion</methodName><params><param><value>&c;"
              "</value></param></params></methodCall>").encode()
    before = world.dump()
    for url in (world.site.registry.url, world.site.aggregate.url + "am/3"):
        reply = post_raw(world, url, body)
        assert b"faultCode" in reply or b"geni_code" in reply
        assert b"<int>1</int>" in reply and b"aaaaaaaaaa" not in reply
        no_traceback(reply.decode())
    assert world.dump() == before
    world.answers()


# 14 -------------------------------------------------------------------------------------------

def test_14_a_request_over_the_size_limit_is_toobig(world: World) -> None:
    limit = world.deployment.config.limits.max_request_bytes
    padding = "<!--" + "x" * (limit + 1000) + "-->"
    refused_by_aggregate(world, lambda: allocate(world, ONE_NODE.replace("</rspec>",
                                                                         padding + "</rspec>")),
                         GeniCode.TOOBIG)


def test_14_a_100_mb_rspec_streamed_is_cut_off_unparsed(world: World) -> None:
    """Sent once, in pieces: the server counts and drops it, never holds 100 MB."""
    before = world.dump()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; the server is in-process
    host, port, path = split_url(world.site.aggregate.url + "am/3")
    total, piece = 100 * 1024 * 1024, b"<node client_id='n'/>" * 4096
    context = client_context(world.root_file, world.ids["alice"])
    sent, reply = 0, b""
    with socket.create_connection((host, port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall((f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
                     f"Content-Length: {total}\r\nConnection: close\r\n\r\n").encode())
        try:
            while sent < total:
                tls.sendall(piece[: total - sent])
                sent += len(piece)
            while chunk := tls.recv(65536):
                reply += chunk
        except OSError:
            pass  # the server cut the stream: what it does past a few times its limit
    assert sent < total or b"TOOBIG" in reply or b"<int>6</int>" in reply
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mb < 64, f"the server's memory grew by {grown_mb:.0f} MB"
    assert world.dump() == before
    world.answers()


def test_14_a_hundred_thousand_nodes_are_toobig(world: World) -> None:
    nodes = [f'<node client_id="n{i}"/>' for i in range(100_000)]
    rspec = request(*nodes)
    assert len(rspec) < world.deployment.config.limits.max_request_bytes
    refused_by_aggregate(world, lambda: allocate(world, rspec), GeniCode.TOOBIG)


# 16 -------------------------------------------------------------------------------------------

NASTY = ["'", '"', "<", "../", "\n", ";", "$(touch pwned)", "`id`", "|", "&", "*"]


@pytest.mark.parametrize("bad", NASTY, ids=[repr(b) for b in NASTY])
def test_16_injection_in_slice_urns_at_the_aggregate(world: World, bad: str) -> None:
    urn = slice_urn("exp5" + bad.replace("\n", "%0A"))
    output = refused_by_aggregate(world, lambda: allocate(world, ONE_NODE, urn=urn),
                                  (GeniCode.BADARGS, GeniCode.CREDENTIAL_MISMATCH))
    assert "pwned" not in os.listdir(Path.cwd())
    assert output


def test_16_injection_in_registry_names(world: World) -> None:
    pi = world.registry("pi")
    authority = pi.GetCredential([world.creds["pi"]], "plc.princeton", "authority")
    for bad in [*NASTY, "\x01"]:
        hrn = f"plc.princeton.x{bad}y"
        _refused_names(world, pi, authority, hrn)


def _refused_names(world: World, pi: Any, authority: str, hrn: str) -> None:
    """Registering `hrn` is BADARGS; looking it up finds nothing (or is BADARGS)."""
    record = {"hrn": hrn, "type": "slice"}
    refused_by_registry(world, lambda: pi.Register(record, [authority]), GeniCode.BADARGS)
    refused_by_registry(world, lambda: pi.Resolve(hrn, [authority], {}),
                        (GeniCode.BADARGS, GeniCode.SEARCHFAILED))


def test_16_nul_in_a_name_is_refused(world: World) -> None:
    refused_by_aggregate(world, lambda: allocate(world, ONE_NODE, urn=EXP5 + "\x00"),
                         GeniCode.BADARGS)


def test_16_client_ids_never_reach_a_path(world: World) -> None:
    """Hostile client_ids are names only: the sliver directories are derived from the slice."""
    outside = world.deployment.directory.parent
    around = sorted(p.name for p in outside.iterdir())
    ids = ["../../escape", "a;touch pwned", "$(touch pwned)", "x'\"&lt;y", "/etc/passwd"]
    nodes = [f'<node client_id="{i.replace(chr(34), "&quot;")}" exclusive="false"/>'
             for i in ids[:2]]
    am, creds = world.am(), world.cred("exp5")
    ok(am.Allocate(EXP5, creds, request(*nodes), {}))
    try:
        ok(am.Provision([EXP5], creds, {"geni_rspec_version": GENI3}))
        slivers = [p for p, _ in files_under(world.deployment.directory)
                   if Path(p).parent.name == "slivers"]
        assert len(slivers) == 2
        for path, _ in files_under(world.deployment.directory):
            parts = Path(path).parts
            assert "pwned" not in path and "escape" not in path
            if "slivers" in parts:
                assert parts[0] == "nodes" and parts[2] == "slivers"
        assert sorted(p.name for p in outside.iterdir()) == around
        assert "pwned" not in os.listdir(Path.cwd())
    finally:
        ok(am.Delete([EXP5], creds, {}))
