"""The aggregate's connections to node managers resume TLS sessions (no RSA signature on
either side) and the node still knows the aggregate; a session never stands in for the pin
of the node's identity."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from OpenSSL._util import lib as openssl
from twisted.internet import defer
from twisted.internet.threads import blockingCallFromThread

from sfa.aggregate.nm_client import NodeCall, NodeReply
from sfa.server.nm_transport import TwistedNodeClient
from tests.server.nm_site import NmSite, build_deployment, ok, start_site, stop_site
from tests.server.test_nm_driver_e2e import provisioned_slice, slice_urn

SLICES = ["resume1"]


@pytest.fixture(scope="module")
def site(reactor: Any, keys: list, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[NmSite]:
    deployment, ids, _ = build_deployment(tmp_path_factory.mktemp("nm"), 2, keys, SLICES)
    running = start_site(reactor, deployment, ids, SLICES)
    yield running
    stop_site(reactor, running)


def client_of(site: NmSite) -> TwistedNodeClient:
    assert site.driver is not None
    client = site.driver.client
    assert isinstance(client, TwistedNodeClient)
    return client


def resumed(client: TwistedNodeClient) -> list[bool]:
    """For each kept-alive connection: was its TLS session resumed?"""
    transports: list[Any] = [protocol.transport for protocol in client._idle.values()]
    return [bool(openssl.SSL_session_reused(transport.getHandle()._ssl))
            for transport in transports]


def call(reactor: Any, client: TwistedNodeClient, node_call: NodeCall) -> NodeReply:
    def start() -> defer.Deferred[NodeReply]:
        return defer.Deferred.fromCoroutine(client.call(node_call))

    reply: NodeReply = blockingCallFromThread(reactor, cast(Any, start))  # twisted's stubs
    return reply


def test_a_new_connection_resumes_and_the_node_still_knows_the_aggregate(
        reactor: Any, site: NmSite) -> None:
    placed = provisioned_slice(site, "resume1", 2)
    client = client_of(site)
    blockingCallFromThread(reactor, client.close)
    am, creds, urn = site.am(), site.cred("resume1"), slice_urn("resume1")
    # StartSliver is allowed to the issuing aggregate only (no credential is sent): the node
    # takes the aggregate's certificate from the resumed session
    started = ok(am.PerformOperationalAction([urn], creds, "geni_start", {}))
    assert {s["geni_sliver_urn"] for s in started} == set(placed)
    assert resumed(client) == [True, True]
    blockingCallFromThread(reactor, client.close)
    client.forget_sessions()
    ok(am.Status([urn], creds, {}))
    assert resumed(client) == [False, False]
    ok(am.Delete([urn], creds, {}))


def test_a_session_is_not_used_for_another_pinned_identity(reactor: Any, site: NmSite) -> None:
    """Node A's address with node B's identity expected: no resumption of A's session, and
    the full handshake fails the pin."""
    client = client_of(site)
    (a_urn, a), (b_urn, _) = sorted(site.nodes.items())
    assert call(reactor, client, NodeCall(a_urn, a.url, "GetVersion", ())).ok
    blockingCallFromThread(reactor, client.close)
    assert client._session_for(_where(a.url), client.node_gids(a_urn)) is not None
    wrong = NodeCall(b_urn, a.url, "GetVersion", ())
    reply = call(reactor, client, wrong)
    assert not reply.reachable and "connection" in reply.message.lower()
    # the right identity still resumes
    assert call(reactor, client, NodeCall(a_urn, a.url, "GetVersion", ())).ok
    assert resumed(client) == [True]


def _where(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    return host, int(port)
