"""RelayFunction: translates API Gateway's `/relay/{route}` request into the relay flow (relay.py) and
its reply into the HTTP answer."""

from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.api import Response, build_resolver, json_response, raw_body
from martech_bridge.config import load_bridge_config
from martech_bridge.deliveries import delivery_engine
from martech_bridge.observability import logger
from martech_bridge.relay import Webhook, relay

app = build_resolver()
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

# At INIT: a routes file that somehow skipped the build's check stops the function here, naming the file, the
# route and the field, instead of failing every request (models/routes.py loads it; cached for the requests).
load_bridge_config()


@app.route("/relay/<route>", method=METHODS)
def relay_route(route: str) -> Response:
    name = unquote(route)
    logger.append_keys(route=name)
    event = app.current_event
    hook = Webhook(
        route=name,
        method=event.http_method,
        headers={k.lower(): v for k, v in (event.headers or {}).items()},
        query=event.query_string_parameters or {},
        raw_query=event.raw_query_string or "",
        body=raw_body(app),
    )
    reply = relay(delivery_engine(), hook, lambda: app.lambda_context.get_remaining_time_in_millis() / 1000)
    return json_response(reply.status, reply.body, reply.headers or None)


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
