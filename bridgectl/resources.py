"""Where a stack's tables and queues are: from a CloudFormation stack's outputs, or the local stack."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import boto3

LOCAL_STATE = Path(__file__).resolve().parent.parent / ".local-stack.json"
LOCAL_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/{}"


@dataclass(frozen=True)
class StackResources:
    deliveries_table: str
    delivery_queue_url: str
    delivery_dlq_url: str
    messages_table: str = "MessagesTable"
    subscriptions_table: str = "SubscriptionsTable"
    endpoint_url: str | None = None  # embedded AWS of the local stack

    def client(self, service: str):  # noqa: ANN201 - a boto3 client
        return boto3.client(service, endpoint_url=self.endpoint_url) if self.endpoint_url else boto3.client(service)

    def apply_to_environment(self) -> None:
        """The layer package reads its settings from the environment; point it at this stack."""
        os.environ.update(
            {
                "DELIVERIES_TABLE": self.deliveries_table,
                "DELIVERY_QUEUE_URL": self.delivery_queue_url,
                "DELIVERY_DLQ_URL": self.delivery_dlq_url,
                "MESSAGES_TABLE": self.messages_table,
                "SUBSCRIPTIONS_TABLE": self.subscriptions_table,
            }
        )
        if self.endpoint_url:
            os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                os.environ.setdefault(key, "testing")
            os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def from_stack(name: str) -> StackResources:
    stacks = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return StackResources(
        outputs["DeliveriesTableName"],
        outputs["DeliveryQueueUrl"],
        outputs["DeliveryDLQUrl"],
        outputs["MessagesTableName"],
        outputs["SubscriptionsTableName"],
    )


def local(endpoint_url: str | None = None) -> StackResources:
    if endpoint_url is None:
        try:
            endpoint_url = json.loads(LOCAL_STATE.read_text())["aws_endpoint"]
        except (OSError, ValueError, KeyError):
            raise SystemExit(
                "No running local stack found (start it with `make run`), or pass --endpoint-url"
            ) from None
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return StackResources(
        "DeliveriesTable",
        LOCAL_QUEUE.format("DeliveryQueue"),
        LOCAL_QUEUE.format("DeliveryDLQ"),
        endpoint_url=endpoint_url,
    )
