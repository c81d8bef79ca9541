"""KARTE Track API stand-in (`POST /v2/track/event/write`, Bearer app token): the event sinks' target."""

from devkit.sandbox.base import AcceptedLog, Reply, Request, bearer_token


class Karte(AcceptedLog):
    """Events written, as received, at /_sandbox/karte/events."""

    name = "karte"
    listing = "/events"

    def __init__(self, tokens: list[str]) -> None:
        super().__init__()
        self.tokens = list(tokens)

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
            return Reply(
                400,
                {
                    "error": {
                        "status": 400,
                        "code": "invalid_argument",
                        "message": "keys.user_id or keys.visitor_id is required",
                    }
                },
            )
        if not isinstance(event, dict) or not event.get("event_name"):
            return Reply(
                400, {"error": {"status": 400, "code": "invalid_argument", "message": "event.event_name is required"}}
            )
        self.accept(body)
        return Reply(200, {})
