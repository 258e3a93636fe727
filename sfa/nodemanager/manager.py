"""The node manager: redeem tickets into slivers, act on them for those allowed, enforce leases.

Transport-free: methods take parsed arguments and the TLS peer's (unverified) GID, and raise
sfa.errors. Every operation is idempotent by ticket serial or sliver URN. One lock serializes
the changes of one node so that admission sees every sliver.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sfa.errors import (
    AlreadyExists,
    BadArgs,
    Expired,
    Forbidden,
    Refused,
    SearchFailed,
    SfaError,
    Unavailable,
)
from sfa.logins import sliver_login
from sfa.nodemanager import authz, capabilities
from sfa.nodemanager.admission import Admission
from sfa.nodemanager.backend import Backend, SliverSpec, UserKeys
from sfa.nodemanager.store import (
    CREATING,
    FAILED,
    READY,
    STARTED,
    STOPPED,
    NodeStore,
    Revocation,
    SliverRecord,
)
from sfa.nodemanager.terms import TicketTerms, terms_of
from sfa.nodemanager.uids import HostUids
from sfa.timeutil import format_rfc3339, utcnow
from sfa.trust.gid import GID
from sfa.trust.keys import private_key_to_pem
from sfa.trust.slicekey import unseal_slice_key
from sfa.trust.ticket import create_lease, verify_ticket
from sfa.trust.verify import TrustPolicy
from sfa.xrn import Xrn, same_name, validate_urn

log = logging.getLogger("sfa.nodemanager")

API_VERSION = 1
WARM_UP_SERIAL = "warm-up"


@dataclass(frozen=True)
class NodeIdentity:
    """The node's GID and key, and where it answers."""

    gid: GID
    key: rsa.RSAPrivateKey = field(repr=False)
    hostname: str = "localhost"

    @property
    def urn(self) -> str:
        return self.gid.urn


@dataclass(frozen=True)
class Redemption:
    """The answer to RedeemTicket / RenewLease: the signed lease and what it grants."""

    lease: str
    sliver_urn: str
    expires: datetime
    login: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "lease": self.lease, "sliver_urn": self.sliver_urn,
            "expires": format_rfc3339(self.expires), "login": self.login,
        }


@dataclass(frozen=True)
class SliverInfo:
    """A sliver's state as SliverStatus / ListSlivers report it."""

    record: SliverRecord
    running: bool
    processes: int
    disk_used_bytes: int
    usage: dict[str, int] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        record = self.record
        return {
            "sliver_urn": record.sliver_urn,
            "slice_urn": record.slice_urn,
            "login": record.login,
            "issuer_urn": record.issuer_urn,
            "state": record.state,
            "expires": format_rfc3339(record.expires),
            "resources": record.resources.to_dict(),
            "users": [{"urn": u.urn, "keys": list(u.keys)} for u in record.users],
            "running": self.running,
            "processes": self.processes,
            "disk_used_bytes": self.disk_used_bytes,
            "usage": dict(self.usage),
            "last_error": record.last_error,
        }


class SliverCompanions(Protocol):
    """Processes that live beside some slivers (OMF resource controllers): started with the
    sliver, stopped with it, forgotten when it is destroyed."""

    def enable(self, record: SliverRecord, settings: Mapping[str, Any]) -> None: ...

    def start(self, record: SliverRecord) -> bool: ...

    def stop(self, login: str) -> None: ...

    def forget(self, login: str) -> None: ...


