"""The benchmark's write attribution (bench/write_keys.py): which partition keys of a table and its indexes
each DynamoDB write touches, and the figure `scale.hottest_key_share` built on it."""

import base64
import json

import pytest

from bench.write_keys import (
    IndexSchema,
    TableSchema,
    WriteLog,
    feed_recording,
    mask_key,
    parse_update_expression,
    store,
)

DELIVERIES = TableSchema(
    name="DeliveriesTable",
    hash_key="pk",
    range_key="sk",
    indexes=(IndexSchema("StatusIndex", "gsi1pk", "gsi1sk", "ALL"),),
)
TABLE = "DeliveriesTable"
INDEX = "DeliveriesTable/StatusIndex"


def s(value: str) -> dict[str, str]:
    return {"S": value}


def delivery(pk: str, status: str | None) -> dict[str, dict[str, str]]:
    item = {"pk": s(pk), "sk": s("D"), "payload": s("{}")}
    if status is not None:
        item |= {"gsi1pk": s(f"STATUS#{status}"), "gsi1sk": s("2026-11-30T10:00:00Z")}
    return item


def new_log(*schemas: TableSchema) -> WriteLog:
    return WriteLog({t.name: t for t in schemas or (DELIVERIES,)})


def counts(log: WriteLog, source: str) -> dict[str, int]:
    return dict(log.counts.get(source, {}))


def test_put_with_index_keys_counts_on_table_and_index() -> None:
    log = new_log()
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_1", "in_progress")})
    assert counts(log, TABLE) == {"dl_1": 1}
    assert counts(log, INDEX) == {"STATUS#in_progress": 1}


def test_sparse_item_without_index_keys_counts_only_on_table() -> None:
    log = new_log()
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_1", None)})
    assert counts(log, TABLE) == {"dl_1": 1}
    assert counts(log, INDEX) == {}


def test_item_missing_the_index_sort_key_is_not_in_the_index() -> None:
    log = new_log()
    item = delivery("dl_1", None) | {"gsi1pk": s("STATUS#pending")}
    log.apply("PutItem", {"TableName": TABLE, "Item": item})
    assert counts(log, INDEX) == {}


def test_update_changing_index_key_counts_old_key_removal_and_new_key() -> None:
    log = new_log()
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_1", "in_progress")})
    log.apply(
        "UpdateItem",
        {
            "TableName": TABLE,
            "Key": {"pk": s("dl_1"), "sk": s("D")},
            "UpdateExpression": "SET #s = :d, gsi1pk = :g, gsi1sk = :now REMOVE lease_until_ms",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":d": s("delivered"), ":g": s("STATUS#delivered"), ":now": s("t2")},
        },
    )
    assert counts(log, TABLE) == {"dl_1": 2}
    assert counts(log, INDEX) == {"STATUS#in_progress": 2, "STATUS#delivered": 1}


def test_update_through_attribute_name_placeholders_is_resolved() -> None:
    log = new_log()
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_1", "pending")})
    log.apply(
        "UpdateItem",
        {
            "TableName": TABLE,
            "Key": {"pk": s("dl_1"), "sk": s("D")},
            "UpdateExpression": "set #k = :g",
            "ExpressionAttributeNames": {"#k": "gsi1pk"},
            "ExpressionAttributeValues": {":g": s("STATUS#failed")},
        },
    )
    assert counts(log, INDEX) == {"STATUS#pending": 2, "STATUS#failed": 1}


def test_update_without_index_attributes_on_indexed_item_counts_current_key() -> None:
    log = new_log()
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_1", "in_progress")})
    log.apply(
        "UpdateItem",
        {
            "TableName": TABLE,
            "Key": {"pk": s("dl_1"), "sk": s("D")},
            "UpdateExpression": "SET attempts = :n",
            "ExpressionAttributeValues": {":n": {"N": "1"}},
        },
    )
    assert counts(log, INDEX) == {"STATUS#in_progress": 2}


def test_update_without_index_attributes_on_unindexed_item_writes_no_index() -> None:
    log = new_log()
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_1", None)})
    log.apply(
        "UpdateItem",
        {
            "TableName": TABLE,
            "Key": {"pk": s("dl_1"), "sk": s("D")},
            "UpdateExpression": "SET attempts = :n",
            "ExpressionAttributeValues": {":n": {"N": "1"}},
        },
    )
    assert counts(log, TABLE) == {"dl_1": 2}
    assert counts(log, INDEX) == {}


