"""The embedded AWS keeps what AWS documents where the bridge relies on it and moto alone does not."""

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devkit.aws import MotoProcess, MotoServer


def put_once(key: str) -> list[dict[str, Any]]:
    return [
        {
            "Put": {
                "TableName": "fidelity",
                "Item": {"pk": {"S": key}, "n": {"N": "1"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
    ]


def check_client_request_token(server: MotoServer) -> None:
    client = server.client("dynamodb")
    if "fidelity" not in client.list_tables()["TableNames"]:
        client.create_table(
            TableName="fidelity",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    key, token = uuid.uuid4().hex, uuid.uuid4().hex
    client.transact_write_items(TransactItems=put_once(key), ClientRequestToken=token)
    # botocore's retry of a transaction that committed while its answer was late: a success, no change
    client.transact_write_items(TransactItems=put_once(key), ClientRequestToken=token)
    assert client.get_item(TableName="fidelity", Key={"pk": {"S": key}})["Item"]["n"] == {"N": "1"}
    # the same token with other parameters
    with pytest.raises(ClientError) as caught:
        client.transact_write_items(TransactItems=put_once(uuid.uuid4().hex), ClientRequestToken=token)
    assert caught.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    # another token meets the condition the first write satisfied
    with pytest.raises(ClientError) as caught:
        client.transact_write_items(TransactItems=put_once(key), ClientRequestToken=uuid.uuid4().hex)
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    # a cancelled transaction is not remembered: its token may commit other items later
    with pytest.raises(ClientError):
        client.transact_write_items(TransactItems=put_once(key), ClientRequestToken="cancelled-" + token)
    client.transact_write_items(TransactItems=put_once(key + "x"), ClientRequestToken="cancelled-" + token)


def test_a_repeated_transaction_token_is_a_success_without_a_second_write(moto_server: MotoServer) -> None:
    check_client_request_token(moto_server)


def test_the_moto_process_of_the_benchmarks_keeps_the_token_too() -> None:
    server = MotoProcess().start()
    try:
        check_client_request_token(server)
    finally:
        server.stop()
