"""The aggregate's OMF edge: an asyncio thread holding the aggregate's XMPP session (the
pubsub administrator), Prosody's account store, and the XML-RPC methods an EC calls:

    OMFEnableSlice(slice_urn, credentials, options)      /OMF tree + RC accounts for the slice
    OMFSession(slice_urn, credentials, options)          an XMPP account for the caller's EC
    OMFCreateExperiment(slice_urn, credentials, {experiment, groups})
    OMFDeleteExperiment(slice_urn, credentials, {experiment})   its owner only

Each passes the same trust door as the AM API (a credential for the slice granting
PerformOperationalAction). Delete (and expiry, checked every `RECONCILE_SECONDS`) removes the
tree and the RC accounts of a slice with no slivers left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import Future
from typing import Any
from xml.sax.saxutils import escape

from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.aggregate.api_v3 import AggregateManagerV3
from sfa.aggregate.context import slice_urn_argument
from sfa.aggregate.nm_book import NodeManagerBook
from sfa.aggregate.nm_client import NodeCall
from sfa.aggregate.nm_driver import NodeManagerDriver
from sfa.aggregate.slivers import Sliver
from sfa.deploy.layout import Deployment
from sfa.deploy.xmpp import (
    AGGREGATE_ACCOUNT,
    ProsodyPaths,
    account_password,
    create_account,
    deployment_prosody,
    prosody_installed,
    remove_account,
    xmpp_server,
)
from sfa.errors import BadArgs, SearchFailed, SfaError, Unavailable
from sfa.omf.aggregate import OMF_DB, OmfAggregate, OmfBook
from sfa.omf.config import XmppLogin
from sfa.omf.messages import (
    INFORM,
    Message,
    ReplayWindow,
    SequenceNumbers,
    accept_standalone,
    parse_message,
    sign_message,
)
from sfa.omf.provision import create_system_tree
from sfa.omf.tree import SYSTEM
from sfa.omf.xmpp import PubsubClient
from sfa.rspecs.extension import omf_requested
from sfa.rspecs.reader import read_rspec
from sfa.server.dispatch import CallContext, Handler
from sfa.server.wire_args import call_args, credential_list, options_struct, rspec_text
from sfa.timeutil import utcnow
from sfa.trust.gid import GID
from sfa.trust.keys import generate_private_key, load_private_key, private_key_to_pem
from sfa.trust.rights import operation_for
from sfa.xrn import hrn_to_urn, urn_to_hrn

log = logging.getLogger("sfa.aggregate.omf")
CONTROL = operation_for("PerformOperationalAction")
RECONCILE_SECONDS = 5.0
CALL_TIMEOUT = 60.0


class ProsodyAccounts:
    """Accounts written into the deployment's Prosody store."""

    def __init__(self, paths: ProsodyPaths, domain: str) -> None:
        self.paths, self.domain = paths, domain

    def create(self, account: str, password: str | None = None) -> str:
        return create_account(self.paths, self.domain, account, password)

    def remove(self, account: str) -> None:
        remove_account(self.paths, self.domain, account)


