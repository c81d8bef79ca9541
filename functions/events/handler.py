"""EventsFunction: thin Lambda handler; the behaviour lives in martech_bridge.entrypoints.events."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from martech_bridge.entrypoints import events
from martech_bridge.observability import logger, metrics


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
# No Tracer: `Tracing: Active` records the invocation; its one SQS (or S3) call needs no subsegment.
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return events.handle(event, context)
