"""Redrive the delivery DLQ: each given-up delivery is reopened (a fresh allowance of attempts) and queued
again, and its DLQ message removed - all of them, or those of one route, or named ones."""

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from martech_bridge.adapters.delivery_queue import DeliveryQueue
from martech_bridge.adapters.delivery_store import DeliveryStore
from martech_bridge.models.delivery import DeliveryStatus, FailureReason

from bridgectl.resources import StackResources


@dataclass
class Summary:
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    ids: dict[str, list[str]] = field(default_factory=dict)  # every delivery id, by outcome

    def add(self, outcome: str, delivery_id: str) -> None:
        self.counts[outcome] += 1
        self.examples.setdefault(outcome, delivery_id)
        self.ids.setdefault(outcome, []).append(delivery_id)

    def render(self) -> str:
        order = [
            "redriven",
            "would redrive",
            "already delivered",
            "outcome unknown: check the target, then name it or pass --include-outcome-unknown",
            "still in progress",
            "filtered out",
            "unknown",
            "unreadable",
            "error",
        ]
        parts = [f"{self.counts[k]} {k}" for k in order if self.counts[k]]
        lines = ["Summary: " + (", ".join(parts) if parts else "the DLQ is empty")]
        # A dry run is for deciding: it names what would go, so it can be redriven one id at a time.
        for delivery_id in self.ids.get("would redrive", []):
            lines.append(f"  would redrive {delivery_id}")
        return "\n".join(lines)


class Progress:
    """A plain progress bar on stderr (no dependency): [#########...........] 12/40."""

    def __init__(self, total: int, out: TextIO = sys.stderr, width: int = 30) -> None:
        self.total, self.out, self.width, self.done = max(total, 1), out, width, 0

    def step(self, label: str) -> None:
        self.done += 1
        filled = min(self.width, int(self.width * self.done / self.total))
        self.out.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} {label:<24}")
        self.out.flush()

    def close(self) -> None:
        self.out.write("\n")


def redrive(
    resources: StackResources,
    *,
    route: str | None = None,
    delivery_ids: set[str] | None = None,
    attempts: int | None = None,
    dry_run: bool = False,
    include_outcome_unknown: bool = False,
    out: TextIO = sys.stderr,
) -> Summary:
    """`attempts` None: each delivery gets its route's max_attempts again (as POST /deliveries/{id}/retry)."""
    resources.apply_to_environment()
    sqs = resources.client("sqs")
    store = DeliveryStore(resources.deliveries_table, retention_days=30)
    queue = DeliveryQueue(resources.delivery_queue_url, resources.delivery_dlq_url)
    total = int(
        sqs.get_queue_attributes(QueueUrl=resources.delivery_dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    progress = Progress(total, out)
    summary = Summary()
    kept: list[str] = []  # receipt handles of messages left in the DLQ, made visible again at the end
    while True:
        messages = sqs.receive_message(
            QueueUrl=resources.delivery_dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=120
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            outcome, delivery_id = _one(
                message, store, queue, route, delivery_ids, attempts, dry_run, include_outcome_unknown
            )
            summary.add(outcome, delivery_id)
            if outcome in ("redriven", "already delivered"):
                sqs.delete_message(QueueUrl=resources.delivery_dlq_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                kept.append(message["ReceiptHandle"])
            progress.step(outcome)
    for handle in kept:
        sqs.change_message_visibility(QueueUrl=resources.delivery_dlq_url, ReceiptHandle=handle, VisibilityTimeout=0)
    progress.close()
    return summary


def _one(
    message: dict[str, Any],
    store: DeliveryStore,
    queue: DeliveryQueue,
    route: str | None,
    ids: set[str] | None,
    attempts: int | None,
    dry_run: bool,
    include_outcome_unknown: bool = False,
) -> tuple[str, str]:
    try:
        delivery_id = str(json.loads(message["Body"])["delivery_id"])
    except (ValueError, KeyError, TypeError):
        return "unreadable", message.get("MessageId", "?")
    if ids and delivery_id not in ids:
        return "filtered out", delivery_id
    delivery = store.get(delivery_id)
    if delivery is None:
        return "unknown", delivery_id
    if route and delivery.route != route:
        return "filtered out", delivery_id
    if delivery.status == DeliveryStatus.DELIVERED:
        return "already delivered", delivery_id
    if not delivery.status.final:
        return "still in progress", delivery_id
    if delivery.failure == FailureReason.OUTCOME_UNKNOWN and not (include_outcome_unknown or ids):
        # The target may have acted already: a blanket redrive must not add a second kintone record.
        return "outcome unknown: check the target, then name it or pass --include-outcome-unknown", delivery_id
    if dry_run:
        return "would redrive", delivery_id
    try:
        if store.reopen(delivery_id, attempts or route_attempts(delivery.route)) is None:
            return "still in progress", delivery_id
        queue.enqueue(delivery_id)
    except Exception:  # noqa: BLE001 - one failure must not stop the redrive of the rest; it is counted
        return "error", delivery_id
    return "redriven", delivery_id


def route_attempts(route_name: str, default: int = 8) -> int:
    """The route's (or sink's) max_attempts, from the checkout's routes file (what was deployed from it);
    the default for a route it no longer has."""
    from pathlib import Path

    from martech_bridge.config import read_bridge_config
    from martech_bridge.errors import ConfigurationError

    path = Path(__file__).resolve().parent.parent / "layers" / "common" / "config" / "bridge.json"
    try:
        spec = read_bridge_config(path, None, stage="any").spec(route_name)
    except ConfigurationError:
        return default
    return spec.delivery.max_attempts if spec else default
