"""The outbound HTTP client against real loopback servers that misbehave on purpose: trickling, silent,
refusing, blackholed, endless, closing pooled connections, and serving TLS with certificates made here."""

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from martech_bridge.adapters.http_client import Answer, Failure, HttpClient
from martech_bridge.adapters.targets.base import TargetRequest, TargetResponse, send
from martech_bridge.logic.delivery import Outcome

TRICKLE_GAP = 0.3  # seconds between two bytes from a trickling peer
DEADLINE = 1.0
SLACK = 0.5  # a correctness bound (the call ends at its deadline), not a speed target

Handler = Callable[[socket.socket], None]


class LoopbackServer:
    """Accepts on 127.0.0.1 and runs `handler` on each connection in its own thread (wrapped in TLS if asked)."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handler(conn)
        except OSError:
            pass  # the client gave up: that is what most of these tests are about
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def start(handler: Handler, tls: ssl.SSLContext | None = None) -> LoopbackServer:
        servers.append(LoopbackServer(handler, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def client() -> Iterator[HttpClient]:
    one = HttpClient()
    yield one
    one.close()


def read_request(conn: socket.socket) -> bytes:
    """One request's head and Content-Length body; b"" when the client closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return b""
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def trickle(conn: socket.socket, data: bytes) -> None:
    for byte in data:
        conn.sendall(bytes([byte]))
        time.sleep(TRICKLE_GAP)


def answer(conn: socket.socket, status: str = "200 OK", body: bytes = b"{}", extra: str = "") -> None:
    conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body)


def keep_alive(conn: socket.socket) -> None:
    while read_request(conn):
        answer(conn, body=b'{"ok":true}')


def timed(fn: Callable[[], Answer | Failure]) -> tuple[Answer | Failure, float]:
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


# ---------------------------------------------------------------- deadlines over trickling peers


STATUS_LINE = b"HTTP/1.1 200 OK\r\n"
HEADERS = b"Content-Type: application/json\r\nX-Padding: abcdefghijklmnop\r\nContent-Length: 2\r\n\r\n"


@pytest.mark.parametrize(
    ("phase", "prefix", "trickled", "status"),
    [
        ("status line", b"", STATUS_LINE + HEADERS + b"{}", None),
        ("headers", STATUS_LINE, HEADERS + b"{}", None),
        ("body", STATUS_LINE + HEADERS.replace(b"Length: 2", b"Length: 20"), b'{"a":"bcdefghijkl"}', 200),
    ],
)
def test_a_peer_trickling_one_byte_at_a_time_is_cut_off_at_the_deadline(
    serve, client: HttpClient, phase: str, prefix: bytes, trickled: bytes, status: int | None
) -> None:
    # Whole answer: at least 17 bytes x 0.3 s, far past the deadline; each byte comes well inside any per-read timeout.
    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(prefix)
        trickle(conn, trickled)

    server = serve(handler)
    result, elapsed = timed(lambda: client.call("POST", server.url(), {}, b"{}", deadline_seconds=DEADLINE))

    assert isinstance(result, Failure), phase
    assert result.kind == "timeout"
    assert result.may_have_reached_peer
    assert result.status == status
    assert elapsed < DEADLINE + SLACK


def test_a_peer_that_accepts_and_never_answers_is_an_ambiguous_timeout(serve, client: HttpClient) -> None:
    server = serve(lambda conn: (read_request(conn), server.stopping.wait(10)))
    result, elapsed = timed(lambda: client.call("POST", server.url(), {}, b"{}", deadline_seconds=DEADLINE))

    assert isinstance(result, Failure)
    assert (result.kind, result.may_have_reached_peer) == ("timeout", True)
    assert elapsed < DEADLINE + SLACK


def test_a_peer_that_never_reads_the_body_is_cut_off_while_sending(serve, client: HttpClient) -> None:
    # 16 MiB is more than both sockets' buffers hold: send() blocks once they are full.
    server = serve(lambda conn: server.stopping.wait(10))
    result, elapsed = timed(
        lambda: client.call("POST", server.url(), {}, b"x" * (16 * 1024 * 1024), deadline_seconds=DEADLINE)
    )

    assert isinstance(result, Failure)
    assert (result.kind, result.may_have_reached_peer) == ("timeout", True)
    assert elapsed < DEADLINE + SLACK


