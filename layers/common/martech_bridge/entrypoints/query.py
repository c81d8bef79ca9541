"""QueryFunction: the operator API - subscriptions, messages and their logs, reports, deliveries."""

import base64
import binascii
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.adapters.message_store import STATUSES_OF_GROUP
from martech_bridge.api import build_resolver, json_response, parse_body, require_api_key
from martech_bridge.deliveries import replay_delivery
from martech_bridge.dependencies import delivery_engine, message_store, subscription_store
from martech_bridge.errors import InvalidRequest, NotFound
from martech_bridge.logic.event_parsing import Unreadable, iso
from martech_bridge.logic.subscriptions import apply_update
from martech_bridge.models.delivery import DELIVERY_ID_PATTERN
from martech_bridge.models.email import InvalidEmail, normalize_email
from martech_bridge.models.mail import DISPATCH_ID_PATTERN
from martech_bridge.models.subscription import SubscriptionUpdate, SubscriptionView
from martech_bridge.observability import logger, mask_email, metrics

app = build_resolver()
AUTH = [require_api_key]
_DISPATCH_ID = re.compile(DISPATCH_ID_PATTERN)
_DELIVERY_ID = re.compile(DELIVERY_ID_PATTERN)


def _email_from_path(raw: str) -> str:
    # API Gateway hands the path over decoded (%40 is already @): decoding again would change the address.
    try:
        return normalize_email(raw)
    except InvalidEmail as exc:
        raise InvalidRequest(f"email {exc}", code="invalid_email", field="email") from None


def _email_from_query() -> str:
    raw = (app.current_event.query_string_parameters or {}).get("email")
    if not raw:
        raise InvalidRequest("email is required (?email=...)", code="invalid_email", field="email")
    return _email_from_path(raw)


@app.get("/health")
def health() -> Response:
    """No credentials, no secrets, no AWS call: the API and this function answer."""
    from martech_bridge.config import get_settings

    return json_response(200, {"status": "ok", "service": "martech-bridge", "stage": get_settings().stage})


# Every address the bridge accepts is reachable here, including those with `/`, `?` or `#` in their local
# part, which API Gateway's decoded path cannot carry in /subscriptions/{email}.
@app.get("/subscriptions", middlewares=AUTH)
def get_subscription_by_query() -> Response:
    return _get_subscription(_email_from_query())


@app.put("/subscriptions", middlewares=AUTH)
def put_subscription_by_query() -> Response:
    return _put_subscription(_email_from_query())


@app.get("/subscriptions/<email>", middlewares=AUTH)
def get_subscription(email: str) -> Response:
    return _get_subscription(_email_from_path(email))


def _get_subscription(address: str) -> Response:
    logger.append_keys(recipient=mask_email(address))
    state, history = subscription_store().get(address)
    if state is None:
        raise NotFound("No subscription record for this address", code="subscription_not_found")
    return json_response(200, SubscriptionView(subscription=state, history=history).to_json())


@app.put("/subscriptions/<email>", middlewares=AUTH)
def put_subscription(email: str) -> Response:
    return _put_subscription(_email_from_path(email))


def _put_subscription(address: str) -> Response:
    logger.append_keys(recipient=mask_email(address))
    update = parse_body(app, SubscriptionUpdate)
    store = subscription_store()
    current, history = store.get(address)
    new, change = apply_update(address, current, update, source="api", now=datetime.now(UTC))
    store.save(new, change, expected_version=current.version if current else None)
    metrics.add_metric(name="SubscriptionChanges", unit=MetricUnit.Count, value=1)
    logger.info("Subscription changed", extra={"subscribed": new.subscribed, "suppression": new.suppression})
    view = SubscriptionView(subscription=new, history=[change, *history][: len(history) + 1])
    return json_response(200, view.to_json())


