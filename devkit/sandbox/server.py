"""One loopback HTTP server for every sandboxed provider, each under its own prefix (/kintone, /sendgrid,
/braze, /infobip, /karte, and /http for any other API), so a provider's base URL setting is all that points the bridge at it.

Control API (JSON), for tests and for poking at flows by hand:
  GET    /_sandbox/health
  POST   /_sandbox/reset                      forget every request, record, fault and setting
  POST   /_sandbox/<provider>/faults          queue a fault for the next `count` calls:
         {"count": 2, "status": 503, "body": {...}, "headers": {...}, "retry_after": 3,
          "delay": 12.5, "drop": false, "apply": false}
         status: answer with it instead of the real reply; retry_after: adds Retry-After (on a 429 from
         SendGrid or Braze, their X-RateLimit-* headers instead, reset that many seconds ahead);
         delay: wait this long before answering (the call is carried out first, so a client that gives
         up has an ambiguous result); drop: close the connection without an answer;
         apply: carry the call out before a status or drop fault (default: not carried out)
  GET/DELETE /_sandbox/<provider>/faults
  GET/DELETE /_sandbox/<provider>/requests    every request received, in order, with any fault applied
  *      /_sandbox/<provider>/...             provider set-up (kintone apps, Braze campaigns, sent mail,
         SendGrid's and Braze's suppression lists and mailboxes that bounce), each in its provider's module:
  PUT    /_sandbox/kintone/apps/<n>           {"fields": {...}, "records": [...], "tokens": [...]}
  GET    /_sandbox/kintone/apps/<n>           its records
  POST   /_sandbox/{sendgrid,braze,infobip}/mailboxes   {"email", "outcome": "bounce" | "deliver"}
  GET    /_sandbox/{sendgrid,braze,infobip}/suppressions
  POST   /_sandbox/sendgrid/suppressions      {"list": bounces|blocks|spam_reports|invalid_emails|
                                              global_unsubscribes, "email"}
  POST   /_sandbox/braze/suppressions         {"list": hard_bounces|spam, "email"}
  GET/POST /_sandbox/braze/email_status       Braze's e-mail subscription state per address
  PUT    /_sandbox/braze/campaigns/<id>       {"state": active|paused|archived|missing|not_transactional}
  POST   /_sandbox/infobip/suppressions       {"domainName", "emailAddress", "type": BOUNCE|COMPLAINT|OVER_QUOTA}
  GET/POST /_sandbox/infobip/domains          the account's domains: {"domainName", "dataAccess", flags
                                              such as "deleteBounces": false}
  POST/DELETE /_sandbox/infobip/outages       {"domainName", "status"}: every suppression call about it fails
  GET    /_sandbox/karte/events               what the KARTE sink wrote
"""

import base64
import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from devkit.sandbox.base import Provider, Reply, Request
from devkit.sandbox.braze import Braze
from devkit.sandbox.callbacks import EventCallbacks
from devkit.sandbox.generic import GenericApi
from devkit.sandbox.infobip import Infobip
from devkit.sandbox.karte import Karte
from devkit.sandbox.kintone import Kintone
from devkit.sandbox.sendgrid import SendGrid

# Credentials the sandbox accepts unless told otherwise; env.json holds the same values.
DEFAULT_CREDENTIALS = {
    "kintone": ["local-kintone-token", "local-kintone-token-2"],
    "sendgrid": ["SG.local-sandbox-key"],
    "braze": ["local-braze-key"],
    "infobip": ["local-infobip-key"],
    "karte": ["local-karte-token"],
    "http": ["local-http-token"],
}


