"""InboundMailFunction: S3 `ObjectCreated` notifications for the inbound bucket (SES's receipt rule stores
each received message there) turned into calls to the replies flow, one per stored object.

The event is S3's documented notification structure
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html): Records[].s3
.bucket.name and .object.key, the key URL-encoded. An error is raised for Lambda to retry the invocation
(asynchronous invocations are retried twice, then go to the function's dead-letter queue); the flow repeats only
idempotent steps."""

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.config import get_settings
from martech_bridge.dependencies import message_store, reply_store
from martech_bridge.observability import logger
from martech_bridge.replies import receive


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    bucket_name = settings.require("inbound_mail_bucket")
    outcomes: list[str] = []
    for record in event.get("Records") or []:
        s3 = (record or {}).get("s3") or {}
        bucket = str((s3.get("bucket") or {}).get("name") or "")
        key = unquote_plus(str((s3.get("object") or {}).get("key") or ""))
        if bucket != bucket_name or not key:
            logger.warning("Notification for another bucket or without a key; ignored")
            outcomes.append("ignored")
            continue
        outcomes.append(
            receive(
                bucket,
                key,
                messages=message_store(),
                store=reply_store(),
                max_bytes=settings.max_inbound_mail_bytes,
                require_auth=settings.reply_require_auth,
            )
        )
    return {"outcomes": outcomes}
