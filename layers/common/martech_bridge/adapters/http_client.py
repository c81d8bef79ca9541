"""The one outbound HTTP/1.1 client: a total wall-clock deadline per call, bounded answers, pooled connections.

How the deadline is kept. Every blocking step waits at most the time left until one absolute deadline,
fixed when the call starts: the name look-up runs on its own daemon thread, waited for with the time left
(getaddrinfo has no timeout of its own; a hung look-up leaves its daemon thread behind, the call ends);
each connect, the TLS handshake (CPython bounds the whole handshake by the socket timeout), each send()
and each recv() get `settimeout(time left)` just before they run, and no step starts once the time is
gone. A peer trickling one byte per recv() therefore cannot stretch the call: the last recv() waits only
until the deadline. This was chosen over a watchdog timer that shuts the socket down at the deadline
because it needs no thread per call (Lambda pays for each), cannot race with a connection that has
already gone back to the pool, and behaves the same under TLS (shutting an SSLSocket down from another
thread mid-read is not something CPython promises to handle). http.client parses the answer (status
line, header limits, chunked bodies); it reads through `_Wire`, which is where the deadline lives.

What a failure means for a resend (`Failure.may_have_reached_peer`):
  never sent, safe to resend: invalid_request, dns_failure, refused, connect_timeout, connect_failed,
    tls_failure - no byte of the request left this process;
  may have reached the peer (ambiguous for a non-idempotent call): timeout, dropped, bad_response,
    too_large - at least one byte of the request was handed to the kernel.
A pooled connection that fails before any byte of the request was accepted is replaced and the request
sent on a fresh one, since nothing was sent.

Answers are bounded: a body over `max_response_bytes` (declared by Content-Length, or counted as it
arrives) stops the read, closes the connection and is the `too_large` failure carrying the status; the
part read is dropped, so an endless body costs at most that many bytes of memory.

Connections are kept alive per (scheme, host, port). Before one is reused it is polled: readable means
the peer closed it (or sent bytes nobody asked for), so it is closed and another taken, as urllib3 does.
Connections idle longer than `max_idle_seconds` are not reused either: a server that closes an idle
connection just as we send (Node's default keep-alive is 5 s) would turn a safe call into an ambiguous
one. TLS is verified against certifi's bundle unless a context is given; no proxy or other setting is
read from the environment; redirects are answers, never followed."""

import http.client
import io
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
USER_AGENT = "martech-bridge"

FailureKind = Literal[
    "invalid_request",
    "dns_failure",
    "refused",
    "connect_timeout",
    "connect_failed",
    "tls_failure",
    "timeout",
    "dropped",
    "bad_response",
    "too_large",
]
NEVER_SENT: frozenset[FailureKind] = frozenset(
    {"invalid_request", "dns_failure", "refused", "connect_timeout", "connect_failed", "tls_failure"}
)

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_READ_CHUNK = 64 * 1024


