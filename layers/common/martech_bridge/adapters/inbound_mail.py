"""The inbound mail bucket: SES's receipt rule writes each received message there as one object (raw MIME)."""

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.errors import DependencyUnavailable


class RawMail(msgspec.Struct, frozen=True):
    data: bytes  # at most `max_bytes` of it
    size: int  # the object's whole size

    @property
    def complete(self) -> bool:
        return len(self.data) >= self.size


def read(bucket: str, key: str, max_bytes: int) -> RawMail | None:
    """The object's first `max_bytes` bytes (a ranged GET: a huge message is never read whole), or None
    when it does not exist (deleted by its lifecycle, or an event for someone else's object)."""
    try:
        answer = aws.client("s3").get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max_bytes - 1}")
        data = answer["Body"].read(max_bytes)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
            return None
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # an empty object
            return RawMail(b"", 0)
        raise DependencyUnavailable("Inbound mail bucket is unavailable") from exc
    except BotoCoreError as exc:
        raise DependencyUnavailable("Inbound mail bucket is unavailable") from exc
    total = answer.get("ContentRange", "").rpartition("/")[2]
    size = int(total) if total.isdigit() else int(answer.get("ContentLength") or len(data))
    return RawMail(data, size)