def test_a_trickling_https_peer_is_cut_off_at_the_deadline(serve, certificate) -> None:
    cert, key, trust = certificate("127.0.0.1")

    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(STATUS_LINE + HEADERS.replace(b"Length: 2", b"Length: 20"))
        trickle(conn, b'{"a":"bcdefghijkl"}')

    server = serve(handler, tls=server_context(cert, key))
    client = HttpClient(ssl_context=trust)
    result, elapsed = timed(lambda: client.call("GET", server.url(), deadline_seconds=DEADLINE))

    assert isinstance(result, Failure)
    assert (result.kind, result.status, result.may_have_reached_peer) == ("timeout", 200, True)
    assert elapsed < DEADLINE + SLACK


def test_a_tls_handshake_that_never_completes_ends_at_the_deadline_unsent(serve, client: HttpClient) -> None:
    # A plain TCP server behind an https URL: it accepts and never speaks TLS.
    server = serve(lambda conn: server.stopping.wait(10))
    url = f"https://127.0.0.1:{server.port}/"
    result, elapsed = timed(lambda: client.call("POST", url, {}, b"{}", deadline_seconds=DEADLINE))

    assert isinstance(result, Failure)
    assert (result.kind, result.may_have_reached_peer) == ("connect_timeout", False)
    assert elapsed < DEADLINE + SLACK


# ---------------------------------------------------------------- connect failures: never sent


def test_a_refused_port_is_never_sent(client: HttpClient) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]  # bound, not listening: the kernel answers RST
    try:
        result = client.call("POST", f"http://127.0.0.1:{port}/", {}, b"{}", deadline_seconds=DEADLINE)
    finally:
        closed.close()

    assert isinstance(result, Failure)
    assert (result.kind, result.may_have_reached_peer) == ("refused", False)


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port whose SYNs go unanswered: a listener that never accepts, with its accept queue full."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(("127.0.0.1", port))
        blackholed = False
    except TimeoutError:
        blackholed = True
    finally:
        probe.close()
    if not blackholed:
        pytest.skip("this kernel accepts connections past a full backlog (SYN cookies); no local blackhole")
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


def test_a_blackholed_connect_ends_at_the_deadline_unsent(client: HttpClient, blackhole: int) -> None:
    result, elapsed = timed(
        lambda: client.call("POST", f"http://127.0.0.1:{blackhole}/", {}, b"{}", deadline_seconds=DEADLINE)
    )

    assert isinstance(result, Failure)
    assert (result.kind, result.may_have_reached_peer) == ("connect_timeout", False)
    assert elapsed < DEADLINE + SLACK


def test_an_unsendable_header_is_refused_before_any_connection(serve, client: HttpClient) -> None:
    server = serve(keep_alive)
    result = client.call("GET", server.url(), {"X-Evil": "a\r\nInjected: 1"}, deadline_seconds=DEADLINE)

    assert isinstance(result, Failure)
    assert (result.kind, result.may_have_reached_peer) == ("invalid_request", False)
    assert server.connections == 0


# ---------------------------------------------------------------- after sending: ambiguous


def test_a_connection_closed_without_an_answer_is_dropped_and_ambiguous(serve, client: HttpClient) -> None:
    server = serve(read_request)  # reads the request, then closes
    result = client.call("POST", server.url(), {}, b"{}", deadline_seconds=DEADLINE)

    assert isinstance(result, Failure)
    assert (result.kind, result.may_have_reached_peer, result.reused) == ("dropped", True, False)


