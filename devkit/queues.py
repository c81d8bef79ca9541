"""Drives the event-triggered functions locally. SQS: the way Lambda's event source mapping does - batches
of the template's BatchSize, partial batch failures (ReportBatchItemFailures), failed messages left to
reappear after the visibility timeout, and the queue's redrive policy moving them to the DLQ. Schedules:
every few seconds, with the event EventBridge Scheduler sends."""

import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from devkit.runtime import InvocationError, LocalFunction
from devkit.template import REGION, QueueSource, local_queue_url


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    records = []
    for m in messages:
        attributes = {k: v for k, v in m.get("Attributes", {}).items()}
        message_attributes = {}
        for name, attr in (m.get("MessageAttributes") or {}).items():
            message_attributes[name] = {
                "stringValue": attr.get("StringValue"),
                "binaryValue": attr.get("BinaryValue"),
                "stringListValues": attr.get("StringListValues", []),
                "binaryListValues": attr.get("BinaryListValues", []),
                "dataType": attr["DataType"],
            }
        records.append(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def failed_ids(result: Any, batch_ids: set[str], reports_failures: bool) -> set[str]:
    """Which messages Lambda would consider failed, given the function's response."""
    if not reports_failures:
        return set()
    if result is None:
        return set()
    if not isinstance(result, dict):
        return set(batch_ids)
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(batch_ids)
    ids = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in batch_ids:
            return set(batch_ids)  # Lambda treats a malformed report as a failure of the whole batch
        ids.add(identifier)
    return ids


class QueuePoller:
    def __init__(self, source: QueueSource, function: LocalFunction, sqs: Any, log: Any = None) -> None:
        self.source = source
        self.function = function
        self.sqs = sqs
        self.log = log or (lambda line: None)
        self.queue_url = local_queue_url(source.queue)
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poller-{source.queue}", daemon=True)

    def start(self) -> "QueuePoller":
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Asks the thread to end after its current poll; `Stack.stop` asks every poller before waiting on any,
        so Ctrl-C waits for one long poll rather than one per queue."""
        self._stop.set()

    def stop(self) -> None:
        self.request_stop()
        self._thread.join(timeout=5)

    def poll_once(self, wait_seconds: int = 1) -> int:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(self.source.batch_size, 10),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        batch_ids = {m["MessageId"] for m in messages}
        try:
            result = self.function.invoke(sqs_event(messages, self.queue_arn))
            failed = failed_ids(result, batch_ids, self.source.report_batch_item_failures)
        except InvocationError as exc:
            self.log(f"{self.source.function} failed on a batch of {len(messages)}: {exc.error_type}")
            failed = batch_ids
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        if failed:
            self.log(
                f"{self.source.queue}: {len(failed)} of {len(messages)} message(s) failed; "
                "they return after the visibility timeout"
            )
        return len(messages)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - keep polling, as the event source mapping does
                if self._stop.is_set():
                    return
                self.log(f"poller {self.source.queue}: {type(exc).__name__}: {exc}")
                self._stop.wait(1)


def scheduled_event(function: str, expression: str) -> dict[str, Any]:
    """What EventBridge Scheduler hands a function (the parts a handler may read)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:scheduler:{REGION}:123456789012:schedule/default/{function}"],
        "detail": {"schedule": expression},
    }


class Scheduler:
    """Runs a function with a schedule (the template's ScheduleV2 events) every `interval` seconds locally,
    whatever its rate in AWS: `make run` sweeps every SWEEP_INTERVAL seconds (10 by default)."""

    def __init__(self, function: LocalFunction, expression: str, interval: float, log: Any = None) -> None:
        self.function, self.expression, self.interval = function, expression, interval
        self.log = log or (lambda line: None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"schedule-{function.spec.logical_id}", daemon=True)

    def start(self) -> "Scheduler":
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Asks the thread to end after its current poll; `Stack.stop` asks every poller before waiting on any,
        so Ctrl-C waits for one long poll rather than one per queue."""
        self._stop.set()

    def stop(self) -> None:
        self.request_stop()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                result = self.function.invoke(scheduled_event(self.function.spec.logical_id, self.expression))
            except InvocationError as exc:
                self.log(f"{self.function.spec.logical_id} failed: {exc.error_type}")
                continue
            except Exception as exc:  # noqa: BLE001 - keep the schedule going, as EventBridge would
                if self._stop.is_set():
                    return
                self.log(f"schedule {self.function.spec.logical_id}: {type(exc).__name__}: {exc}")
                continue
            if isinstance(result, dict) and any(result.values()):
                self.log(f"{self.function.spec.logical_id}: {json.dumps(result)}")
