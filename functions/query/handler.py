"""QueryFunction: thin Lambda handler; the behaviour lives in martech_bridge.entrypoints.query."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from martech_bridge.entrypoints import query
from martech_bridge.observability import logger, metrics, traced

tracer = traced("botocore")  # its path calls AWS only


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return query.handle(event, context)