def test_a_body_cut_short_is_dropped_with_its_status(serve, client: HttpClient) -> None:
    server = serve(
        lambda conn: (read_request(conn), conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n{}"))
    )
    result = client.call("POST", server.url(), {}, b"{}", deadline_seconds=DEADLINE)

    assert isinstance(result, Failure)
    assert (result.kind, result.status, result.may_have_reached_peer) == ("dropped", 201, True)


def test_an_answer_that_is_not_http_is_a_bad_response(serve, client: HttpClient) -> None:
    server = serve(lambda conn: (read_request(conn), conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")))
    result = client.call("POST", server.url(), {}, b"{}", deadline_seconds=DEADLINE)

    assert isinstance(result, Failure)
    assert (result.kind, result.may_have_reached_peer) == ("bad_response", True)


def test_an_endless_body_stops_at_the_size_bound(serve, client: HttpClient) -> None:
    sent = []

    def endless(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        block = b"x" * 65536
        while not server.stopping.is_set():
            conn.sendall(block)
            sent.append(len(block))

    server = serve(endless)
    result = client.call("GET", server.url(), deadline_seconds=10, max_response_bytes=256 * 1024)

    assert isinstance(result, Failure)
    assert (result.kind, result.status, result.may_have_reached_peer) == ("too_large", 200, True)
    assert "262144 bytes" in result.detail


def test_a_declared_oversized_body_is_refused_unread(serve, client: HttpClient) -> None:
    server = serve(lambda conn: (read_request(conn), answer(conn, body=b"x" * 2048)))
    result = client.call("GET", server.url(), deadline_seconds=DEADLINE, max_response_bytes=1024)

    assert isinstance(result, Failure)
    assert (result.kind, result.status) == ("too_large", 200)
    assert "Content-Length 2048" in result.detail


# ---------------------------------------------------------------- answers and pooled connections


def test_headers_are_read_in_any_case_and_redirects_are_answers(serve, client: HttpClient) -> None:
    server = serve(
        lambda conn: (
            read_request(conn),
            answer(
                conn,
                "302 Found",
                b"",
                "location: https://elsewhere.example/\r\nretry-after: 3\r\nX-RATELIMIT-RESET: 9\r\n",
            ),
        )
    )
    result = client.call("GET", server.url("/v1/x?q=1"), deadline_seconds=DEADLINE)

    assert isinstance(result, Answer)
    assert result.status == 302
    assert (result.headers["Retry-After"], result.headers.get("x-ratelimit-reset")) == ("3", "9")
    assert result.headers["Location"] == "https://elsewhere.example/"
    assert server.connections == 1  # the redirect was not followed


def test_the_request_arrives_as_given(serve, client: HttpClient) -> None:
    seen: list[bytes] = []

    def record(conn: socket.socket) -> None:
        seen.append(read_request(conn))
        answer(conn, body=b"ok")

    server = serve(record)
    result = client.call(
        "PUT", server.url("/k/v1/record.json?app=1"), {"X-Cybozu-API-Token": "t"}, b'{"a":1}', deadline_seconds=DEADLINE
    )

    assert isinstance(result, Answer) and result.body == b"ok"
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"PUT /k/v1/record.json?app=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"X-Cybozu-API-Token: t" in lines and b"Content-Length: 7" in lines
    assert body == b'{"a":1}'


def test_keep_alive_connections_are_reused(serve, client: HttpClient) -> None:
    server = serve(keep_alive)
    for _ in range(3):
        assert isinstance(client.call("GET", server.url(), deadline_seconds=DEADLINE), Answer)

    assert server.connections == 1


def test_a_host_name_is_looked_up_and_its_connection_pooled(serve, client: HttpClient) -> None:
    # localhost comes from /etc/hosts: the look-up path (on its worker thread) without any DNS server.
    server = serve(keep_alive)
    url = f"http://localhost:{server.port}/"
    results = [client.call("GET", url, deadline_seconds=DEADLINE) for _ in range(2)]

    assert all(isinstance(result, Answer) and result.status == 200 for result in results)
    assert server.connections == 1


def test_a_pooled_connection_the_peer_closed_is_not_reused(serve, client: HttpClient) -> None:
    closed = threading.Event()

    def answer_once_then_close(conn: socket.socket) -> None:
        read_request(conn)
        answer(conn, body=b"first")  # keep-alive by default in HTTP/1.1, then the server hangs up anyway
        conn.close()
        closed.set()

    server = serve(answer_once_then_close)
    first = client.call("POST", server.url(), {}, b"{}", deadline_seconds=DEADLINE)
    assert closed.wait(2)
    time.sleep(0.05)  # the FIN crosses loopback
    second = client.call("POST", server.url(), {}, b"{}", deadline_seconds=DEADLINE)

    assert isinstance(first, Answer) and isinstance(second, Answer)
    assert server.connections == 2
    assert second.body == b"first"


def test_a_connection_idle_past_the_limit_is_not_reused(serve) -> None:
    server = serve(keep_alive)
    client = HttpClient(max_idle_seconds=0.2)
    assert isinstance(client.call("GET", server.url(), deadline_seconds=DEADLINE), Answer)
    time.sleep(0.3)
    assert isinstance(client.call("GET", server.url(), deadline_seconds=DEADLINE), Answer)

    assert server.connections == 2


def test_threads_share_the_client(serve, client: HttpClient) -> None:
    server = serve(keep_alive)
    results: list[Answer | Failure] = []

    def worker() -> None:
        for _ in range(20):
            results.append(client.call("GET", server.url(), deadline_seconds=5))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 80 and all(isinstance(r, Answer) and r.status == 200 for r in results)
    assert server.connections <= 4


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path, ssl.SSLContext]]:
    """A self-signed certificate for `name` (a DNS name or an IP address), its key, and a context trusting it."""

    def make(name: str) -> tuple[Path, Path, ssl.SSLContext]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        try:
            alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            alt = x509.DNSName(name)
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        folder = tmp_path_factory.mktemp("tls")
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        (folder / "cert.pem").write_bytes(cert_pem)
        (folder / "key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        trust = ssl.create_default_context(cadata=cert_pem.decode("ascii"))
        return folder / "cert.pem", folder / "key.pem", trust

    return make


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_https_with_a_trusted_certificate_works_and_keeps_its_connection(serve, certificate) -> None:
    cert, key, trust = certificate("127.0.0.1")
    server = serve(keep_alive, tls=server_context(cert, key))
    client = HttpClient(ssl_context=trust)
    first = client.call("GET", server.url(), deadline_seconds=5)
    second = client.call("GET", server.url(), deadline_seconds=5)

    assert isinstance(first, Answer) and isinstance(second, Answer)
    assert first.body == b'{"ok":true}'
    assert server.connections == 1


@pytest.mark.parametrize("case", ["certifi bundle", "another certificate", "another host name"])
def test_https_fails_closed_on_a_certificate_it_does_not_trust(serve, certificate, case: str) -> None:
    cert, key, trust = certificate("127.0.0.1" if case != "another host name" else "kintone.example")
    _, _, other_trust = certificate("127.0.0.1")
    seen: list[bytes] = []
    server = serve(lambda conn: seen.append(read_request(conn)), tls=server_context(cert, key))
    client = HttpClient(ssl_context={"certifi bundle": None, "another certificate": other_trust}.get(case, trust))
    result = client.call("POST", server.url(), {"Authorization": "Bearer secret"}, b"{}", deadline_seconds=5)

    assert isinstance(result, Failure)
    assert (result.kind, result.may_have_reached_peer) == ("tls_failure", False)
    assert seen == []  # the request, and its credentials, never went out


# ---------------------------------------------------------------- the target path


def target_request(url: str, timeout: float = 10.0) -> TargetRequest:
    return TargetRequest("POST", url, {"Content-Type": "application/json"}, b"{}", timeout, idempotent=False)


def test_a_target_trickling_its_answer_is_cut_off_at_the_relays_deadline(serve) -> None:
    def handler(conn: socket.socket) -> None:
        read_request(conn)
        trickle(conn, STATUS_LINE + HEADERS + b"{}")

    server = serve(handler)
    started = time.monotonic()
    outcome = send(target_request(server.url()), deadline=DEADLINE)
    elapsed = time.monotonic() - started

    assert isinstance(outcome, Outcome)
    assert (outcome.verdict, outcome.status, outcome.ambiguous) == ("retry", None, True)
    assert elapsed < DEADLINE + SLACK


def test_a_refused_target_is_not_ambiguous() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    try:
        outcome = send(target_request(f"http://127.0.0.1:{closed.getsockname()[1]}/"), deadline=DEADLINE)
    finally:
        closed.close()

    assert isinstance(outcome, Outcome)
    assert (outcome.verdict, outcome.ambiguous, outcome.error) == ("retry", False, "connection refused")


def test_a_target_answer_keeps_case_insensitive_headers(serve) -> None:
    server = serve(
        lambda conn: (read_request(conn), answer(conn, "429 Too Many Requests", b"{}", "retry-after: 7\r\n"))
    )
    response = send(target_request(server.url()), deadline=DEADLINE)

    assert isinstance(response, TargetResponse)
    assert (response.status, response.headers["Retry-After"]) == (429, "7")


# ---------------------------------------------------------------- interim answers and framing


def test_interim_answers_are_skipped_and_never_left_for_the_next_request(serve, client: HttpClient) -> None:
    def early_hints_then_final(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        conn.sendall(b"HTTP/1.1 102 Processing\r\n\r\n")
        answer(conn, "201 Created", b'{"for":"A"}')
        read_request(conn)
        answer(conn, "400 Bad Request", b'{"for":"B"}')

    server = serve(early_hints_then_final)
    first = client.call("POST", server.url(), {}, b"{}", deadline_seconds=DEADLINE)
    second = client.call("POST", server.url(), {}, b"{}", deadline_seconds=DEADLINE)

    assert isinstance(first, Answer) and (first.status, first.body) == (201, b'{"for":"A"}')
    assert isinstance(second, Answer) and (second.status, second.body) == (400, b'{"for":"B"}')


def test_two_different_content_lengths_are_a_bad_response(serve, client: HttpClient) -> None:
    server = serve(
        lambda conn: (read_request(conn), conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 5\r\n\r\n{}abc"))
    )
    result = client.call("POST", server.url(), {}, b"{}", deadline_seconds=DEADLINE)

    assert isinstance(result, Failure) and result.kind == "bad_response"


def test_a_2xx_whose_body_cannot_be_read_is_still_the_targets_yes(serve) -> None:
    server = serve(lambda conn: (read_request(conn), conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n{}")))
    result = send(target_request(server.url()))

    assert isinstance(result, TargetResponse) and result.status == 201  # delivered, never resent
