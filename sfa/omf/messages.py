"""Signed OMF messages: what the EC publishes to RCs and what RCs answer.

A message is canonical JSON (sorted keys, no spaces) of its fields plus `sig`, an RSA
PKCS#1 v1.5 SHA-256 signature over the JSON of the other fields. It names the pubsub node it
is meant for (`topic`), so a copy published elsewhere is refused, and carries a sequence number
and its issue time, so a copy published again later is refused too. The EC's first message to
an RC (`hello`) also carries the user's certificate chain and slice credential; the RC checks
them with the trust door and from then on knows the user's key (`SenderBook`).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sfa.errors import BadArgs, CredentialExpired, Forbidden, SfaError
from sfa.timeutil import format_rfc3339, parse_rfc3339, utcnow
from sfa.trust.gid import GID
from sfa.trust.rights import operation_for
from sfa.trust.verify import TrustPolicy, authorize

NAMESPACE = "urn:sfa:omf:1"
MAX_MESSAGE_BYTES = 256 * 1024
MAX_AGE = timedelta(seconds=120)
# what a slice credential must allow for its holder to drive the slice's RCs
CONTROL_OPERATION = operation_for("PerformOperationalAction") or "createsliver"
HELLO = "hello"
INFORM = "inform"


@dataclass(frozen=True)
class Message:
    """One message; `body` is kind-specific (see docs/omf.md)."""

    kind: str
    sender: str
    slice_hrn: str
    topic: str
    seq: int
    issued: datetime
    body: Mapping[str, Any] = field(default_factory=dict)
    chain: str = ""
    credential: str = ""

    def _fields(self) -> dict[str, Any]:
        fields = {"v": 1, "kind": self.kind, "sender": self.sender, "slice": self.slice_hrn,
                  "topic": self.topic, "seq": self.seq, "issued": format_rfc3339(self.issued),
                  "body": dict(self.body)}
        if self.chain:
            fields["chain"] = self.chain
        if self.credential:
            fields["credential"] = self.credential
        return fields


def _canonical(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_message(message: Message, key: rsa.RSAPrivateKey) -> str:
    """The wire text of `message` signed with `key`."""
    fields = message._fields()
    signature = key.sign(_canonical(fields), padding.PKCS1v15(), hashes.SHA256())
    return _canonical({**fields, "sig": base64.b64encode(signature).decode()}).decode()


@dataclass(frozen=True)
class SignedText:
    """A parsed message with the bytes its signature covers."""

    message: Message
    signed: bytes
    signature: bytes

    def verify(self, public_key: rsa.RSAPublicKey) -> None:
        """Forbidden unless `public_key` made the signature."""
        try:
            public_key.verify(self.signature, self.signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise Forbidden(f"the {self.message.kind} message from {self.message.sender} "
                            "is not signed by the key it claims") from None


def parse_message(text: str | bytes) -> SignedText:
    """Parse wire text (BadArgs when malformed, Forbidden when unsigned)."""
    if len(text) > MAX_MESSAGE_BYTES:
        raise BadArgs(f"an OMF message is limited to {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise BadArgs("an OMF message must be JSON") from None
    if not isinstance(data, dict):
        raise BadArgs("an OMF message must be a JSON object")
    raw_sig = data.pop("sig", None)
    if not raw_sig:
        raise Forbidden("unsigned OMF message refused")
    try:
        signature = base64.b64decode(str(raw_sig), validate=True)
        message = Message(
            kind=_text(data, "kind"), sender=_text(data, "sender"), slice_hrn=_text(data, "slice"),
            topic=_text(data, "topic"), seq=_int(data, "seq"),
            issued=parse_rfc3339(_text(data, "issued")), body=_mapping(data, "body"),
            chain=str(data.get("chain", "")), credential=str(data.get("credential", "")))
    except (binascii.Error, ValueError):
        raise BadArgs("an OMF message has a malformed field") from None
    if data.get("v") != 1:
        raise BadArgs("unknown OMF message version")
    return SignedText(message, _canonical(data), signature)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadArgs(f"an OMF message needs a text {key!r}")
    return value


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadArgs(f"an OMF message needs a non-negative integer {key!r}")
    return value


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise BadArgs(f"an OMF message's {key!r} must be an object")
    return value


class SequenceNumbers:
    """Sequence numbers that keep increasing across runs (microseconds since the epoch)."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, time.time_ns() // 1000)
        return self._last


@dataclass
class _Sender:
    key: rsa.RSAPublicKey
    expires: datetime | None


