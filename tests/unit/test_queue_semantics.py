"""Partial batch responses are read the way Lambda's SQS event source mapping reads them."""

from devkit.queues import failed_ids, sqs_event

IDS = {"m1", "m2", "m3"}


def test_reported_failures_only() -> None:
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "m2"}]}, IDS, True) == {"m2"}


def test_empty_or_null_report_means_all_succeeded() -> None:
    assert failed_ids({"batchItemFailures": []}, IDS, True) == set()
    assert failed_ids(None, IDS, True) == set()
    assert failed_ids({}, IDS, True) == set()


def test_malformed_report_fails_the_whole_batch() -> None:
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, IDS, True) == IDS
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "unknown"}]}, IDS, True) == IDS
    assert failed_ids({"batchItemFailures": "m1"}, IDS, True) == IDS
    assert failed_ids("nonsense", IDS, True) == IDS


def test_without_report_batch_item_failures_a_success_deletes_all() -> None:
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "m1"}]}, IDS, False) == set()


def test_sqs_event_carries_attributes() -> None:
    event = sqs_event(
        [
            {
                "MessageId": "m1",
                "ReceiptHandle": "r",
                "Body": "b",
                "Attributes": {"ApproximateReceiveCount": "2"},
                "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
            }
        ],
        "arn:q",
    )
    record = event["Records"][0]
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["messageAttributes"]["k"]["stringValue"] == "v" and record["eventSourceARN"] == "arn:q"
