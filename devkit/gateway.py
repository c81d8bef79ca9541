"""The local HTTP API: serves every HttpApi route of template.yaml on loopback, turning each request into
an API Gateway HTTP API payload-2.0 event and the function's answer back into HTTP, as AWS does."""

import base64
import hmac
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from devkit.runtime import InvocationError, LocalFunction
from devkit.template import ACCOUNT_ID, HttpRoute

API_ID = "localapi"
# API Gateway's HTTP API payload quota; above it AWS answers 413 before any function runs.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
LOCAL_SANDBOX = "/_local/sandbox/"
_DRAIN_LIMIT = 64 * 1024 * 1024
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/graphql")


def is_text_content(content_type: str | None) -> bool:
    """HTTP APIs hand text bodies over as is and base64-encode everything else (form posts, binary, bodies
    without a Content-Type, and structured-suffix types such as application/vnd.api+json or
    application/soap+xml, which are not in the text list), so handlers must accept both."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES


def decoded_path(target: str) -> str:
    """The path as an HTTP API hands it over (rawPath) and routes on: percent-decoded (%2F is a `/`, so
    /subscriptions/a%2Fb@x.com is three segments), cut at a `?` or `#` that decoding reveals."""
    path = unquote(urlsplit(target).path or "/")
    for stop in ("?", "#"):
        path = path.split(stop, 1)[0]
    return path or "/"


def match_route(routes: list[HttpRoute], method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
    fallback = None
    for route in routes:
        if route.pattern is None:
            fallback = fallback or route
            continue
        if route.method not in (method, "ANY"):
            continue
        found = route.pattern.match(path)
        if found:
            # The path is already decoded (decoded_path): parameters are taken as they stand.
            return route, dict(found.groupdict())
    return (fallback, {}) if fallback else None


def build_event(
    *,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    route: HttpRoute,
    path_parameters: Mapping[str, str],
    source_ip: str = "127.0.0.1",
    host: str = "127.0.0.1:3000",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event for one request."""
    split = urlsplit(target)
    raw_path = decoded_path(target)
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(split.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = datetime.now(UTC)
    request_id = base64.b32encode(uuid.uuid4().bytes).decode()[:16].rstrip("=")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": split.query,
        "headers": merged,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        if is_text_content(merged.get("content-type")):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def translate_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A payload-2.0 function result as HTTP: a dict with statusCode is taken as is; anything else is
    JSON with status 200, as API Gateway infers it."""
    if isinstance(result, dict) and "statusCode" in result:
        status = int(result["statusCode"])
        headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((name, str(v)) for v in values)
        headers.extend(("Set-Cookie", c) for c in result.get("cookies") or [])
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
        return status, headers, data
    body = result if isinstance(result, str) else json.dumps(result)
    return 200, [("Content-Type", "application/json")], body.encode("utf-8")


class Gateway:
    def __init__(
        self,
        routes: list[HttpRoute],
        functions: Mapping[str, LocalFunction],
        host: str = "127.0.0.1",
        port: int = 3000,
        log: Any = None,
        sandbox_url: str | None = None,
        api_keys: tuple[str, ...] = (),
    ) -> None:
        self.routes = routes
        self.functions = functions
        self.log = log or (lambda line: None)
        # Local only: the console's sandbox tab reads /_local/sandbox/... (the sandbox's control API, behind
        # the operator API keys); a deployed API has no such path.
        self.sandbox_url = sandbox_url
        self.api_keys = api_keys
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "MartechBridgeLocal/1.0"
            # Headers and body go out as separate writes; without TCP_NODELAY each answer waits ~40 ms
            # for the client's delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                # Protocol errors (414 URI too long, 431 headers too large, a bad request line) in JSON, as
                # API Gateway answers them, never http.server's HTML page.
                body = json.dumps({"message": message or self.responses.get(code, ("Error",))[0]}).encode()
                self.close_connection = True
                # An unparsable request line leaves http.server at HTTP/0.9, which has no status line.
                self.request_version = "HTTP/1.1"
                try:
                    self.send_response(code, message)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                        self.wfile.write(body)
                except OSError:
                    pass  # the client is gone; nothing to tell it

            def _serve(self) -> None:
                gateway.handle(self)

            def __getattr__(self, name: str) -> Any:
                # Every method goes through the API (its $default route answers any other), never
                # http.server's own HTML 501.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

        self.server = _Server((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Gateway":
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        method = req.command
        try:
            body = _read_body(req)
        except _TooLarge:
            self._reply(req, 413, [("Content-Type", "application/json")], b'{"message":"Request Entity Too Large"}')
            req.close_connection = True
            return
        except ValueError:
            self._reply(req, 400, [("Content-Type", "application/json")], b'{"message":"Bad Request"}')
            req.close_connection = True
            return
        if self.sandbox_url and req.path.startswith(LOCAL_SANDBOX):
            self._reply(req, *self._sandbox_control(method, req.path, req.headers.get("X-Api-Key", ""), body))
            return
        found = match_route(self.routes, method, decoded_path(req.path))
        if found is None:
            self._reply(req, 404, [("Content-Type", "application/json")], b'{"message":"Not Found"}')
            return
        route, params = found
        event = build_event(
            method=method,
            target=req.path,
            headers=list(req.headers.items()),
            body=body,
            route=route,
            path_parameters=params,
            source_ip=req.client_address[0],
            host=req.headers.get("Host", f"127.0.0.1:{self.port}"),
        )
        function = self.functions[route.function]
        request_id = event["requestContext"]["requestId"]
        try:
            status, headers, data = translate_response(function.invoke(event))
        except InvocationError as exc:
            # What API Gateway answers when the integration fails; the details go to the console only.
            self.log(f"{route.function} failed: {exc.error_type}: {exc.message}")
            for line in exc.stack[-8:]:
                self.log(f"    {line}")
            timed_out = exc.error_type == "Sandbox.Timedout"
            status = 503 if timed_out else 500
            message = b'{"message":"Service Unavailable"}' if timed_out else b'{"message":"Internal Server Error"}'
            headers, data = [("Content-Type", "application/json")], message
        # The route, not the path: paths carry e-mail addresses (as the deployed access log, routeKey only).
        self.log(
            f"{time.strftime('%H:%M:%S')} {status}   {route.route_key} -> {route.function} "
            f"{(time.monotonic() - started) * 1000:.0f} ms [{request_id}]"
        )
        self._reply(req, status, headers, data, head=method == "HEAD", request_id=request_id)

    def _sandbox_control(
        self, method: str, path: str, key: str, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The sandbox's health, and each provider's received requests and fault switches, for the console."""
        json_type = [("Content-Type", "application/json")]
        if not key or not any(hmac.compare_digest(key.encode(), k.encode()) for k in self.api_keys):
            return 401, json_type, b'{"error":{"code":"unauthorized","message":"Missing or invalid API key"}}'
        rest = path[len(LOCAL_SANDBOX) :]
        if not re.fullmatch(r"health|[a-z]+/(requests|faults)", rest) or method not in ("GET", "POST", "DELETE"):
            return 404, json_type, b'{"error":{"code":"not_found","message":"No such sandbox control path"}}'
        url = f"{self.sandbox_url}/_sandbox/{rest}"
        request = urllib.request.Request(url, data=body or None, method=method, headers=dict(json_type))  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback sandbox URL
                return answer.status, json_type, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, json_type, exc.read()
        except OSError:  # URLError, refused, reset, timed out: the sandbox is down, not the caller's fault
            down = {"error": {"code": "sandbox_unavailable", "message": "The local sandbox did not answer"}}
            return 502, json_type, json.dumps(down).encode()

    @staticmethod
    def _reply(
        req: BaseHTTPRequestHandler,
        status: int,
        headers: list[tuple[str, str]],
        data: bytes,
        head: bool = False,
        request_id: str | None = None,
    ) -> None:
        req.send_response(status)
        names = {k.lower() for k, _ in headers}
        for name, value in headers:
            req.send_header(name, value)
        if "content-length" not in names:
            req.send_header("Content-Length", str(len(data)))
        # The id the function's log lines carry as correlation_id, as API Gateway's header does.
        req.send_header("apigw-requestid", request_id or uuid.uuid4().hex[:16])
        req.end_headers()
        if not head:
            req.wfile.write(data)


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 resets connections when a Marketo batch or a bench opens 50 at once.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that disconnects mid-answer is routine: no traceback on the console.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _TooLarge(Exception):
    pass


def _read_body(req: BaseHTTPRequestHandler) -> bytes:
    codings = [c.strip().lower() for c in req.headers.get("Transfer-Encoding", "").split(",") if c.strip()]
    if codings and codings[-1] != "chunked":
        # RFC 9112 6.3: a request whose last transfer coding is not chunked cannot be framed: 400.
        raise ValueError("transfer coding without chunked framing")
    if codings:
        # `gzip, chunked` is framed by chunks like plain `chunked`; the body stays as the client coded it.
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(req.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                req.rfile.readline()
                return b"".join(chunks)
            total += size
            if total > MAX_PAYLOAD_BYTES:
                raise _TooLarge
            chunks.append(req.rfile.read(size))
            req.rfile.readline()
    length = int(req.headers.get("Content-Length") or 0)
    if length < 0:
        raise ValueError("negative Content-Length")
    if length > MAX_PAYLOAD_BYTES:
        # Read (and drop) what the client is sending so it sees the 413 rather than a broken pipe.
        remaining = min(length, _DRAIN_LIMIT)
        while remaining > 0:
            chunk = req.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        raise _TooLarge
    data = req.rfile.read(length) if length else b""
    if len(data) < length:
        # The client hung up mid-body: nothing to invoke, nobody to answer (API Gateway drops it too).
        raise ConnectionAbortedError("client closed the connection before sending its whole body")
    return data