@dataclass
class Fault:
    count: int = 1
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    delay: float = 0.0
    drop: bool = False
    apply: bool = False

    @classmethod
    def parse(cls, data: Any) -> "Fault":
        if not isinstance(data, dict):
            raise ValueError("a fault is a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        fault = cls(**data)
        if fault.count < 1:
            raise ValueError("count must be at least 1")
        if fault.status is None and not fault.drop and not fault.delay:
            raise ValueError("a fault needs a status, a delay or drop")
        return fault

    def describe(self) -> str:
        bits = []
        if self.drop:
            bits.append("drop")
        if self.status:
            bits.append(str(self.status))
        if self.delay:
            bits.append(f"delay {self.delay}s")
        return "+".join(bits)


class _ProviderState:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.faults: deque[Fault] = deque()
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def next_fault(self) -> Fault | None:
        with self.lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            fault.count -= 1
            if fault.count <= 0:
                self.faults.popleft()
            return fault


class Sandbox:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 3100,
        credentials: dict[str, list[str]] | None = None,
        kintone_basic_auth: tuple[str, str] | None = None,
    ) -> None:
        creds = {**DEFAULT_CREDENTIALS, **(credentials or {})}
        providers: list[Provider] = [
            Kintone(creds["kintone"], basic_auth=kintone_basic_auth),
            SendGrid(creds["sendgrid"]),
            Braze(creds["braze"]),
            Infobip(creds["infobip"]),
            Karte(creds["karte"]),
            GenericApi(creds["http"]),
        ]
        self.states = {p.name: _ProviderState(p) for p in providers}
        # Set by the local stack: posts accepted mail's event webhooks back to the bridge (callbacks.py).
        self.callbacks: EventCallbacks | None = None
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "MartechBridgeSandbox/1.0"
            disable_nagle_algorithm = True  # see devkit/gateway.py

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def _serve(self) -> None:
                sandbox._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base_url(self, provider: str) -> str:
        return f"{self.url}/{provider}"

    def start(self) -> "Sandbox":
        threading.Thread(target=self.server.serve_forever, name="sandbox", daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def provider(self, name: str) -> Provider:
        return self.states[name].provider

    # ------------------------------------------------------------------ HTTP
    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        split = urlsplit(req.path)
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length > 0 else b""
        segments = split.path.split("/", 2)  # "", first, rest
        first = segments[1] if len(segments) > 1 else ""
        rest = "/" + segments[2] if len(segments) > 2 else "/"
        if first == "_sandbox":
            self._reply(req, self._control(req.command, rest, body))
            return
        state = self.states.get(first)
        if state is None:
            self._reply(req, Reply(404, {"error": f"no sandboxed provider at /{first}"}))
            return
        request = Request.build(req.command, rest, split.query, {k.lower(): v for k, v in req.headers.items()}, body)
        fault = state.next_fault()
        record = {
            "time": time.time(),
            "method": req.command,
            "path": rest,
            "query": split.query,
            "headers": dict(request.headers),
            "body": _body_for_record(body),
            "fault": fault.describe() if fault else None,
        }
        with state.lock:
            state.requests.append(record)
        if fault is None:
            answer = state.provider.handle(request)
            self._reply(req, answer)
            if self.callbacks is not None:
                self.callbacks.after(first, request, answer, state.provider)
            return
        reply: Reply | None = None
        if fault.apply or (fault.status is None and not fault.drop):
            reply = state.provider.handle(request)
        if fault.delay:
            time.sleep(fault.delay)
        if fault.drop:
            _reset_connection(req)
            return
        if fault.status is not None:
            headers = dict(fault.headers)
            pacing = getattr(state.provider, "pacing_headers", None)  # a vendor's own rate-limit headers
            if pacing is not None and fault.status == 429:
                headers = {**pacing(fault.retry_after), **headers}
            elif fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            reply = Reply(
                fault.status, fault.body if fault.body is not None else _default_error(first, fault.status), headers
            )
        assert reply is not None
        self._reply(req, reply)

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        try:
            data = json.loads(body) if body.strip() else None
        except json.JSONDecodeError as exc:
            return Reply(400, {"error": f"control body is not JSON: {exc}"})
        if path == "/health":
            return Reply(200, {"status": "ok", "providers": sorted(self.states)})
        if path == "/reset" and method == "POST":
            for state in self.states.values():
                with state.lock:
                    state.faults.clear()
                    state.requests.clear()
                state.provider.reset()
            return Reply(200, {"reset": True})
        name, _, sub = path.lstrip("/").partition("/")
        if name not in self.states:
            return Reply(404, {"error": f"no sandboxed provider {name!r}"})
        state = self.states[name]
        sub = "/" + sub
        if sub == "/faults":
            with state.lock:
                if method == "POST":
                    try:
                        faults = [Fault.parse(f) for f in (data if isinstance(data, list) else [data])]
                    except (TypeError, ValueError) as exc:
                        return Reply(400, {"error": str(exc)})
                    state.faults.extend(faults)
                elif method == "DELETE":
                    state.faults.clear()
                return Reply(200, [asdict(f) for f in state.faults])
        if sub == "/requests":
            with state.lock:
                if method == "DELETE":
                    state.requests.clear()
                return Reply(200, list(state.requests))
        reply = state.provider.control(method, sub, data)
        return reply or Reply(404, {"error": f"unknown control path {path}"})

    @staticmethod
    def _reply(req: BaseHTTPRequestHandler, reply: Reply) -> None:
        data, headers = reply.encode()
        try:
            req.send_response(reply.status)
            for name, value in headers.items():
                req.send_header(name, value)
            req.send_header("Content-Length", str(len(data)))
            req.end_headers()
            req.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            req.close_connection = True  # the client gave up (a timeout fault); nothing to answer


def _body_for_record(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(body).decode("ascii")}
    try:
        return {"text": text, "json": json.loads(text)} if text.strip() else {"text": text}
    except json.JSONDecodeError:
        return {"text": text}


def _reset_connection(req: BaseHTTPRequestHandler) -> None:
    """Drop the connection the rude way (RST), as a crashed proxy or a network fault would."""
    req.close_connection = True
    try:
        req.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        req.connection.close()
    except OSError:
        pass


def _default_error(provider: str, status: int) -> Any:
    """A provider-shaped error body for an injected status without a body of its own."""
    text = {
        429: "too many requests",
        500: "internal server error",
        502: "bad gateway",
        503: "service unavailable",
        504: "gateway timeout",
        408: "request timeout",
    }.get(status, "error")
    if provider == "kintone":
        if status == 429:
            return {
                "code": "GAIA_TO04",
                "id": "sandbox",
                "message": "The number of concurrent requests exceeded the limit.",
            }
        return {"code": "GAIA_UN03", "id": "sandbox", "message": f"An unexpected error occurred ({text})."}
    if provider == "sendgrid":
        return {"errors": [{"field": None, "message": text}]}
    if provider == "infobip" and status == 429:
        from devkit.sandbox.infobip import E429

        return dict(E429)
    if provider == "infobip":
        return {"requestError": {"serviceException": {"messageId": "GENERAL_ERROR", "text": text}}}
    return {"message": text}
