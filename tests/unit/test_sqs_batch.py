"""SQS batches: every message is handled; only those whose handling raised go back to the queue."""

from typing import Any

from martech_bridge.sqs_batch import Message, process


def batch(*bodies: str) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m{i}", "body": body} for i, body in enumerate(bodies)]}


def test_only_the_messages_whose_handling_raised_are_reported_back() -> None:
    handled: list[str] = []

    def handle(message: Message) -> None:
        handled.append(message.body)
        if message.body == "bad":
            raise RuntimeError("secret-value must not be logged")

    assert process(batch("a", "bad", "c"), handle) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert handled == ["a", "bad", "c"]  # a failure does not stop the rest of the batch


def test_a_batch_that_fails_whole_reports_every_message_and_an_empty_one_none() -> None:
    def fail(message: Message) -> None:
        raise ValueError

    assert process(batch("a", "b"), fail) == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
    assert process({"Records": []}, fail) == {"batchItemFailures": []}