def test_keys_only_index_is_not_written_when_its_keys_do_not_change() -> None:
    keys_only = TableSchema("T", "pk", None, (IndexSchema("ByOwner", "owner", None, "KEYS_ONLY"),))
    log = new_log(keys_only)
    log.apply("PutItem", {"TableName": "T", "Item": {"pk": s("a"), "owner": s("o1")}})
    log.apply(
        "UpdateItem",
        {
            "TableName": "T",
            "Key": {"pk": s("a")},
            "UpdateExpression": "SET note = :n",
            "ExpressionAttributeValues": {":n": s("x")},
        },
    )
    assert counts(log, "T/ByOwner") == {"o1": 1}


def test_remove_of_index_key_writes_the_old_key_and_leaves_the_index() -> None:
    log = new_log()
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_1", "in_progress")})
    update = {
        "TableName": TABLE,
        "Key": {"pk": s("dl_1"), "sk": s("D")},
        "UpdateExpression": "SET #s = :d REMOVE gsi1pk, gsi1sk",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":d": s("delivered")},
    }
    log.apply("UpdateItem", update)
    log.apply("UpdateItem", update)  # out of the index now: a second update writes no index
    assert counts(log, INDEX) == {"STATUS#in_progress": 2}


def test_delete_writes_the_old_index_key() -> None:
    log = new_log()
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_1", "pending")})
    log.apply("DeleteItem", {"TableName": TABLE, "Key": {"pk": s("dl_1"), "sk": s("D")}})
    assert counts(log, TABLE) == {"dl_1": 2}
    assert counts(log, INDEX) == {"STATUS#pending": 2}


def test_put_over_an_indexed_item_moving_its_key_counts_both_keys() -> None:
    log = new_log()
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_1", "in_progress")})
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_1", "delivered")})
    assert counts(log, INDEX) == {"STATUS#in_progress": 2, "STATUS#delivered": 1}


def test_if_not_exists_keeps_a_known_index_key() -> None:
    log = new_log()
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_1", "pending")})
    log.apply(
        "UpdateItem",
        {
            "TableName": TABLE,
            "Key": {"pk": s("dl_1"), "sk": s("D")},
            "UpdateExpression": "SET gsi1pk = if_not_exists(gsi1pk, :g)",
            "ExpressionAttributeValues": {":g": s("STATUS#other")},
        },
    )
    assert counts(log, INDEX) == {"STATUS#pending": 2}


def test_batch_write_is_split_per_item() -> None:
    log = new_log()
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_9", "pending")})
    log.apply(
        "BatchWriteItem",
        {
            "RequestItems": {
                TABLE: [
                    {"PutRequest": {"Item": delivery("dl_1", "pending")}},
                    {"PutRequest": {"Item": delivery("dl_2", None)}},
                    {"DeleteRequest": {"Key": {"pk": s("dl_9"), "sk": s("D")}}},
                ]
            }
        },
    )
    assert counts(log, TABLE) == {"dl_9": 2, "dl_1": 1, "dl_2": 1}
    assert counts(log, INDEX) == {"STATUS#pending": 3}


def test_transact_write_is_split_per_item_and_condition_checks_write_nothing() -> None:
    log = new_log()
    log.apply(
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Put": {"TableName": TABLE, "Item": delivery("dl_1", "pending")}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": s("dl_2"), "sk": s("D")},
                        "UpdateExpression": "SET gsi1pk = :g, gsi1sk = :t",
                        "ExpressionAttributeValues": {":g": s("STATUS#pending"), ":t": s("t")},
                    }
                },
                {"ConditionCheck": {"TableName": TABLE, "Key": {"pk": s("dl_3"), "sk": s("D")}}},
                {"Delete": {"TableName": TABLE, "Key": {"pk": s("dl_4"), "sk": s("D")}}},
            ]
        },
    )
    assert counts(log, TABLE) == {"dl_1": 1, "dl_2": 1, "dl_4": 1}
    assert counts(log, INDEX) == {"STATUS#pending": 2}


