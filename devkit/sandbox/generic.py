"""A generic HTTPS API stand-in (the `http` target's local peer): any method and path under /http, a Bearer
token checked, the request echoed back as JSON."""

import secrets
from typing import Any

from devkit.sandbox.base import AcceptedLog, Reply, Request, bearer_token


class GenericApi(AcceptedLog):
    """Calls it answered 2xx, at /_sandbox/http/sent."""

    name = "http"

    def __init__(self, tokens: list[str]) -> None:
        super().__init__()
        self.tokens = list(tokens)

    def handle(self, request: Request) -> Reply:
        token = bearer_token(request)
        if token is None or token not in self.tokens:
            return Reply(401, {"error": {"code": "unauthorized", "message": "missing or invalid bearer token"}})
        body: Any = None
        if request.body:
            try:
                body = request.json()
            except ValueError:
                body = request.body.decode("utf-8", "replace")
        item = {
            "id": secrets.token_hex(6),
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": body,
        }
        self.accept(item)
        return Reply(200, {"ok": True, **item}, {"Content-Type": "application/json"})
