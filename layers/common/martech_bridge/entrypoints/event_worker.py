"""EventWorkerFunction: each queued post becomes one call into the events flow (martech_bridge.events). A
failure of AWS fails the post's record, which SQS delivers again (partial batch failure)."""

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.events import process_post
from martech_bridge.observability import logger

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
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
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