@app.get("/messages/<dispatch_id>", middlewares=AUTH)
def get_message(dispatch_id: str) -> Response:
    # An id this API cannot have issued is not looked up (a key past DynamoDB's size limit would be a 503).
    message = message_store().get(unquote(dispatch_id)) if _DISPATCH_ID.match(unquote(dispatch_id)) else None
    if message is None:
        raise NotFound("No message with this dispatch id", code="message_not_found")
    return json_response(200, message)


@app.get("/messages", middlewares=AUTH)
def list_messages() -> Response:
    """Logs, filtered as Infobip's are: messageId, to, sentSince, sentUntil, generalStatus, limit, cursor."""
    params = app.current_event.query_string_parameters or {}
    now = datetime.now(UTC)
    until = _when(params, "sentUntil") or now
    since = _when(params, "sentSince") or until - timedelta(days=2)
    if since > until:
        raise InvalidRequest("sentSince is after sentUntil", field="sentSince")
    status = params.get("generalStatus")
    if status is not None and status.upper() not in STATUSES_OF_GROUP:
        raise InvalidRequest(f"generalStatus must be one of {', '.join(STATUSES_OF_GROUP)}", field="generalStatus")
    to = _email_from_path(params["to"]) if params.get("to") else None
    results, cursor = message_store().logs(
        message_id=params.get("messageId"),
        to=to,
        since=since,
        until=until,
        general_status=status.upper() if status else None,
        limit=_limit(params, 50),
        cursor=_cursor(params),
    )
    return json_response(200, {"results": results, "cursor": _encode_cursor(cursor)})


@app.get("/reports", middlewares=AUTH)
def get_reports() -> Response:
    """Final delivery reports, each returned once (Infobip semantics): a report read is a report gone."""
    params = app.current_event.query_string_parameters or {}
    return json_response(200, {"results": message_store().take_reports(_limit(params, 100))})


def _limit(params: dict[str, str], default: int) -> int:
    raw = params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InvalidRequest("limit must be a whole number from 1 to 1000", field="limit")
    return int(raw)


def _when(params: dict[str, str], name: str) -> datetime | None:
    if not params.get(name):
        return None
    try:
        # An unencoded "+0000" arrives as " 0000" (a plus is a space in a query string).
        return iso(params[name].replace(" ", "+"))
    except Unreadable:
        raise InvalidRequest(
            f"{name} must be an ISO 8601 time, e.g. 2026-11-22T05:00:00.000+0000", field=name
        ) from None


def _cursor(params: dict[str, str]) -> dict[str, Any] | None:
    if not params.get("cursor"):
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(params["cursor"].encode()))
    except (ValueError, binascii.Error):
        raise InvalidRequest("cursor is not one this API returned", field="cursor") from None
    if not isinstance(value, dict):
        raise InvalidRequest("cursor is not one this API returned", field="cursor")
    return value


def _encode_cursor(cursor: Any) -> str | None:
    if not cursor:
        return None
    return base64.urlsafe_b64encode(json.dumps(cursor, default=str).encode()).decode()


@app.get("/deliveries/<delivery_id>", middlewares=AUTH)
def get_delivery(delivery_id: str) -> Response:
    delivery = delivery_engine().store.get(unquote(delivery_id)) if _DELIVERY_ID.match(unquote(delivery_id)) else None
    if delivery is None:
        raise NotFound("No delivery with this id", code="delivery_not_found")
    return json_response(200, delivery.public())


@app.post("/deliveries/<delivery_id>/retry", middlewares=AUTH)
def retry_delivery(delivery_id: str) -> Response:
    """Replay one failed (or rejected) delivery with a fresh allowance of attempts."""
    engine = delivery_engine()
    delivery_id = unquote(delivery_id)
    if not _DELIVERY_ID.match(delivery_id):
        raise NotFound("No delivery with this id", code="delivery_not_found")
    logger.append_keys(delivery_id=delivery_id)
    reopened = replay_delivery(engine, delivery_id)
    return json_response(202, {"status": "queued", "delivery_id": delivery_id, "replays": reopened.replays})


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
