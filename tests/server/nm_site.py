"""A whole authority in this process over real TLS: registry, aggregate on the node-manager
driver, and node managers in DIR/nodes (each on its own port), with alice's slices."""

from __future__ import annotations

import ssl
import tempfile
import xmlrpc.client
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.threads import blockingCallFromThread

from sfa.aggregate.context import loop_runner
from sfa.aggregate.nm_driver import NodeManagerDriver
from sfa.aggregate.store import AggregateStore
from sfa.cli.admin import open_admin
from sfa.deploy.layout import Deployment, init_deployment, node_dirs
from sfa.nodemanager.nodedir import load_node_config, write_node_config
from sfa.server.am_api import AGGREGATE_DB, AggregateService, start_deployment_aggregate
from sfa.server.app import Served, start_node_managers, start_registry_in_threads
from sfa.server.listener import RunningService
from sfa.server.nm_api import NodeManagerService
from sfa.server.reactor import event_loop
from sfa.trust.gid import GID
from sfa.trust.keys import public_key_to_openssh
from tests.server.conftest import Identity, proxy, wait_deferred, write_identity

T = TypeVar("T")

GENI3 = {"type": "GENI", "version": "3"}


@dataclass
class NmSite:
    deployment: Deployment
    registry: RunningService
    aggregate: AggregateService
    nodes: dict[str, NodeManagerService]  # node URN -> its running manager
    ids: dict[str, Identity]
    creds: dict[str, str]

    @property
    def root_file(self) -> Path:
        return self.deployment.trusted_roots_dir / "plc.gid"

    driver: NodeManagerDriver | None = None

    def am(self, who: str | None = "alice") -> Any:
        return proxy(self.aggregate.url + "am/3", self.root_file, self.ids[who] if who else None)

    def cred(self, name: str) -> list[dict[str, Any]]:
        value = xmlrpc.client.Binary(self.creds[name].encode())
        return [{"geni_type": "geni_sfa", "geni_version": 3, "geni_value": value}]

    def store(self) -> AggregateStore:
        return AggregateStore(self.deployment.db_dir / AGGREGATE_DB)


def build_deployment(base: Path, nodes: int, keys: list[Any], slices: list[str], *,
                     uid_db: Path | None = None,
                     ) -> tuple[Deployment, dict[str, Identity], dict[str, GID]]:
    """plc with nodes, users pi/alice/bob, plc.princeton and alice's slices; fast timers
    (health checks and periodic reconciliation only when a test asks for them). The nodes
    take sliver uids from `uid_db` (default BASE/uids.db), not from the host's real file."""
    for parent in (base, *base.parents):  # slivers run as their own uids when we are root
        if parent == Path(tempfile.gettempdir()):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    deployment = init_deployment(base / "plc", authority="plc", registry_port=0, am_port=0,
                                 nm_base_port=0, nodes=nodes)
    for nodedir in node_dirs(deployment):
        node_config = load_node_config(nodedir)
        write_node_config(nodedir, replace(node_config, uid_db=str(uid_db or base / "uids.db")))
    pi_key, alice_key, bob_key, _ = keys
    admin = open_admin(deployment)
    gids: dict[str, GID] = {}
    try:
        for name, key in (("pi", pi_key), ("alice", alice_key), ("bob", bob_key)):
            new = admin.admin_add_user(f"plc.{name}", pubkey=public_key_to_openssh(key))
            gids[name] = GID.from_pem(new.record.gid or "")
            if name == "pi":
                admin.admin_add_authority("plc.princeton", pis=["plc.pi"])
        for name in slices:
            admin.admin_add_slice(f"plc.princeton.{name}", ["plc.alice"])
    finally:
        admin.close()
    ids = {name: write_identity(base / "ids", name, gids[name], key)
           for name, key in (("pi", pi_key), ("alice", alice_key), ("bob", bob_key))}
    config = deployment.config
    fast = replace(config.aggregate, node_timeout_seconds=10, health_interval_seconds=3600,
                   reconcile_interval_seconds=3600)
    return Deployment(deployment.directory, replace(config, aggregate=fast)), ids, gids


def start_site(reactor: Any, deployment: Deployment, ids: dict[str, Identity],
               slices: list[str]) -> NmSite:
    def start() -> tuple[RunningService, dict[str, Served]]:
        registry = start_registry_in_threads(reactor, deployment, host="127.0.0.1", port=0)
        return registry, start_node_managers(reactor, deployment, lambda line: None)

    registry, nodes = blockingCallFromThread(reactor, start)
    aggregate = wait_deferred(reactor, lambda: start_deployment_aggregate(reactor, deployment))
    managers = {name.split(" ", 1)[1]: service for name, service in nodes.items()
                if isinstance(service, NodeManagerService)}
    site = NmSite(deployment, registry, aggregate, managers, ids, {})
    site.driver = _driver_of(aggregate)
    reg = {who: proxy(registry.url, site.root_file, ids[who]) for who in ids}
    for who, ident in ids.items():
        site.creds[who] = str(reg[who].GetSelfCredential(ident.gid.to_pem(), f"plc.{who}",
                                                         "user"))
    for name in slices:
        site.creds[name] = str(reg["alice"].GetCredential(
            [site.creds["alice"]], f"plc.princeton.{name}", "slice"))
    return site


def _driver_of(aggregate: AggregateService) -> Any:
    assert isinstance(aggregate.driver, NodeManagerDriver)
    return aggregate.driver


def run_driver(reactor: Any, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a driver coroutine as the aggregate does: an asyncio task on the reactor's loop."""
    return loop_runner(event_loop(reactor))(coroutine)


def stop_site(reactor: Any, site: NmSite) -> None:
    blockingCallFromThread(reactor, site.aggregate.stop)
    for service in site.nodes.values():
        blockingCallFromThread(reactor, service.stop)
    blockingCallFromThread(reactor, site.registry.stop)


def ok(reply: dict[str, Any]) -> Any:
    assert reply["code"]["geni_code"] == 0, reply["output"]
    return reply["value"]


def request(count: int, initscript: str = "") -> str:
    """A request for `count` unbound shared nodes (and a slice init script)."""
    nodes = "".join(f'<node client_id="n{i}" exclusive="false"/>' for i in range(count))
    script = ""
    if initscript:
        script = ('<sfa:init_script xmlns:sfa="http://sfa.dev/resources/rspec/ext/sfa/1">'
                  f"{initscript}</sfa:init_script>")
    return ('<rspec xmlns="http://www.geni.net/resources/rspec/3" type="request">'
            f"{nodes}{script}</rspec>")


def node_proxy(url: str, root_file: Path, identity: Identity) -> Any:
    """A client of a node manager: its chain is verified, not its host name (node GIDs carry
    none)."""
    context = ssl.create_default_context(cafile=str(root_file))
    context.check_hostname = False
    context.load_cert_chain(str(identity.cert_file), str(identity.key_file))
    return xmlrpc.client.ServerProxy(url, context=context, allow_none=True)
