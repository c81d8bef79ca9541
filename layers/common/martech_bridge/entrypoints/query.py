"""QueryFunction: the operator API - subscriptions now; messages, reports and deliveries as they are built."""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.api import build_resolver, json_response, parse_body, require_api_key
from martech_bridge.deliveries import replay_delivery
from martech_bridge.dependencies import delivery_engine, message_store, subscription_store
from martech_bridge.errors import InvalidRequest, NotFound, NotImplementedYet
from martech_bridge.logic.subscriptions import apply_update
from martech_bridge.models.email import InvalidEmail, normalize_email
from martech_bridge.models.subscription import SubscriptionUpdate, SubscriptionView
from martech_bridge.observability import logger, mask_email, metrics

app = build_resolver()
AUTH = [require_api_key]


def _email_from_path(raw: str) -> str:
    try:
        return normalize_email(unquote(raw))
    except InvalidEmail as exc:
        raise InvalidRequest(f"email {exc}", code="invalid_email", field="email") from None


@app.get("/subscriptions/<email>", middlewares=AUTH)
def get_subscription(email: str) -> Response:
    address = _email_from_path(email)
    logger.append_keys(recipient=mask_email(address))
    state, history = subscription_store().get(address)
    if state is None:
        raise NotFound("No subscription record for this address", code="subscription_not_found")
    return json_response(200, SubscriptionView(subscription=state, history=history).to_json())


@app.put("/subscriptions/<email>", middlewares=AUTH)
def put_subscription(email: str) -> Response:
    address = _email_from_path(email)
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


def _later(feature: str) -> Response:
    raise NotImplementedYet(f"{feature} is not available in this version of the bridge")


@app.get("/messages/<dispatch_id>", middlewares=AUTH)
def get_message(dispatch_id: str) -> Response:
    message = message_store().get(unquote(dispatch_id))
    if message is None:
        raise NotFound("No message with this dispatch id", code="message_not_found")
    return json_response(200, message)


@app.get("/messages", middlewares=AUTH)
def list_messages() -> Response:
    return _later("Message logs")


@app.get("/reports", middlewares=AUTH)
def get_reports() -> Response:
    return _later("Delivery reports")


@app.get("/deliveries/<delivery_id>", middlewares=AUTH)
def get_delivery(delivery_id: str) -> Response:
    delivery = delivery_engine().store.get(unquote(delivery_id))
    if delivery is None:
        raise NotFound("No delivery with this id", code="delivery_not_found")
    return json_response(200, delivery.public())


@app.post("/deliveries/<delivery_id>/retry", middlewares=AUTH)
def retry_delivery(delivery_id: str) -> Response:
    """Replay one failed (or rejected) delivery with a fresh allowance of attempts."""
    engine = delivery_engine()
    delivery_id = unquote(delivery_id)
    logger.append_keys(delivery_id=delivery_id)
    reopened = replay_delivery(engine, delivery_id)
    return json_response(202, {"status": "queued", "delivery_id": delivery_id, "replays": reopened.replays})


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
