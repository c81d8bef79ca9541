"""KARTE Track API target (`POST /v2/track/event/write`, Bearer app token): the event sinks' way into KARTE.
`mapping.id` gives the user key's value (default: the event's `user_id` - the recipient's user_id or the
message's metadata.karte_user_id - never the address); `mapping.body` the event values.
The event name is the sink's (KARTE's SendGrid plug-in names by default), carried in the payload."""

import json
from typing import Any

from martech_bridge.adapters.targets.base import (
    SecretResolver,
    TargetRequest,
    TargetResponse,
    generic_outcome,
    require_https,
)
from martech_bridge.errors import ConfigurationError, InvalidRequest
from martech_bridge.logic.delivery import Outcome
from martech_bridge.models.routes import Deliverable, KarteTarget


class KarteTargetAdapter:
    def build(
        self, route: Deliverable, payload: dict[str, Any], secrets: SecretResolver, *, local_mode: bool
    ) -> TargetRequest:
        target = route.target
        assert isinstance(target, KarteTarget)
        require_https(target.base_url, local_mode)
        tokens = secrets([target.api_token])
        if not tokens:
            raise ConfigurationError("The KARTE target has no API token configured")
        user = route.mapping.id.evaluate(payload) if route.mapping.id is not None else payload.get("user_id")
        if user in (None, ""):
            raise InvalidRequest(
                f"No {target.user_key} for KARTE in this event", code="missing_field", field=target.user_key
            )
        values = {k: v for k, spec in (route.mapping.body or {}).items() if (v := spec.evaluate(payload)) is not None}
        if payload.get("app_name") and payload.get("event_name") in ("message_click", "talk_message_open"):
            # KARTE's SendGrid plug-in marks both opens and clicks with app_name=sendgrid (WIRE-FORMATS 7.2).
            values.setdefault("app_name", payload["app_name"])
        body = {
            "keys": {target.user_key: str(user)},
            "event": {"event_name": payload.get("event_name") or "bridge_event", "values": values},
        }
        return TargetRequest(
            method="POST",
            url=f"{target.base_url}/v2/track/event/write",
            headers={"Authorization": f"Bearer {tokens[0]}", "Content-Type": "application/json"},
            body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            timeout=target.timeout_seconds,
            idempotent=False,
            secret_headers=frozenset({"Authorization"}),
        )

    def interpret(self, route: Deliverable, response: TargetResponse) -> Outcome:
        data = response.json()
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        return generic_outcome(response, code=code, message=message, result={"target_status": response.status})
