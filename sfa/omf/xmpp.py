"""The XMPP edge of OMF: a slixmpp client for XEP-0060 pubsub (asyncio), logged in with SASL
over TLS whose server certificate must chain to the deployment's root.

Items are `<omf xmlns="urn:sfa:omf:1">JSON</omf>`; `on_item(node, text)` gets each one
published on a node the client subscribed to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import ET

from sfa.errors import Forbidden, SfaError, TimedOut, Unavailable
from sfa.omf.config import XmppLogin
from sfa.omf.messages import NAMESPACE

log = logging.getLogger("sfa.omf.xmpp")
ItemHandler = Callable[[str, str], Awaitable[None]]
IQ_TIMEOUT = 30


class PubsubClient:
    """One logged-in account and the pubsub operations OMF needs."""

    def __init__(self, login: XmppLogin, on_item: ItemHandler | None = None) -> None:
        self.login = login
        self.on_item = on_item
        self.client = slixmpp.ClientXMPP(f"{login.jid}/omf-{secrets.token_hex(4)}",
                                         login.password)
        self.client.ssl_context = ssl.create_default_context(
            cafile=str(login.ca_file) if login.ca_file else None, cadata=login.ca_pem or None)
        self.client.register_plugin("xep_0060")
        self.pubsub: Any = self.client.plugin["xep_0060"]
        self.client.add_event_handler("pubsub_publish", self._published)
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self, timeout: float = 20.0) -> None:
        """Log in; Forbidden on bad credentials, Unavailable when the server is unreachable."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def settle(error: SfaError | None) -> None:
            if not ready.done():
                ready.set_exception(error) if error else ready.set_result(None)

        async def session_start(_event: Any) -> None:
            self.client.send_presence()
            settle(None)

        self.client.add_event_handler("session_start", session_start)
        self.client.add_event_handler(
            "failed_auth", lambda _e: settle(Forbidden(f"XMPP login refused for {self.login.jid}")))
        server = self.login.server
        self.client.connect(host=server.host, port=server.port)
        try:
            await asyncio.wait_for(ready, timeout)
        except TimeoutError:
            self.client.disconnect()
            raise Unavailable(f"no XMPP session with {server.host}:{server.port} "
                              f"within {timeout:g} s") from None

    async def close(self) -> None:
        """Close the stream and wait (briefly) for the server to end it."""
        for task in list(self._tasks):
            task.cancel()
        done = self.client.disconnect(wait=1.0)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.ensure_future(done), 3)
        # slixmpp cancels its output-filter task when the stream object is collected, which
        # may be after this loop has closed ("Event loop is closed"): end it here instead.
        filters = getattr(self.client, "_run_out_filters", None)
        if filters is not None:
            filters.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await filters
            self.client._run_out_filters = None

    async def create_node(self, node: str) -> None:
        """Create a node (an existing one is fine)."""
        await self._iq(self.pubsub.create_node, node, what=f"create {node}", unless="conflict")

    async def delete_node(self, node: str) -> None:
        """Delete a node (an absent one is fine)."""
        await self._iq(self.pubsub.delete_node, node, what=f"delete {node}",
                       unless="item-not-found")

    async def open_publishing(self, node: str) -> None:
        """Let any logged-in account publish on `node` (what it publishes is verified)."""
        form = self.client.plugin["xep_0004"].make_form("submit")
        form.add_field("FORM_TYPE", ftype="hidden",
                       value="http://jabber.org/protocol/pubsub#node_config")
        form.add_field("pubsub#publish_model", value="open")
        await self._iq(self.pubsub.set_node_config, node, form, what=f"open {node}")

    async def set_publishers(self, node: str, jids: Iterable[str]) -> None:
        """Make `jids` publishers of `node` (only they, and owners, may publish there)."""
        affiliations = [(jid, "publisher") for jid in jids]
        if affiliations:
            await self._iq(self.pubsub.modify_affiliations, node, affiliations,
                           what=f"grant publishing on {node}")

    async def list_nodes(self) -> list[str]:
        """Every node of the pubsub service."""
        reply = await self._iq(self.pubsub.get_nodes, None, what="list nodes")
        return [str(node) for _jid, node, _name in reply["disco_items"]["items"] if node]

    async def subscribe(self, node: str) -> None:
        await self._iq(self.pubsub.subscribe, node, what=f"subscribe to {node}")

    async def unsubscribe(self, node: str) -> None:
        await self._iq(self.pubsub.unsubscribe, node, what=f"unsubscribe from {node}")

    async def publish(self, node: str, text: str) -> None:
        payload = ET.Element(f"{{{NAMESPACE}}}omf")
        payload.text = text
        await self._iq(self.pubsub.publish, node, payload=payload, what=f"publish on {node}")

    async def _iq(self, method: Callable[..., Awaitable[Any]], node: str | None, *args: Any,
                  what: str, unless: str = "", **kwargs: Any) -> Any:
        """One pubsub request; an error whose condition is `unless` counts as done."""
        target = (node,) if node is not None else ()
        try:
            return await method(self.login.server.pubsub, *target, *args, timeout=IQ_TIMEOUT,
                                **kwargs)
        except IqError as exc:
            if unless and exc.condition == unless:
                return None
            raise _refusal(exc, what) from None
        except IqTimeout:
            raise TimedOut(f"{what}: no answer within {IQ_TIMEOUT} s") from None

    def _published(self, message: Any) -> None:
        if self.on_item is None:
            return
        items = message["pubsub_event"]["items"]
        node = str(items["node"])
        for item in items.iterables:
            payload = item["payload"]
            if payload is None or payload.tag != f"{{{NAMESPACE}}}omf":
                continue
            task = asyncio.ensure_future(self.on_item(node, payload.text or ""))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def _refusal(exc: IqError, what: str) -> SfaError:
    condition = exc.condition or "error"
    if condition in ("forbidden", "not-authorized"):
        return Forbidden(f"the pubsub server refused to {what} ({condition})")
    return Unavailable(f"the pubsub server could not {what} ({condition})")