class Headers(Mapping[str, str]):
    """Response headers, looked up in any case; repeated fields are joined with ", " (RFC 9110 5.3)."""

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._fields: dict[str, tuple[str, str]] = {}
        for name, value in items or ():
            key = name.lower()
            if key in self._fields:
                first, before = self._fields[key]
                self._fields[key] = (first, f"{before}, {value}")
            else:
                self._fields[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class Answer(msgspec.Struct, frozen=True):
    """The peer answered: a status line, headers and the whole body."""

    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class Failure:
    """No whole answer came. `kind` says where it stopped; `status` is set when a status line had arrived."""

    kind: FailureKind
    detail: str
    status: int | None = None
    reused: bool = False  # the call went out on a pooled connection
    elapsed: float = field(default=0.0, compare=False)

    @property
    def may_have_reached_peer(self) -> bool:
        """False only when no byte of the request left this process: then resending cannot act twice."""
        return self.kind not in NEVER_SENT


class _DeadlinePassed(Exception):
    """Raised from inside a read or write once the call's deadline has passed."""


class _Wire:
    """A connected socket whose every send and recv waits at most until the current call's deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = 0.0
        self.sent = 0  # bytes of the current request handed to the kernel
        self.received = 0  # bytes of the current answer read

    def _time_left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _DeadlinePassed
        return left

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self.sock.settimeout(self._time_left())
            try:
                count = self.sock.send(view)
            except TimeoutError:
                raise _DeadlinePassed from None
            self.sent += count
            view = view[count:]

    def recv_into(self, buffer: memoryview) -> int:
        self.sock.settimeout(self._time_left())
        try:
            count = self.sock.recv_into(buffer)
        except TimeoutError:
            raise _DeadlinePassed from None
        self.received += count
        return count

    def makefile(self, mode: str) -> io.BufferedReader:
        # http.client.HTTPResponse reads the answer through this; it closes the file, never the wire.
        return io.BufferedReader(_WireReader(self))

    def looks_dropped(self) -> bool:
        """True when the idle connection has become readable: the peer closed it or sent unasked bytes."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        try:
            if hasattr(select, "poll"):  # poll has no FD_SETSIZE limit; select is for platforms without it
                poller = select.poll()
                poller.register(self.sock, select.POLLIN | select.POLLERR | select.POLLHUP)
                return bool(poller.poll(0))
            readable, _, failed = select.select([self.sock], [], [self.sock], 0)
            return bool(readable or failed)
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class _WireReader(io.RawIOBase):
    def __init__(self, wire: _Wire) -> None:
        self._wire = wire

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._wire.recv_into(buffer)


class _Connection(msgspec.Struct):
    wire: _Wire
    idle_since: float = 0.0


class _Target(msgspec.Struct, frozen=True):
    scheme: str
    host: str
    port: int
    request_target: str
    host_header: str

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


class _NoConnection(Exception):
    def __init__(self, failure: Failure) -> None:
        self.failure = failure


@cache
def default_ssl_context() -> ssl.SSLContext:
    """Verification against certifi's bundle (the one requests used), built once: loading it takes ~10 ms."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class HttpClient:
    """Calls with a total deadline over keep-alive connections, safe to share between threads."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle_seconds: float = 4.0,
        max_idle_per_host: int = 8,
    ) -> None:
        self._ssl_context = ssl_context
        self._max_idle_seconds = max_idle_seconds
        self._max_idle_per_host = max_idle_per_host
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()

    def call(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        *,
        deadline_seconds: float,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> Answer | Failure:
        """One request and its whole answer within `deadline_seconds` of wall-clock time, or a Failure."""
        started = time.monotonic()
        deadline = started + deadline_seconds
        try:
            target = _parse_url(url)
            request = _serialise(method, target, headers or {}, body)
        except ValueError as exc:
            return Failure("invalid_request", str(exc), elapsed=time.monotonic() - started)
        while True:
            connection, reused = self._checkout(target, deadline)
            if isinstance(connection, Failure):
                return _stamped(connection, started)
            outcome = self._exchange(connection, reused, method, target, request, deadline, max_response_bytes)
            if outcome is None:
                continue  # a pooled connection failed before any byte left: nothing was sent, take another
            return _stamped(outcome, started)

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            pools, self._idle = self._idle, {}
        for pool in pools.values():
            for connection in pool:
                connection.wire.close()

    # ------------------------------------------------------------------ connections
    def _checkout(self, target: _Target, deadline: float) -> tuple[_Connection | Failure, bool]:
        stale: list[_Connection] = []
        found: _Connection | None = None
        now = time.monotonic()
        with self._lock:
            pool = self._idle.get(target.key, [])
            while pool:
                candidate = pool.pop()  # the most recently used first: the likeliest to be alive
                if now - candidate.idle_since > self._max_idle_seconds or candidate.wire.looks_dropped():
                    stale.append(candidate)
                    continue
                found = candidate
                break
        for connection in stale:
            connection.wire.close()
        if found is not None:
            return found, True
        try:
            return _Connection(_Wire(self._connect(target, deadline))), False
        except _NoConnection as refused:
            return refused.failure, False

    def _checkin(self, connection: _Connection, target: _Target) -> None:
        connection.idle_since = time.monotonic()
        with self._lock:
            pool = self._idle.setdefault(target.key, [])
            if len(pool) < self._max_idle_per_host:
                pool.append(connection)
                return
        connection.wire.close()

    def _connect(self, target: _Target, deadline: float) -> socket.socket:
        addresses = _resolve(target.host, target.port, deadline)
        errors: list[OSError] = []
        timed_out = False
        for family, kind, proto, _, address in addresses:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(left)
                sock.connect(address)
            except TimeoutError:
                sock.close()
                timed_out = True
                break
            except OSError as exc:
                sock.close()
                errors.append(exc)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # or small requests wait on delayed ACKs
            if target.scheme == "https":
                return self._handshake(sock, target, deadline)
            return sock
        if errors and all(isinstance(exc, ConnectionRefusedError) for exc in errors):
            raise _NoConnection(Failure("refused", f"connection refused by {target.host}:{target.port}"))
        if errors and not timed_out:
            raise _NoConnection(
                Failure("connect_failed", f"could not connect to {target.host}:{target.port}: {errors[-1]}")
            )
        raise _NoConnection(
            Failure("connect_timeout", f"no connection to {target.host}:{target.port} before the deadline")
        )

    def _handshake(self, sock: socket.socket, target: _Target, deadline: float) -> socket.socket:
        context = self._ssl_context or default_ssl_context()
        try:
            tls = context.wrap_socket(sock, server_hostname=target.host, do_handshake_on_connect=False)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            tls.settimeout(left)
            tls.do_handshake()
            return tls
        except TimeoutError:
            sock.close()
            raise _NoConnection(
                Failure("connect_timeout", f"TLS handshake with {target.host} not done before the deadline")
            ) from None
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise _NoConnection(
                Failure("tls_failure", f"certificate of {target.host} refused: {exc.verify_message}")
            ) from None
        except (ssl.SSLError, OSError, ValueError) as exc:
            sock.close()
            raise _NoConnection(Failure("tls_failure", f"TLS handshake with {target.host} failed: {exc}")) from None

    # ------------------------------------------------------------------ one exchange
    def _exchange(
        self,
        connection: _Connection,
        reused: bool,
        method: str,
        target: _Target,
        request: bytes,
        deadline: float,
        max_response_bytes: int,
    ) -> Answer | Failure | None:
        wire = connection.wire
        wire.deadline, wire.sent, wire.received = deadline, 0, 0
        status: int | None = None
        try:
            wire.sendall(request)
            response = _FinalResponse(wire, method=method)  # type: ignore[arg-type]
            response.begin()
            status = response.status
            if status == 101 or _conflicting_lengths(response.msg.get_all("Content-Length") or []):
                wire.close()
                return Failure("bad_response", f"an answer this client cannot use (HTTP {status})", status, reused)
            if response.length is not None and response.length > max_response_bytes:
                wire.close()
                return Failure("too_large", _too_large(response.length, max_response_bytes), status, reused)
            body = _read_body(response, max_response_bytes)
            if body is None:
                wire.close()
                return Failure("too_large", _too_large(None, max_response_bytes), status, reused)
        except _DeadlinePassed:
            wire.close()
            if wire.sent == 0:
                return Failure("connect_timeout", "the deadline passed before the request was sent", None, reused)
            where = "before the answer began" if status is None else f"while reading the HTTP {status} answer"
            return Failure("timeout", f"the deadline passed {where}", status, reused)
        except (http.client.HTTPException, ValueError) as exc:
            wire.close()
            if isinstance(exc, http.client.RemoteDisconnected | http.client.IncompleteRead):
                return _dropped(wire, reused, status, exc)
            return Failure("bad_response", f"not a valid HTTP/1.x answer: {type(exc).__name__}", status, reused)
        except OSError as exc:
            wire.close()
            return _dropped(wire, reused, status, exc)
        if response.will_close:
            wire.close()
        else:
            self._checkin(connection, target)
        return Answer(status, Headers(response.msg.items()), body)


class _FinalResponse(http.client.HTTPResponse):
    """http.client skips only `100 Continue`; RFC 9110 15.2 has a client skip every interim (1xx) answer -
    `102 Processing`, `103 Early Hints` - before the final one. Taking a 1xx as the answer would leave the
    real one on the connection for the next request to read."""

    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 102 <= status < 200:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim answer's headers, discarded


def _conflicting_lengths(values: list[str]) -> bool:
    """Two different Content-Length values (RFC 9112 6.3: unrecoverable): which body ends where is unknown."""
    lengths = {v.strip() for value in values for v in value.split(",")}
    return len(lengths) > 1


def _dropped(wire: _Wire, reused: bool, status: int | None, exc: BaseException) -> Failure | None:
    if wire.sent == 0:
        if reused:
            return None  # the pooled connection was dead and nothing of this request left: send it afresh
        return Failure("connect_failed", f"connection lost before the request was sent: {type(exc).__name__}")
    where = "before an answer" if status is None else f"while reading the HTTP {status} answer"
    return Failure("dropped", f"connection closed {where} ({type(exc).__name__})", status, reused)


def _read_body(response: http.client.HTTPResponse, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    while True:
        part = response.read(min(_READ_CHUNK, limit + 1 - size))
        if not part:
            if response.length:  # read(amt) stops quietly at EOF even when Content-Length promised more
                raise http.client.IncompleteRead(b"".join(parts), response.length)
            return b"".join(parts)
        size += len(part)
        if size > limit:
            return None
        parts.append(part)


def _too_large(declared: int | None, limit: int) -> str:
    said = f" (Content-Length {declared})" if declared is not None else ""
    return f"answer body over {limit} bytes{said}; not read further"


def _stamped(outcome: Answer | Failure, started: float) -> Answer | Failure:
    if isinstance(outcome, Failure):
        return Failure(outcome.kind, outcome.detail, outcome.status, outcome.reused, time.monotonic() - started)
    return outcome


def _resolve(host: str, port: int, deadline: float) -> list[tuple[Any, ...]]:
    try:  # an address literal needs no look-up, nor a thread
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass
    left = deadline - time.monotonic()
    if left <= 0:
        raise _NoConnection(Failure("connect_timeout", f"the deadline passed before {host} was looked up"))
    # A daemon thread per look-up (only when a new connection is made): a hung resolver keeps that thread,
    # never the call, nor other look-ups, nor the process at exit.
    found: list[Any] = []
    failed: list[OSError] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=look_up, name="http-client-dns", daemon=True).start()
    if not done.wait(left):
        raise _NoConnection(Failure("connect_timeout", f"looking up {host} took past the deadline"))
    if failed or not found:
        raise _NoConnection(Failure("dns_failure", f"{host} did not resolve: {failed[0] if failed else 'no address'}"))
    return found


def _parse_url(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"only http and https URLs are called, not {scheme or 'a relative URL'}")
    host = parts.hostname
    if not host:
        raise ValueError("the URL has no host")
    port = parts.port or (443 if scheme == "https" else 80)  # .port raises ValueError when out of range
    default = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    path = parts.path or "/"
    request_target = path + (f"?{parts.query}" if parts.query else "")
    if _BAD_TARGET.search(request_target):
        raise ValueError("the URL's path or query holds a space or control character")
    return _Target(scheme, host, port, request_target, shown if port == default else f"{shown}:{port}")


def _serialise(method: str, target: _Target, headers: Mapping[str, str], body: bytes | None) -> bytes:
    if not _TOKEN.fullmatch(method):
        raise ValueError("the method is not an HTTP token")
    given = {name.lower() for name in headers}
    lines = [f"{method} {target.request_target} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {target.host_header}")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in given:
        lines.append("Accept: */*")
    # identity: nothing to decompress, so the size bound is on what the peer meant to send
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: identity")
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"header name {name!r} is not an HTTP token")
        if name.lower() == "content-length":
            continue  # computed below from the body actually sent
        if _BAD_VALUE.search(value):
            raise ValueError(f"header {name} holds a line break or NUL")
        lines.append(f"{name}: {value}")
    if body is not None or method.upper() in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("a header or the URL is not Latin-1 text") from None
    return head + (body or b"")  # one write: no Nagle/delayed-ACK stall between head and body


@cache
def _default_client() -> HttpClient:
    return HttpClient()


def call(
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    *,
    deadline_seconds: float,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> Answer | Failure:
    """`HttpClient.call` through the process's shared client (verified TLS, pooled connections)."""
    return _default_client().call(
        method, url, headers, body, deadline_seconds=deadline_seconds, max_response_bytes=max_response_bytes
    )
