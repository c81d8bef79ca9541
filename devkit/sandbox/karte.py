"""KARTE Track API stand-in (`POST /v2/track/event/write`, Bearer app token): the event sinks' target."""

import threading
from typing import Any

from devkit.sandbox.base import Reply, Request, bearer_token


class Karte:
    name = "karte"

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = list(tokens)
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.events.clear()

    def control(self, method: str, path: str, body: Any) -> Reply | None:
        if path == "/events" and method == "GET":
            with self._lock:
                return Reply(200, list(self.events))
        return None

    def handle(self, request: Request) -> Reply:
        token = bearer_token(request)
        if token is None or token not in self.tokens:
            return Reply(401, {"error": {"status": 401, "code": "unauthenticated", "message": "invalid token"}})
        if request.method != "POST" or request.path != "/v2/track/event/write":
            return Reply(404, {"error": {"status": 404, "code": "not_found", "message": "not found"}})
        try:
            body = request.json()
        except ValueError:
            return Reply(400, {"error": {"status": 400, "code": "invalid_argument", "message": "invalid JSON"}})
        keys = body.get("keys") if isinstance(body, dict) else None
        event = body.get("event") if isinstance(body, dict) else None
        if not isinstance(keys, dict) or not (keys.get("user_id") or keys.get("visitor_id")):
            return Reply(400, {"error": {"status": 400, "code": "invalid_argument",
                                         "message": "keys.user_id or keys.visitor_id is required"}})
        if not isinstance(event, dict) or not event.get("event_name"):
            return Reply(400, {"error": {"status": 400, "code": "invalid_argument",
                                         "message": "event.event_name is required"}})
        with self._lock:
            self.events.append(body)
        return Reply(200, {})