def test_items_scanned_at_start_are_known_to_later_updates() -> None:
    log = new_log()
    log.remember(TABLE, delivery("dl_1", "pending"))
    log.apply(
        "UpdateItem",
        {
            "TableName": TABLE,
            "Key": {"pk": s("dl_1"), "sk": s("D")},
            "UpdateExpression": "ADD replays :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        },
    )
    assert counts(log, INDEX) == {"STATUS#pending": 1}
    assert log.unseen_updates == 0


def test_reads_are_not_counted() -> None:
    log = new_log()
    log.apply("GetItem", {"TableName": TABLE, "Key": {"pk": s("dl_1"), "sk": s("D")}})
    log.apply("Query", {"TableName": TABLE, "IndexName": "StatusIndex"})
    assert log.counts == {}


def test_parse_update_expression_reads_every_clause() -> None:
    actions = parse_update_expression(
        "ADD requests :one SET expires_at = if_not_exists(expires_at, :exp), #s = :v REMOVE a, #b DELETE tags :t",
        {"#s": "status", "#b": "gsi1pk"},
    )
    assert actions == [
        ("ADD", "requests", ":one"),
        ("SET", "expires_at", "if_not_exists(expires_at, :exp)"),
        ("SET", "status", ":v"),
        ("REMOVE", "a", None),
        ("REMOVE", "gsi1pk", None),
        ("DELETE", "tags", ":t"),
    ]


def test_share_is_the_hottest_key_over_tables_and_indexes_past_the_threshold() -> None:
    log = new_log()
    for i in range(10):
        log.apply("PutItem", {"TableName": TABLE, "Item": delivery(f"dl_{i}", "pending" if i < 7 else "failed")})
    assert log.shares(min_writes=11) == []
    hottest = log.hottest(min_writes=10)
    assert hottest is not None
    assert (hottest.source, hottest.hottest_key, hottest.share) == (INDEX, "STATUS#pending", 0.7)
    table = next(x for x in log.shares(min_writes=10) if x.source == TABLE)
    assert table.share == pytest.approx(0.1)


def test_store_keeps_the_largest_share_over_runs() -> None:
    hot, cool = new_log(), new_log()
    for i in range(4):
        hot.apply("PutItem", {"TableName": TABLE, "Item": delivery(f"dl_{i}", "pending")})
        cool.apply("PutItem", {"TableName": TABLE, "Item": delivery(f"dl_{i}", None)})
    results: dict[str, dict[str, object]] = {}
    store(results, "relay", cool, min_writes=4)
    scale = store(results, "ingest", hot, min_writes=4)
    assert (scale["hottest_key_share"], scale["hottest_key_run"], scale["hottest_key_in"]) == (1.0, "ingest", INDEX)
    assert scale["ratio_to_goal"] == pytest.approx(20.0)
    assert set(scale["runs"]) == {"relay", "ingest"}


def test_e_mail_addresses_in_keys_are_masked_consistently() -> None:
    masked = mask_key("SUB#taro.yamada+x@example.co.jp#sendgrid")
    assert "taro" not in masked and "example" not in masked
    assert masked.startswith("SUB#<email:") and masked.endswith(">#sendgrid")
    assert masked == mask_key("SUB#taro.yamada+x@example.co.jp#sendgrid")
    assert mask_key("STATUS#delivered") == "STATUS#delivered"


def test_reported_hottest_key_is_masked() -> None:
    subs = TableSchema("Subs", "pk", "sk")
    log = new_log(subs)
    for i in range(3):
        log.apply("PutItem", {"TableName": "Subs", "Item": {"pk": s("hanako@example.com"), "sk": s(str(i))}})
    hottest = log.hottest(min_writes=1)
    assert hottest is not None and "hanako" not in json.dumps(log.summary(min_writes=1))
    assert hottest.hottest_key.startswith("<email:")


def test_recording_lines_from_moto_are_parsed_and_other_services_ignored() -> None:
    def line(target: str, body: dict[str, object]) -> str:
        raw = base64.b64encode(json.dumps(body).encode()).decode()
        return json.dumps({"headers": {"X-Amz-Target": target}, "body": raw, "body_encoded": True})

    recording = "\n".join(
        [
            line("DynamoDB_20120810.PutItem", {"TableName": TABLE, "Item": delivery("dl_1", "pending")}),
            line("AmazonSQS.SendMessage", {"QueueUrl": "q", "MessageBody": "{}"}),
            line("DynamoDB_20120810.GetItem", {"TableName": TABLE, "Key": {}}),
            '{"headers": {"X-Amz-Target": "DynamoDB_20120810.PutItem"}, "body": "not json"}',
        ]
    )
    log = new_log()
    feed_recording(log, recording)
    assert counts(log, INDEX) == {"STATUS#pending": 1}
    assert (log.requests, log.unreadable) == (1, 1)


def test_final_table_state_is_checked_against_the_shadow_map() -> None:
    log = new_log()
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_1", "in_progress")})
    log.apply("PutItem", {"TableName": TABLE, "Item": delivery("dl_2", None)})
    # As stored at the end: dl_1 as modelled; dl_2 indexed after all (a write the model did not see).
    stored = [delivery("dl_1", "in_progress"), delivery("dl_2", "pending")]
    assert log.mismatches(TABLE, stored) == 1
    assert log.mismatches(TABLE, stored[:1]) == 0
