"""moto's server for the benchmarks, with one performance fix: its TransactWriteItems deep-copies the whole
table once per *operation* (for a rollback copy it then overwrites), so a 100-item transaction on a table of
10,000 items copies a million items. Here it copies each table once per transaction - the same rollback
state, since the copies are all taken before the first operation runs. Nothing else changes."""

import copy
import sys
import threading
from typing import Any

from moto.dynamodb import models
from moto.server import main

_memo = threading.local()


class _CopyOncePerTransaction:
    """Stands in for the `copy` module inside moto's DynamoDB models."""

    def deepcopy(self, value: Any) -> Any:
        memo = getattr(_memo, "copies", None)
        if memo is None or type(value).__name__ != "Table":
            return copy.deepcopy(value)
        if id(value) not in memo:
            memo[id(value)] = copy.deepcopy(value)
        return memo[id(value)]

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


_original = models.DynamoDBBackend.transact_write_items


def _transact_write_items(self: Any, transact_items: Any) -> Any:
    _memo.copies = {}
    try:
        return _original(self, transact_items)
    finally:
        _memo.copies = None


models.copy = _CopyOncePerTransaction()  # type: ignore[assignment]
models.DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]

if __name__ == "__main__":
    from devkit import moto_fidelity

    moto_fidelity.install()
    main(sys.argv[1:])