class OmfEdge:
    """The asyncio thread and the OMF logic it serves."""

    def __init__(self, deployment: Deployment, am: AggregateManagerV3) -> None:
        self.deployment = deployment
        self.am = am
        server = xmpp_server(deployment.config.xmpp)
        paths = deployment_prosody(deployment)
        login = XmppLogin(server, deployment.trusted_roots_dir / f"{deployment.authority_hrn}.gid",
                          AGGREGATE_ACCOUNT, account_password(paths, AGGREGATE_ACCOUNT))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sfa-omf", daemon=True)
        self.thread.start()
        self.client: PubsubClient = self._submit(_make_client(login)).result(CALL_TIMEOUT)
        self.omf = OmfAggregate(server, ProsodyAccounts(paths, server.domain), self.client,
                                self.run, OmfBook(deployment.db_dir / OMF_DB))
        self.identity = deployment.service_identity("aggregate")
        self._system_window = ReplayWindow()
        self._seq = SequenceNumbers()
        self._stopping = threading.Event()
        self._reconciler: asyncio.Future[None] | None = None
        self.ready: Future[Any] = self._submit(self._bootstrap())

    def _submit(self, coroutine: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run a pubsub coroutine on the OMF thread and wait for it (from a pool thread)."""
        self.ready.result(CALL_TIMEOUT)
        return self._submit(coroutine).result(CALL_TIMEOUT)

    async def _bootstrap(self) -> None:
        """Log in, make /OMF, /OMF/system and one node per inventory node, follow them."""
        await self.client.connect()
        nodes = [urn_to_hrn(n.urn)[0] for n in self.am.ctx.store.nodes()]
        made = await create_system_tree(self.client, nodes)
        for node in made[2:]:
            await self.client.open_publishing(node)
            await self.client.subscribe(node)
        self.client.on_item = self._system_item
        log.info("OMF: /OMF/system ready with %d nodes", len(made) - 2)
        self._reconciler = asyncio.ensure_future(self._reconcile_forever())

    async def _system_item(self, topic: str, text: str) -> None:
        """A command on /OMF/system/<node>: verified, run through the AM API's own methods
        (and so its trust door) with the signer as caller, answered on the same node."""
        try:
            if parse_message(text).message.kind == INFORM:
                return  # our own answer
            gid, message = accept_standalone(text, topic, self._system_window)
        except SfaError as error:
            log.warning("OMF: refused a command on %s: %s", topic, error)
            return
        try:
            result: Any = await asyncio.to_thread(
                run_system_command, self.am, gid, message, topic[len(SYSTEM) + 1:])
            body: dict[str, Any] = {"re": message.seq, "event": "done", "result": result}
        except SfaError as error:
            log.warning("OMF: a %s command on %s failed: %s", message.kind, topic, error)
            body = {"re": message.seq, "event": "error", "code": error.code.name,
                    "message": error.message}
        reply = Message(kind=INFORM, sender=self.identity.gid.urn, slice_hrn=message.slice_hrn,
                        topic=topic, seq=self._seq.next(), issued=utcnow(), body=body)
        await self.client.publish(topic, sign_message(reply, self.identity.key))

    async def _reconcile_forever(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(RECONCILE_SECONDS)
            try:
                await asyncio.to_thread(self.reconcile)
            except Exception:
                log.exception("OMF: reconciling slices with their slivers failed")

    def reconcile(self) -> list[str]:
        """Remove the tree of every OMF slice that has no sliver left (Delete, expiry)."""
        gone = [urn for urn in self.omf.book.slices()
                if not self.am.ctx.store.slivers_of(urn)]
        for urn in gone:
            self.omf.disable_slice(urn)
            log.info("OMF: removed the tree and RC accounts of %s", urn)
        return gone

    def enable(self, slice_urn: str) -> dict[str, Any]:
        """The slice's tree, RC accounts and RCs for its slivers here."""
        slivers = self.am.ctx.store.slivers_of(slice_urn)
        if not slivers:
            raise BadArgs(f"{slice_urn} has no slivers here; provision them first")
        nodes = sorted({urn_to_hrn(s.node_urn)[0] for s in slivers})
        self.omf.enable_slice(slice_urn, nodes, self.slice_key(slice_urn))
        errors = self.start_controllers(slivers)
        return {"slice_urn": slice_urn, "nodes": nodes, "errors": errors}

    def start_controllers(self, slivers: Sequence[Sliver]) -> dict[str, str]:
        """Ask each sliver's node manager to run its RC (node-manager driver only); the
        errors by sliver URN."""
        driver = self.am.ctx.driver
        if not isinstance(driver, NodeManagerDriver):
            return {}
        config = self.deployment.config.xmpp
        server = {"host": config.host, "port": config.port, "domain": config.domain,
                  "pubsub": config.pubsub}
        managers = driver.book.managers()
        calls = [NodeCall(s.node_urn, managers[s.node_urn].url, "EnableOmf", (s.urn, [], server))
                 for s in slivers if s.node_urn in managers]
        replies = self.am.ctx.run(_gathered(driver, calls)) if calls else []
        return {call.params[0]: reply.error for call, reply in zip(calls, replies, strict=True)
                if not reply.ok}

    async def _close(self) -> None:
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
        await self.client.close()

    def slice_key(self, slice_urn: str) -> rsa.RSAPrivateKey:
        """The slice's key pair (the one its tickets carry; made here for other drivers)."""
        book = NodeManagerBook(self.am.ctx.store.database)
        pem = book.slice_key(slice_urn) or book.add_slice_key(
            slice_urn, private_key_to_pem(generate_private_key()).decode())
        return load_private_key(pem.encode())

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._submit(self._close()).result(10)
        except Exception:
            log.warning("OMF: closing the XMPP session failed", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.omf.book.close()


SYSTEM_ACTIONS = {"start": "geni_start", "stop": "geni_stop", "restart": "geni_restart"}
GENI3 = {"type": "GENI", "version": "3"}


def run_system_command(am: AggregateManagerV3, caller: GID, message: Message,
                       node_hrn: str) -> list[dict[str, Any]]:
    """create | start | stop | restart | status | delete the sliver of the message's slice on
    `node_hrn`, as the AM API would for `caller` presenting the message's credential."""
    slice_urn = hrn_to_urn(message.slice_hrn, "slice")
    node_urn = hrn_to_urn(node_hrn, "node")
    credentials = [{"geni_type": "geni_sfa", "geni_version": "3",
                    "geni_value": message.credential}]
    if message.kind == "create":
        request = ('<rspec xmlns="http://www.geni.net/resources/rspec/3" type="request">'
                   f'<node client_id="omf" component_id="{escape(node_urn)}" '
                   'exclusive="false"/></rspec>')
        allocated = am.allocate(caller, slice_urn, credentials, request, {})
        urns = [s["geni_sliver_urn"] for s in allocated["geni_slivers"]]
        am.provision(caller, urns, credentials, {"geni_rspec_version": GENI3})
        return _slivers(am.perform_operational_action(caller, urns, credentials, "geni_start",
                                                      {}))
    urns = [s.urn for s in am.ctx.store.slivers_of(slice_urn) if s.node_urn == node_urn]
    if not urns:
        raise SearchFailed(f"{message.slice_hrn} has no sliver on {node_hrn}")
    if message.kind in SYSTEM_ACTIONS:
        return _slivers(am.perform_operational_action(caller, urns, credentials,
                                                      SYSTEM_ACTIONS[message.kind], {}))
    if message.kind == "status":
        return _slivers(am.status(caller, urns, credentials, {})["geni_slivers"])
    if message.kind == "delete":
        return _slivers(am.delete(caller, urns, credentials, {}))
    raise BadArgs(f"unknown system command {message.kind[:40]!r}: create, start, stop, "
                  "restart, status or delete")


def _slivers(slivers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    keep = ("geni_sliver_urn", "geni_allocation_status", "geni_operational_status", "geni_error")
    return [{k: str(s[k]) for k in keep if k in s} for s in slivers]


async def _gathered(driver: NodeManagerDriver, calls: list[NodeCall]) -> list[Any]:
    return list(await driver.client.call_many(calls))


async def _make_client(login: XmppLogin) -> PubsubClient:
    return PubsubClient(login)  # made on the OMF loop, which slixmpp binds to


def omf_v3_handlers(edge: OmfEdge, v3: Mapping[str, Handler]) -> dict[str, Handler]:
    """The OMF XML-RPC methods, and v3's Delete followed by removing a slice's OMF tree."""
    am = edge.am
    delete = v3.get("Delete")

    def enter(call: CallContext, params: tuple[Any, ...]) -> tuple[Any, str, Mapping[str, Any]]:
        slice_urn, credentials, options = call_args(call, params, 2, 3)
        urn, opts = slice_urn_argument(slice_urn), options_struct(options)
        verified = am.ctx.authorize(credential_list(credentials), call.peer, CONTROL, [urn], opts)
        return verified, urn, opts

    def enable(call: CallContext, params: tuple[Any, ...]) -> Any:
        _verified, urn, _options = enter(call, params)
        return edge.enable(urn)

    def session(call: CallContext, params: tuple[Any, ...]) -> Any:
        verified, urn, _options = enter(call, params)
        return edge.omf.session(verified, urn, edge.slice_key(urn))

    def create(call: CallContext, params: tuple[Any, ...]) -> Any:
        verified, urn, options = enter(call, params)
        groups = options.get("groups")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise BadArgs("options.groups must be a list of group names")
        return edge.omf.create_experiment(verified, urn, str(options.get("experiment")), groups)

    def remove(call: CallContext, params: tuple[Any, ...]) -> Any:
        verified, urn, options = enter(call, params)
        return edge.omf.delete_experiment(verified, urn, str(options.get("experiment")))

    handlers: dict[str, Handler] = {"OMFEnableSlice": enable, "OMFSession": session,
                                    "OMFCreateExperiment": create, "OMFDeleteExperiment": remove}
    allocate, provision = v3.get("Allocate"), v3.get("Provision")
    if allocate is not None:
        def allocate_noting_omf(call: CallContext, params: tuple[Any, ...]) -> Any:
            result = allocate(call, params)
            slice_urn, _creds, rspec, _options = call_args(call, params, 3, 4)
            wanted = omf_requested(read_rspec(rspec_text(rspec), "request"))
            edge.omf.book.set_requested(slice_urn_argument(slice_urn), wanted)
            return result

        handlers["Allocate"] = allocate_noting_omf
    if provision is not None:
        def provision_then_enable(call: CallContext, params: tuple[Any, ...]) -> Any:
            result = provision(call, params)
            urns, _creds, _options = call_args(call, params, 2, 3)
            slice_urn = am.ctx.resolve(urns if isinstance(urns, list) else [urns]).slice_urn
            if edge.omf.book.requested(slice_urn):
                outcome = edge.enable(slice_urn)
                if outcome["errors"]:
                    log.warning("OMF: RCs not started for %s: %s", slice_urn, outcome["errors"])
            return result

        handlers["Provision"] = provision_then_enable
    if delete is not None:
        def delete_then_reconcile(call: CallContext, params: tuple[Any, ...]) -> Any:
            result = delete(call, params)
            edge.reconcile()
            return result

        handlers["Delete"] = delete_then_reconcile
    return handlers


def start_omf_edge(deployment: Deployment, am: AggregateManagerV3) -> OmfEdge | None:
    """The OMF edge when [xmpp] is enabled (None otherwise, or when Prosody cannot be had)."""
    config = deployment.config.xmpp
    if not config.enabled or (config.managed and not prosody_installed()):
        return None
    if not (deployment_prosody(deployment).secrets / AGGREGATE_ACCOUNT).exists():
        raise Unavailable("[xmpp] is enabled but DIR/xmpp has no aggregate account "
                          "(`sfa init --xmpp` makes it)")
    return OmfEdge(deployment, am)
