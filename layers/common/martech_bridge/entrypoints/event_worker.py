"""EventWorkerFunction: each queued post becomes one call into the events flow (martech_bridge.events). A
failure of AWS fails the post's record, which SQS delivers again (partial batch failure)."""

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.config import load_bridge_config
from martech_bridge.events import process_post
from martech_bridge.observability import logger
from martech_bridge.sqs_batch import Message, process

# At INIT: a routes file that somehow skipped the build's check stops the function here, naming the file, the
# route and the field, instead of failing every request (models/routes.py loads it; cached for the requests).
load_bridge_config()


def record_handler(record: Message) -> None:
    result = process_post(json.loads(record.body))
    logger.info(
        "Event post processed",
        extra={
            "provider": result.provider,
            "applied": result.applied,
            "duplicates": result.duplicates,
            "rejected": len(result.rejected),
        },
    )


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process(event, record_handler)