class NodeManager:
    """One node's slivers: see spec/nodemanager.md."""

    def __init__(
        self,
        *,
        node: NodeIdentity,
        policy: TrustPolicy,
        store: NodeStore,
        backend: Backend,
        admission: Admission,
        uids: HostUids | None = None,
        trusted_issuers: Sequence[GID] = (),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.node = node
        self.policy = policy
        self.store = store
        self.backend = backend
        self.admission = admission
        self.uids = uids
        self.trusted_issuers = tuple(trusted_issuers)
        self.clock = clock
        self._lock = threading.RLock()
        self.on_reaped: Callable[[str], None] | None = None
        # the OMF resource controllers of OMF-enabled slivers (sfa.server.omf_node)
        self.omf: SliverCompanions | None = None

    @property
    def urn(self) -> str:
        return self.node.urn

    # --- tickets ------------------------------------------------------------------------------

    def redeem(self, ticket_xml: str, *, slice_key: str | None = None) -> Redemption:
        """Verify a ticket, admit it, create the sliver and return a signed lease.

        The same ticket again returns the same lease; its serial with other content, or a
        ticket for another node, is refused. `slice_key` is the slice's private key sealed
        for this node (see `sfa.trust.slicekey`).
        """
        terms = self._verify(ticket_xml)
        login = sliver_login(terms.slice_urn)
        with self._lock:
            self._refuse_revoked(terms)
            earlier = self._earlier_redemption(terms)
            if earlier is not None:
                return earlier
            private = self._open_slice_key(slice_key, terms)
            record = self._admit(terms, login, slice_key)
            lease = self._sign_lease(terms.serial, terms.sliver_urn, terms.expires)
            with self.store.transaction():
                self.store.add_ticket(terms.serial, terms.digest, terms.sliver_urn, "redeem")
                self.store.add_sliver(record)
                self.store.add_lease(terms.sliver_urn, terms.serial, terms.expires, lease)
            self._create(record, private)
        return Redemption(lease, terms.sliver_urn, terms.expires, login)

    def renew(self, sliver_urn: str, renewal_xml: str) -> Redemption:
        """Set a sliver's expiry with a renewal: a ticket of the issuing AM for the same sliver
        with a new expiry, later or earlier (AM API v3 Renew may shorten). Idempotent by the
        renewal's serial."""
        terms = self._verify(renewal_xml)
        with self._lock:
            record = self._sliver(sliver_urn)
            if (terms.sliver_urn, terms.slice_urn) != (record.sliver_urn, record.slice_urn):
                raise BadArgs(f"the renewal is for {terms.sliver_urn}, not {sliver_urn}")
            if not same_name(terms.issuer_urn, record.issuer_urn):
                raise Forbidden(f"only the issuing aggregate {record.issuer_urn} may renew")
            earlier = self._earlier_redemption(terms)
            if earlier is not None:
                return earlier
            self.admission.check(terms.resources, self.store.allocated(excluding=sliver_urn))
            lease = self._sign_lease(terms.serial, sliver_urn, terms.expires)
            with self.store.transaction():
                self.store.add_ticket(terms.serial, terms.digest, sliver_urn, "renew")
                self.store.set_expiry(sliver_urn, terms.expires, terms.serial, terms.resources)
                self.store.add_lease(sliver_urn, terms.serial, terms.expires, lease)
            self.backend.create(self._spec(self._sliver(sliver_urn)))
        return Redemption(lease, sliver_urn, terms.expires, record.login)

    def revoke(self, revocations: Sequence[Revocation], peer: GID | None) -> list[str]:
        """Record tickets an aggregate withdrew (it deleted their slivers) and destroy the
        slivers they created here; the serials recorded (the acknowledgement).

        The verified caller is recorded as the issuer: only an authority's service may revoke,
        and a revocation only ever stops tickets the caller itself signed.
        """
        caller = authz.caller_of(peer, self.policy)
        if not Xrn.from_urn(caller.urn).is_authority:
            raise Forbidden(f"only an aggregate revokes its tickets, not {caller.urn}")
        mine = [replace(r, issuer_urn=caller.urn) for r in revocations]
        with self._lock:
            self.store.add_revocations(mine)
            for revocation in mine:
                record = self.store.sliver(revocation.sliver_urn)
                if (record is not None and same_name(record.issuer_urn, caller.urn)
                        and self.store.first_serial(record.sliver_urn) == revocation.serial):
                    self._destroy(record)
        return [r.serial for r in mine]

    # --- operations on slivers ----------------------------------------------------------------

    def start(self, sliver_urn: str, peer: GID | None, credentials: Sequence[Any]) -> SliverInfo:
        record = self._authorized(sliver_urn, peer, credentials, "start")
        with self._lock:
            self._start(record)
        return self._info(replace(record, state=STARTED, last_error=""))

    def stop(self, sliver_urn: str, peer: GID | None, credentials: Sequence[Any]) -> SliverInfo:
        record = self._authorized(sliver_urn, peer, credentials, "stop")
        with self._lock:
            self.backend.stop(record.login)
            if self.omf is not None:
                self.omf.stop(record.login)
            self.store.set_state(sliver_urn, STOPPED)
        return self.info(sliver_urn)

    def restart(
        self, sliver_urn: str, peer: GID | None, credentials: Sequence[Any]
    ) -> SliverInfo:
        record = self._authorized(sliver_urn, peer, credentials, "restart")
        with self._lock:
            self.backend.stop(record.login)
            if self.omf is not None:
                self.omf.stop(record.login)
            self._start(record)
        return self.info(sliver_urn)

    def delete(self, sliver_urn: str, peer: GID | None, credentials: Sequence[Any]) -> None:
        """Stop and remove the sliver and free its resources (deleting twice is fine)."""
        if self.store.sliver(sliver_urn) is None:
            validate_urn(sliver_urn, "sliver")
            return
        record = self._authorized(sliver_urn, peer, credentials, "delete")
        with self._lock:
            self._destroy(record)

    def update_keys(
        self,
        sliver_urn: str,
        users: tuple[UserKeys, ...],
        peer: GID | None,
        credentials: Sequence[Any],
    ) -> SliverInfo:
        """Replace the sliver's users and their keys (an empty list clears them)."""
        record = self._authorized(sliver_urn, peer, credentials, "update_keys")
        with self._lock:
            self.store.set_users(sliver_urn, users)
            self.backend.create(self._spec(replace(record, users=users)))
        return self.info(sliver_urn)

    def status(self, sliver_urn: str, peer: GID | None, credentials: Sequence[Any]) -> SliverInfo:
        self._authorized(sliver_urn, peer, credentials, "status")
        return self.info(sliver_urn)

    def list_slivers(self, peer: GID | None) -> list[SliverInfo]:
        """Every sliver for the node's authority; an AM sees the slivers it issued."""
        scope = authz.listing_scope(peer, self.policy, self.urn)
        return [
            self._info(record)
            for record in self.store.slivers()
            if scope is None or same_name(record.issuer_urn, scope)
        ]

    def info(self, sliver_urn: str) -> SliverInfo:
        """A sliver's state (no authorization: for local, read-only callers)."""
        return self._info(self._sliver(sliver_urn))

    def usage(self, login: str) -> dict[str, int]:
        """What the backend measured of a sliver (empty when it measures nothing)."""
        return dict(self.backend.status(login).usage)

    def lease(self, sliver_urn: str) -> str | None:
        """The current signed lease of a sliver."""
        return self.store.current_lease(sliver_urn)

    # --- leases and restarts ------------------------------------------------------------------

    def reap_expired(self, now: datetime | None = None) -> list[str]:
        """Destroy every sliver whose lease has ended; their URNs."""
        reaped: list[str] = []
        now = now or self.clock()
        with self._lock:
            self.store.prune_revocations(now)
            for record in self.store.expired(now):
                self._destroy(record)
                reaped.append(record.sliver_urn)
        for urn in reaped:
            if self.on_reaped is not None:
                self.on_reaped(urn)
        return reaped

    def next_expiry(self) -> datetime | None:
        """When the next lease ends (for the reaper's timer)."""
        return self.store.next_expiry()

    def recover(self) -> dict[str, list[str]]:
        """After a restart: reap what expired, let the backend remove its strays and remake
        what a reboot undid, finish half-made slivers, restart started ones."""
        reaped = self.reap_expired()
        finished: list[str] = []
        restarted: list[str] = []
        with self._lock:
            self._reconcile_uids()
            reconcile = getattr(self.backend, "reconcile", None)
            if reconcile is not None:
                reconcile([self._spec(r) for r in self.store.slivers() if r.state != CREATING])
            for record in self.store.slivers():
                if record.state == CREATING:
                    self._create(record, self._stored_slice_key(record))
                    finished.append(record.sliver_urn)
                elif record.state == STARTED and not self.backend.status(record.login).running:
                    self._start(record)
                    restarted.append(record.sliver_urn)
                elif record.state == STARTED:
                    self._start_rc(record)
        return {"reaped": reaped, "created": finished, "restarted": restarted}

    def warm_up(self) -> None:
        """Use the node's key once for a lease signature and once directly, before serving.

        OpenSSL prepares a key on its first private operation (~6 ms for the two copies
        here): paid at start, it is not paid by the first redemption. Nothing is stored.
        """
        self._sign_lease(WARM_UP_SERIAL, f"urn:publicid:IDN+sfa+sliver+{WARM_UP_SERIAL}",
                         self.clock())
        self.node.key.sign(WARM_UP_SERIAL.encode(), padding.PKCS1v15(), hashes.SHA256())

    def version(self) -> dict[str, Any]:
        """What GetVersion reports: identity, capacity, free resources, load, slivers."""
        allocated = self.store.allocated()
        measured = self.admission.measurements()
        return {
            "urn": self.urn,
            "hostname": self.node.hostname,
            "api_version": API_VERSION,
            "capacity": self.admission.capacity.to_dict(),
            "free": self.admission.free(allocated).to_dict(),
            "load": round(measured.load, 2),
            "free_disk_percent": round(measured.free_disk_percent, 1),
            "slivers": self.store.sliver_count(),
            "enforcement": self.enforcement.to_dict(),
        }

    @property
    def enforcement(self) -> capabilities.Enforcement:
        """Which resource knobs the sliver backend enforces and which it only counts."""
        return capabilities.of_backend(self.backend)

    # --- internals ----------------------------------------------------------------------------

    def _verify(self, ticket_xml: str) -> TicketTerms:
        if not isinstance(ticket_xml, str | bytes):
            raise BadArgs("a ticket is the signed XML text")
        ticket = verify_ticket(
            ticket_xml, self.policy, node_urn=self.urn, at=self.clock(),
            trusted_issuers=self.trusted_issuers,
        )
        terms = terms_of(ticket)
        if not same_name(terms.node_urn, self.urn):
            raise Forbidden(f"this ticket is for {terms.node_urn}, not this node ({self.urn})")
        if terms.expires <= self.clock():
            raise Refused("the ticket has expired")
        validate_urn(terms.sliver_urn, "sliver")
        return terms

    def _refuse_revoked(self, terms: TicketTerms) -> None:
        revoked = self.store.revocation(terms.serial)
        if revoked is not None and same_name(revoked.issuer_urn, terms.issuer_urn):
            raise Refused(
                f"ticket {terms.serial} was revoked by {terms.issuer_urn}: its sliver was deleted "
                "there; ask the aggregate for a new one"
            )

    def _earlier_redemption(self, terms: TicketTerms) -> Redemption | None:
        """The lease of this very ticket when it was redeemed before; refusal on replay."""
        seen = self.store.ticket(terms.serial)
        if seen is None:
            return None
        if seen.digest != terms.digest:
            raise Refused(f"ticket serial {terms.serial} was already used for other terms (replay)")
        lease = self.store.lease_for_serial(terms.serial)
        record = self.store.sliver(terms.sliver_urn)
        if lease is None or record is None:
            raise Refused(f"ticket {terms.serial} was redeemed before and its sliver is gone")
        return Redemption(lease, terms.sliver_urn, terms.expires, record.login)

    def _admit(self, terms: TicketTerms, login: str, slice_key: str | None) -> SliverRecord:
        existing = self.store.sliver_in_the_way(terms.sliver_urn, terms.slice_urn, login)
        if existing is not None:
            raise AlreadyExists(
                f"{existing.sliver_urn} of {existing.slice_urn} already lives on this node "
                "(renew it with RenewLease, or delete it first)"
            )
        self.admission.check(terms.resources, self.store.allocated())
        uid = self.uids.allocate(terms.sliver_urn) if self.uids is not None else None
        return SliverRecord(
            sliver_urn=terms.sliver_urn, slice_urn=terms.slice_urn, login=login,
            issuer_urn=terms.issuer_urn, serial=terms.serial, expires=terms.expires,
            resources=terms.resources, users=terms.users, slice_gid=terms.slice_gid_pem,
            slice_public_key=terms.slice_public_key, sealed_slice_key=slice_key,
            initscript=terms.initscript, uid=uid, state=CREATING, last_error="",
            created_at=self.clock(),
        )

    def _open_slice_key(self, sealed: str | None, terms: TicketTerms) -> bytes | None:
        if sealed and not terms.slice_public_key:
            raise BadArgs("a slice key was sent but the ticket names no slice_keypair_public")
        return self._slice_key_pem(sealed, terms.sliver_urn, terms.slice_public_key)

    def _stored_slice_key(self, record: SliverRecord) -> bytes | None:
        return self._slice_key_pem(
            record.sealed_slice_key, record.sliver_urn, record.slice_public_key
        )

    def _slice_key_pem(
        self, sealed: str | None, sliver_urn: str, public: str | None
    ) -> bytes | None:
        if not sealed or not public:
            return None
        return private_key_to_pem(unseal_slice_key(sealed, self.node.key, sliver_urn, public))

    def _create(self, record: SliverRecord, private: bytes | None) -> None:
        """Make the sliver; on failure undo the redemption so that the ticket can be retried."""
        try:
            self.backend.create(self._spec(record, private))
        except Exception as exc:
            self.backend.destroy(record.login)
            with self.store.transaction():
                self.store.remove_sliver(record.sliver_urn)
                self.store.forget_ticket(record.serial)
            self._release_uid(record)
            if isinstance(exc, SfaError):
                raise
            raise Refused(f"the node could not create the sliver: {exc}") from None
        self.store.set_state(record.sliver_urn, READY)

    def _start(self, record: SliverRecord) -> None:
        try:
            self.backend.start(self._spec(record))
        except (OSError, SfaError) as exc:
            self.store.set_state(record.sliver_urn, FAILED, f"start failed: {exc}")
            raise Refused(f"the sliver could not start: {exc}") from None
        self.store.set_state(record.sliver_urn, STARTED)
        self._start_rc(record)

    def enable_omf(self, sliver_urn: str, peer: GID | None, credentials: Sequence[Any],
                   server: Mapping[str, Any]) -> SliverInfo:
        """Run an OMF resource controller in this sliver (now if it is started, and with it
        from now on); the XMPP `server` comes from the aggregate that enabled the slice."""
        record = self._authorized(sliver_urn, peer, credentials, "start")
        if self.omf is None:
            raise Unavailable("this node manager has no OMF support configured")
        with self._lock:
            self.omf.enable(record, server)
            if record.state == STARTED:
                self._start_rc(record)
        return self.info(sliver_urn)

    def _start_rc(self, record: SliverRecord) -> None:
        if self.omf is None:
            return
        try:
            self.omf.start(record)
        except (OSError, SfaError) as exc:  # the sliver runs on without its RC; say why
            log.warning("the OMF RC of %s did not start: %s", record.sliver_urn, exc)

    def _destroy(self, record: SliverRecord) -> None:
        if self.omf is not None:
            self.omf.forget(record.login)
        self.backend.destroy(record.login)
        self.store.remove_sliver(record.sliver_urn)
        self._release_uid(record)

    def _reconcile_uids(self) -> None:
        """Bring the host's uid file in line with this node's slivers; a sliver whose uid the
        file gives to another sliver (from before the file) is stopped with a reason."""
        if self.uids is None:
            return
        records = {r.sliver_urn: r for r in self.store.slivers() if r.uid is not None}
        for sliver_urn in self.uids.reconcile({u: r.uid for u, r in records.items()
                                               if r.uid is not None}):
            record = records[sliver_urn]
            self.backend.stop(record.login)
            self.store.set_state(sliver_urn, FAILED, f"uid {record.uid} belongs to another "
                                 "sliver on this host; delete and provision it again")

    def _release_uid(self, record: SliverRecord) -> None:
        """The sliver and its processes are gone: its uid may serve another sliver."""
        if self.uids is not None and record.uid is not None:
            self.uids.release(record.sliver_urn)

    def _spec(self, record: SliverRecord, private: bytes | None = None) -> SliverSpec:
        return SliverSpec(
            login=record.login, slice_urn=record.slice_urn, sliver_urn=record.sliver_urn,
            node_urn=self.urn, expires=record.expires, resources=record.resources,
            slice_gid_pem=record.slice_gid, node_gid_pem=self.node.gid.to_pem(),
            users=record.users, slice_public_key=record.slice_public_key,
            slice_private_key_pem=private, initscript=record.initscript, uid=record.uid,
        )

    def _sign_lease(self, serial: str, sliver_urn: str, expires: datetime) -> str:
        return create_lease(
            ticket_serial=serial, sliver_urn=sliver_urn, expires=expires,
            signer_key=self.node.key, signer=self.node.gid,
        )

    def _sliver(self, sliver_urn: str) -> SliverRecord:
        if not isinstance(sliver_urn, str):
            raise BadArgs("a sliver URN is a string")
        record = self.store.sliver(sliver_urn)
        if record is None:
            validate_urn(sliver_urn, "sliver")
            raise SearchFailed(f"no sliver {sliver_urn} on this node")
        return record

    def _authorized(
        self, sliver_urn: str, peer: GID | None, credentials: Sequence[Any], action: str
    ) -> SliverRecord:
        record = self._sliver(sliver_urn)
        if record.expires <= self.clock():
            self.reap_expired()
            raise Expired(f"the lease of {sliver_urn} has ended; the sliver is gone")
        authz.authorize_sliver(
            peer, credentials, self.policy, issuer_urn=record.issuer_urn,
            slice_urn=record.slice_urn, action=action,
        )
        return record

    def _info(self, record: SliverRecord) -> SliverInfo:
        status = self.backend.status(record.login)
        return SliverInfo(record, status.running, status.processes, status.disk_used_bytes,
                          dict(status.usage))
