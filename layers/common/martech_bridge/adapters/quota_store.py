"""Send quota counters in the messages table: one item per provider and period (pk "QUOTA#<provider>", sk
"day#YYYY-MM-DD" or "month#YYYY-MM"), added to with a conditional ADD, and one marker per warning sent."""

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.errors import DependencyUnavailable

KEEP = timedelta(days=40)  # a month's counter outlives its month, for GET /quota and the warnings


class QuotaRefused(Exception):
    """The count would pass the period's limit; nothing was added."""

    def __init__(self, period: str, used: int) -> None:
        super().__init__(period)
        self.period, self.used = period, used


class QuotaStore(aws.TableStore):
    def add(self, provider: str, period: str, n: int, limit: int | None, now: datetime) -> int:
        """Add `n` to the period's counter; with a `limit`, only if the sum stays within it (QuotaRefused
        otherwise). The count after the addition."""
        if limit is not None and n > limit:
            # attribute_not_exists(used) would let the first send of a period past the limit at once
            raise QuotaRefused(period, self.used(provider, period))
        values: dict[str, Any] = {":n": n, ":exp": int((now + KEEP).timestamp())}
        condition: dict[str, Any] = {}
        if limit is not None:
            values[":max"] = limit - n
            condition = {"ConditionExpression": "attribute_not_exists(used) OR used <= :max"}
        try:
            answer = self._table.update_item(
                Key={"pk": f"QUOTA#{provider}", "sk": period},
                UpdateExpression="ADD used :n SET expires_at = :exp",
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
                **condition,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise QuotaRefused(period, self.used(provider, period)) from None
            raise DependencyUnavailable("Quota counter is unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Quota counter is unavailable") from exc
        return int(answer["Attributes"]["used"])

    def used(self, provider: str, period: str) -> int:
        try:
            item = self._table.get_item(Key={"pk": f"QUOTA#{provider}", "sk": period}, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Quota counter is unavailable") from exc
        return int((item or {}).get("used", 0))

    def claim_warning(self, provider: str, period: str, percent: int, now: datetime) -> bool:
        """The right to send this warning: True for the one caller that writes its marker first."""
        try:
            self._table.put_item(
                Item={
                    "pk": f"QUOTA#{provider}",
                    "sk": f"warned#{period}#{percent}",
                    "warned_at": now.isoformat(),
                    "expires_at": int((now + KEEP).timestamp()),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise DependencyUnavailable("Quota counter is unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Quota counter is unavailable") from exc
        return True