class ReplayWindow:
    """(sender, seq) pairs seen within the freshness window; older messages are refused as
    expired, so the window is all that must be remembered."""

    def __init__(self, max_age: timedelta = MAX_AGE) -> None:
        self.max_age = max_age
        self._seen: dict[tuple[str, int], datetime] = {}

    def check(self, message: Message, now: datetime) -> None:
        if abs(now - message.issued) > self.max_age:
            raise CredentialExpired(
                f"the {message.kind} message of {format_rfc3339(message.issued)} is outside "
                f"the {int(self.max_age.total_seconds())} s freshness window")
        key = (message.sender, message.seq)
        if key in self._seen:
            raise Forbidden(f"replayed {message.kind} message (seq {message.seq}) refused")
        self._seen[key] = message.issued
        horizon = now - self.max_age
        if len(self._seen) > 1024:
            self._seen = {k: v for k, v in self._seen.items() if v >= horizon}


class SenderBook:
    """An RC's view of who may command it: users whose hello carried a verified chain and a
    credential for this slice, and the keys that sign their later messages."""

    def __init__(self, policy: TrustPolicy, slice_hrn: str, slice_urn: str,
                 max_age: timedelta = MAX_AGE) -> None:
        self.policy = policy
        self.slice_hrn = slice_hrn
        self.slice_urn = slice_urn
        self.window = ReplayWindow(max_age)
        self._senders: dict[str, _Sender] = {}

    def accept(self, text: str | bytes, topic: str, now: datetime | None = None) -> Message:
        """The verified message received on `topic`, or an SfaError saying why not."""
        now = now or utcnow()
        signed = parse_message(text)
        message = signed.message
        if message.topic != topic:
            raise Forbidden(f"a message for {message.topic[:120]} was published on {topic}")
        if message.slice_hrn != self.slice_hrn:
            raise Forbidden(f"a message for slice {message.slice_hrn[:80]} reached slice "
                            f"{self.slice_hrn}")
        if message.kind == HELLO:
            sender = self._admit(signed, now)
        else:
            sender = self._known(message, now)
            signed.verify(sender.key)
        self.window.check(message, now)
        return message

    def _admit(self, signed: SignedText, now: datetime) -> _Sender:
        message = signed.message
        gid = signer_of(signed, "hello")
        call = authorize([message.credential], gid, self.policy, operation=CONTROL_OPERATION,
                         targets=[self.slice_urn], at=now)
        sender = _Sender(gid.public_key, call.expires)
        self._senders[message.sender.lower()] = sender
        return sender

    def _known(self, message: Message, now: datetime) -> _Sender:
        sender = self._senders.get(message.sender.lower())
        if sender is None:
            raise Forbidden(f"{message.sender[:120]} has not introduced itself with a verified "
                            "hello; its message is refused")
        if sender.expires is not None and now > sender.expires:
            del self._senders[message.sender.lower()]
            raise CredentialExpired(f"the credential of {message.sender} has expired")
        return sender


def accept_standalone(text: str | bytes, topic: str, window: ReplayWindow,
                      now: datetime | None = None) -> tuple[GID, Message]:
    """A self-contained command (the aggregate's /OMF/system nodes): it carries the user's
    chain and credential, is signed by the chain's key, fresh, not replayed and meant for
    `topic`. The credential itself is for the caller's door (the AM API's)."""
    now = now or utcnow()
    signed = parse_message(text)
    message = signed.message
    if message.topic != topic:
        raise Forbidden(f"a message for {message.topic[:120]} was published on {topic}")
    gid = signer_of(signed, "system command")
    window.check(message, now)
    return gid, message


def signer_of(signed: SignedText, what: str) -> GID:
    """The GID of a message that carries its sender's chain and credential, once the
    signature is proven to be by that GID's key (the chain itself is the door's to check)."""
    message = signed.message
    if not message.chain or not message.credential:
        raise Forbidden(f"a {what} must carry the user's certificate chain and credential")
    try:
        gid = GID.from_pem(message.chain)
    except (SfaError, ValueError):
        raise BadArgs(f"the {what}'s certificate chain is not PEM") from None
    if gid.urn.lower() != message.sender.lower():
        raise Forbidden(f"the {what}'s certificate is {gid.urn}, not its sender")
    signed.verify(gid.public_key)
    return gid


class ReplyBook:
    """The EC's check of RC replies: each resource node's replies must be signed by that
    sliver's key, fresh and not replayed."""

    def __init__(self, keys: Mapping[str, rsa.RSAPublicKey], max_age: timedelta = MAX_AGE):
        self.keys = dict(keys)  # resource node path -> the sliver's public key
        self.window = ReplayWindow(max_age)

    def accept(self, text: str | bytes, topic: str, now: datetime | None = None) -> Message:
        now = now or utcnow()
        signed = parse_message(text)
        message = signed.message
        key = self.keys.get(topic)
        if key is None or message.topic != topic or message.kind != INFORM:
            raise Forbidden(f"no reply expected as {message.kind} on {topic}")
        signed.verify(key)
        self.window.check(message, now)
        return message
