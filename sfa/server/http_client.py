"""A lean HTTP/1.1 client connection for Twisted: one request at a time, kept open between
requests, the reply read by Content-Length, by chunks or until the connection closes, its body
bounded. What the node client needs of `twisted.web._newclient`, at a fraction of its CPU per
call (no header objects, producers or Deferred chains per request)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

MAX_HEAD_BYTES = 64 * 1024


class HttpReplyError(ConnectionError):
    """The reply is not HTTP/1.x, is too big, or the connection closed in the middle of it."""


class NoReply(ConnectionError):
    """The connection closed before any byte of the reply arrived (a kept-alive connection
    the server had closed: the request may be sent again on a new one)."""

    def __init__(self, reason: BaseException) -> None:
        super().__init__(f"{type(reason).__name__}: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class HttpReply:
    """A complete reply: its status, body and whether the connection may carry another."""

    status: int
    body: bytes
    keep_alive: bool


def post_request(host: str, port: int, path: str, body: bytes,
                 content_type: bytes = b"text/xml") -> bytes:
    """The bytes of one HTTP/1.1 POST, head and body together (one TLS record)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: "
            f"{content_type.decode()}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


class ReplyReader:
    """One HTTP/1.x reply, fed as bytes arrive (no I/O here): `feed` and `closed` return the
    reply once it is complete, or raise HttpReplyError."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.received_any = False
        self._buffer = b""
        self._status = 0
        self._keep_alive = True
        self._length: int | None = None  # bytes of body still to come (by length or chunk)
        self._chunked = False
        self._until_close = False
        self._body: list[bytes] = []
        self._size = 0
        self._head_done = False
        self._trailers = False

    def feed(self, data: bytes) -> HttpReply | None:
        self.received_any = True
        self._buffer = self._buffer + data if self._buffer else data
        if not self._head_done and not self._read_head():
            return None
        if self._until_close:
            self._take(self._buffer)
            self._buffer = b""
            return None
        if self._chunked:
            return self._read_chunks()
        return self._read_length()

    def closed(self) -> HttpReply:
        """The reply when the connection closed: complete only if its body ran to the end."""
        if self._until_close:
            return HttpReply(self._status, b"".join(self._body), keep_alive=False)
        raise HttpReplyError("the connection closed in the middle of the reply")

    def _read_head(self) -> bool:
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise HttpReplyError("the reply's header is too big")
                return False
            head, self._buffer = self._buffer[:end], self._buffer[end + 4:]
            if self._parse_head(head):
                self._head_done = True
                return True

    def _parse_head(self, head: bytes) -> bool:
        """False for an interim (1xx) reply, which is skipped."""
        status_line, *lines = head.split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit() or (
                rest[3:4] not in (b"", b" ")):
            raise HttpReplyError(f"not an HTTP/1.x reply: {status_line[:60]!r}")
        self._status = int(code)
        if 100 <= self._status < 200:
            return False
        headers: dict[bytes, bytes] = {}
        for line in lines:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise HttpReplyError(f"a malformed header line: {line[:60]!r}")
            name, value = name.lower(), value.strip()
            if name in headers:
                if name == b"content-length" and headers[name] != value:
                    raise HttpReplyError("two different Content-Length headers")
                value = value if name == b"content-length" else headers[name] + b", " + value
            headers[name] = value
        self._frame(headers, version == b"HTTP/1.0")
        return True

    def _frame(self, headers: dict[bytes, bytes], http10: bool) -> None:
        tokens = {t.strip() for t in headers.get(b"connection", b"").lower().split(b",")}
        self._keep_alive = b"keep-alive" in tokens if http10 else b"close" not in tokens
        coding = headers.get(b"transfer-encoding")
        length = headers.get(b"content-length")
        if self._status in (204, 304):
            self._length = 0
        elif coding is not None:
            if coding.lower() != b"chunked":
                raise HttpReplyError(f"unsupported Transfer-Encoding {coding[:40]!r}")
            self._chunked = True
        elif length is not None:
            if not length.isdigit():
                raise HttpReplyError(f"a bad Content-Length {length[:40]!r}")
            self._length = int(length)
            self._check_size(self._length)
        else:
            self._until_close, self._keep_alive = True, False

    def _read_length(self) -> HttpReply | None:
        assert self._length is not None
        if len(self._buffer) < self._length:
            return None
        if len(self._buffer) > self._length:
            raise HttpReplyError("more bytes than the reply's Content-Length")
        self._take(self._buffer)
        self._buffer = b""
        return self._done()

    def _read_chunks(self) -> HttpReply | None:
        while True:
            if self._trailers:
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    return None
                line, self._buffer = self._buffer[:end], self._buffer[end + 2:]
                if not line:
                    if self._buffer:
                        raise HttpReplyError("bytes after the end of the reply")
                    return self._done()
                continue
            if self._length is None:  # a chunk-size line
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEAD_BYTES:
                        raise HttpReplyError("a chunk-size line is too long")
                    return None
                size = self._buffer[:end].partition(b";")[0].strip()
                self._buffer = self._buffer[end + 2:]
                try:
                    self._length = int(size, 16)
                except ValueError:
                    raise HttpReplyError(f"a bad chunk size {size[:20]!r}") from None
                if self._length < 0 or size.startswith((b"-", b"+", b"0x", b"0X")):
                    raise HttpReplyError(f"a bad chunk size {size[:20]!r}")
                self._check_size(self._size + self._length)
                if self._length == 0:
                    self._trailers = True
                continue
            if len(self._buffer) < self._length + 2:
                return None
            if self._buffer[self._length:self._length + 2] != b"\r\n":
                raise HttpReplyError("a chunk does not end with CRLF")
            self._take(self._buffer[:self._length])
            self._buffer, self._length = self._buffer[self._length + 2:], None

    def _take(self, data: bytes) -> None:
        if data:
            self._check_size(self._size + len(data))
            self._size += len(data)
            self._body.append(data)

    def _check_size(self, size: int) -> None:
        if size > self.max_body:
            raise HttpReplyError(f"the reply is too big (over {self.max_body} bytes)")

    def _done(self) -> HttpReply:
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        return HttpReply(self._status, body, self._keep_alive)


class KeptAliveHttp(Protocol):
    """One client connection: `request` sends a request and gives its reply; between requests
    the connection is `idle` (the `on_idle` callback hears of it) until the server closes it.
    Each request has one deadline: past it the connection is aborted and the request fails
    with `defer.TimeoutError`."""

    transport: Any  # Twisted's interface stubs do not type the methods of a transport

    def __init__(self, reactor: Any, ready: defer.Deferred[KeptAliveHttp], *,
                 max_body: int, on_idle: Any = None) -> None:
        self.reactor = reactor
        self.ready = ready
        self.max_body = max_body
        self.on_idle = on_idle
        self.idle = False
        self.open = False
        self.replies = 0  # complete replies received on this connection
        self._waiting: defer.Deferred[HttpReply] | None = None
        self._reader: ReplyReader | None = None
        self._deadline: Any = None

    def connectionMade(self) -> None:
        # Before the TLS handshake (writes wait for it), so that a handshake that fails is
        # the request's failure. Without TCP_NODELAY the handshake's last flight and the
        # request could wait for the server's delayed ACK.
        tcp = getattr(self.transport, "transport", None)
        if tcp is not None and hasattr(tcp, "setTcpNoDelay"):
            tcp.setTcpNoDelay(True)
        self.open = self.idle = True
        if not self.ready.called:
            self.ready.callback(self)

    def request(self, data: bytes, timeout: float) -> defer.Deferred[HttpReply]:
        """Send `data` (a whole request) and wait at most `timeout` seconds for the reply."""
        if not self.open:  # closed since it was made or kept: as if closed before the reply
            return defer.fail(NoReply(ConnectionError("closed before the request")))
        if not self.idle:
            raise RuntimeError("the connection is busy with another request")
        self.idle = False
        waiting: defer.Deferred[HttpReply] = defer.Deferred()
        self._waiting, self._reader = waiting, ReplyReader(self.max_body)
        self._deadline = self.reactor.callLater(timeout, self._expired)
        self.transport.write(data)
        return waiting

    def dataReceived(self, data: bytes) -> None:
        if self._reader is None:  # nothing was asked: a broken server
            self.transport.abortConnection()
            return
        try:
            reply = self._reader.feed(data)
        except HttpReplyError as error:
            self._settle(Failure(error))
            self.transport.abortConnection()
            return
        if reply is not None:
            self._settle(reply)
            if not reply.keep_alive:
                self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.open = self.idle = False
        if not self.ready.called:
            self.ready.errback(reason)
        reader = self._reader
        if reader is None or self._waiting is None:
            return
        if not reader.received_any:
            self._settle(Failure(NoReply(reason.value or ConnectionError("closed"))))
            return
        try:
            self._settle(reader.closed())
        except HttpReplyError as error:
            self._settle(Failure(error))

    def _expired(self) -> None:
        self._deadline = None
        self._settle(Failure(defer.TimeoutError("no reply in time")))
        self.transport.abortConnection()

    def _settle(self, result: HttpReply | Failure) -> None:
        waiting, self._waiting, self._reader = self._waiting, None, None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if waiting is None:
            return
        if isinstance(result, HttpReply):
            self.replies += 1
        if isinstance(result, HttpReply) and result.keep_alive and self.open:
            self.idle = True
            if self.on_idle is not None:
                self.on_idle(self)
        waiting.callback(result) if isinstance(result, HttpReply) else waiting.errback(result)
