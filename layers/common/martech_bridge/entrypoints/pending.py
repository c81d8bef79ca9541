"""Entry points of functions whose behaviour is still to be built. They answer every request in the
contract's shape (HTTP: 501 JSON) and, for queues, hand every record back so nothing is lost."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.api import build_resolver
from martech_bridge.errors import NotImplementedYet


def http_handler(feature: str, routes: list[tuple[str, str]]) -> Any:
    """A resolver that knows the function's routes and answers each with 501."""
    app = build_resolver()

    def _pending() -> Response:
        raise NotImplementedYet(f"{feature} is not available in this version of the bridge")

    for method, path in routes:
        app.route(path, method)(lambda **_: _pending())

    def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return app.resolve(event, context)

    return handle


def queue_handler(feature: str) -> Any:
    """Every record is reported as a batch item failure: it returns to the queue, and after the redrive
    policy's maxReceiveCount it lands in the DLQ, ready to be replayed once the feature exists."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record_handler(record: SQSRecord) -> None:
        raise NotImplementedYet(f"{feature} is not available in this version of the bridge")

    def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return dict(
            process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
        )

    return handle
