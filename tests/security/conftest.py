"""One authority served for real over TLS for every attack class of spec/security.md: the
registry, the aggregate on the node-manager driver, and two node managers, with alice's slices.

`refused_by_registry` / `refused_by_aggregate` / `refused_by_node` send one attack and prove the
three things the spec asks: the right GENI code with no traceback, the service still answers,
and nothing changed in any database or under the deployment directory.
"""

from __future__ import annotations

import socket
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sfa.aggregate.store import AggregateStore
from sfa.errors import GeniCode
from sfa.nodemanager.store import NodeStore
from sfa.server.am_api import AGGREGATE_DB
from sfa.storage.registry_schema import open_registry_database
from sfa.trust.keys import generate_private_key
from tests.server.conftest import Identity, client_context, proxy
from tests.server.nm_site import NmSite, build_deployment, node_proxy, start_site, stop_site

SLICES = ["exp1", "exp2", "exp3", "exp4", "exp5", "exp6"]
GENI3 = {"type": "GENI", "version": "3"}
RSPEC_NS = "http://www.geni.net/resources/rspec/3"
SQLITE_SIDE_FILES = ("-wal", "-shm")


def slice_urn(name: str) -> str:
    return f"urn:publicid:IDN+plc:princeton+slice+{name}"


def request(*nodes: str, kind: str = "request") -> str:
    return f'<rspec xmlns="{RSPEC_NS}" type="{kind}">' + "".join(nodes) + "</rspec>"


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text, text


@dataclass
class World:
    """The running authority and what a test needs to attack it."""

    site: NmSite

    @property
    def deployment(self) -> Any:
        return self.site.deployment

    @property
    def root_file(self) -> Path:
        return self.site.root_file

    @property
    def ids(self) -> dict[str, Identity]:
        return self.site.ids

    @property
    def creds(self) -> dict[str, str]:
        return self.site.creds

    def registry(self, who: str | None = "alice", identity: Identity | None = None) -> Any:
        chosen = identity or (self.ids[who] if who else None)
        return proxy(self.site.registry.url, self.root_file, chosen)

    def am(self, who: str | None = "alice", identity: Identity | None = None) -> Any:
        chosen = identity or (self.ids[who] if who else None)
        return proxy(self.site.aggregate.url + "am/3", self.root_file, chosen)

    def node(self, node_urn: str, who: str = "alice") -> Any:
        return node_proxy(self.site.nodes[node_urn].url, self.root_file, self.ids[who])

    def cred(self, name: str) -> list[dict[str, Any]]:
        return self.site.cred(name)

    def wrap(self, xml: str) -> list[dict[str, Any]]:
        """A v3 credential list holding one (possibly forged) credential document."""
        value = xmlrpc.client.Binary(xml.encode())
        return [{"geni_type": "geni_sfa", "geni_version": 3, "geni_value": value}]

    def dump(self) -> dict[str, Any]:
        """Every row of every database and every file under the deployment directory."""
        state: dict[str, Any] = {}
        registry = open_registry_database(self.deployment.registry_db)
        try:
            state["registry"] = registry.dump()
        finally:
            registry.close()
        store = AggregateStore(self.deployment.db_dir / AGGREGATE_DB)
        try:
            state["aggregate"] = store.database.dump()
        finally:
            store.close()
        for node_urn in self.site.nodes:
            path = self.deployment.nodes_dir / node_urn.rsplit("+", 1)[1] / "db" / "node.sqlite"
            node = NodeStore(path)
            try:
                state[node_urn] = node.database.dump()
            finally:
                node.database.close()
        state["files"] = files_under(self.deployment.directory)
        return state

    def answers(self) -> None:
        """Every service still answers a valid call."""
        assert self.registry(None).GetVersion()["hrn"] == "plc"
        reply = self.am(None).GetVersion()
        assert reply["code"]["geni_code"] == 0 and reply["value"]["geni_api"] == 3
        for node_urn in self.site.nodes:
            assert self.node(node_urn).GetVersion()["code"]["geni_code"] == 0


def post_raw(world: World, url: str, body: bytes) -> bytes:
    """One raw HTTPS POST of `body`; the reply body."""
    host, port, path = split_url(url)
    context = client_context(world.root_file, world.ids["alice"])
    with socket.create_connection((host, port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        tls.sendall(head.encode() + body)
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    return reply.split(b"\r\n\r\n", 1)[1]


def split_url(url: str) -> tuple[str, int, str]:
    host, rest = url.removeprefix("https://").split(":", 1)
    port, _, path = rest.partition("/")
    return host, int(port), "/" + path


def files_under(directory: Path) -> list[tuple[str, int | None]]:
    """Paths (and sizes of non-database files) under `directory`; SQLite side files vary."""
    listing = []
    for path in sorted(directory.rglob("*")):
        if path.name.endswith(SQLITE_SIDE_FILES):
            continue
        size = None if path.is_dir() or path.suffix in (".sqlite", ".db") else path.stat().st_size
        listing.append((str(path.relative_to(directory)), size))
    return listing


@pytest.fixture(scope="package")
def keys() -> list[Any]:
    """pi, alice, bob and a spare key, made once for this package."""
    return [generate_private_key() for _ in range(4)]


@pytest.fixture(scope="package")
def world(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    deployment, ids, _ = build_deployment(tmp_path_factory.mktemp("security"), 2, keys, SLICES)
    site = start_site(reactor, deployment, ids, SLICES)
    yield World(site)
    stop_site(reactor, site)


def ok(reply: dict[str, Any]) -> Any:
    assert reply["code"]["geni_code"] == 0, reply["output"]
    return reply["value"]


def refused_by_aggregate(world: World, call: Callable[[], Any],
                         code: GeniCode | tuple[GeniCode, ...]) -> str:
    """The AM answers `code` (or one of `code`) in the envelope; nothing changed; every service
    still answers."""
    before = world.dump()
    reply = call()
    assert reply["code"]["geni_code"] in (code if isinstance(code, tuple) else (code,)), \
        reply["output"]
    assert reply["value"] == "" and reply["output"]
    no_traceback(str(reply["output"]))
    assert world.dump() == before
    world.answers()
    return str(reply["output"])


def refused_by_registry(world: World, call: Callable[[], Any],
                        code: GeniCode | tuple[GeniCode, ...]) -> str:
    """The registry faults with `code` (or one of `code`); nothing changed; every service still
    answers."""
    before = world.dump()
    with pytest.raises(xmlrpc.client.Fault) as caught:
        call()
    assert caught.value.faultCode in (code if isinstance(code, tuple) else (code,)), \
        caught.value.faultString
    no_traceback(caught.value.faultString)
    assert world.dump() == before
    world.answers()
    return caught.value.faultString


refused_by_node = refused_by_aggregate  # node managers answer in the same envelope
