"""InboundMailFunction: thin Lambda handler; the behaviour lives in martech_bridge.entrypoints.inbound_mail."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from martech_bridge.entrypoints import inbound_mail
from martech_bridge.observability import logger, metrics, traced

tracer = traced("botocore")  # its path calls AWS only (the replies sinks are queued, not called)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return inbound_mail.handle(event, context)
