"""DeliveryWorkerFunction: thin Lambda handler; the behaviour lives in martech_bridge.entrypoints.delivery_worker."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from martech_bridge.entrypoints import delivery_worker
from martech_bridge.observability import logger, metrics, traced

tracer = traced("botocore", "httplib")  # its path calls AWS and the targets' or ESPs' HTTP


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return delivery_worker.handle(event, context)
