"""moto made to behave as AWS documents where our code relies on it and moto does not: TransactWriteItems'
ClientRequestToken (moto 5 ignores it)."""

import hashlib
import json
import threading
import time
from typing import Any

# DynamoDB API reference, TransactWriteItems, ClientRequestToken: "If the original TransactWriteItems call was
# successful, the subsequent TransactWriteItems calls with the same client token return successfully without
# making any changes to the table. [...] A client request token is valid for 10 minutes after the first request
# that uses it is completed. [...] If you submit a request with the same client token but a change in other
# parameters within the 10-minute idempotency window, DynamoDB returns an IdempotentParameterMismatch
# exception." Without it, botocore's own retry of a transaction that committed while its answer was late (a
# read timeout on a loaded machine) met the conditions the first attempt had just satisfied, and a test saw a
# cancellation that real DynamoDB would never give.
IDEMPOTENCY_WINDOW_SECONDS = 600

_lock = threading.Lock()
_completed: dict[tuple[str, str, str], tuple[float, str]] = {}
_installed = False


def install() -> None:
    """Patch moto's DynamoDB handler in this process (the moto server's), once."""
    global _installed
    from moto.dynamodb.exceptions import DynamodbException
    from moto.dynamodb.responses import DynamoHandler

    with _lock:
        if _installed:
            return
        _installed = True
    original = DynamoHandler.transact_write_items

    def transact_write_items(self: Any) -> Any:
        token = self.body.get("ClientRequestToken")
        if not token:
            return original(self)
        key = (self.current_account, self.region, str(token))
        digest = hashlib.sha256(json.dumps(self.body["TransactItems"], sort_keys=True).encode()).hexdigest()
        now = time.monotonic()
        with _lock:
            for old in [k for k, (at, _) in _completed.items() if now - at > IDEMPOTENCY_WINDOW_SECONDS]:
                del _completed[old]
            seen = _completed.get(key)
        if seen is not None:
            if seen[1] != digest:
                raise DynamodbException(
                    "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
                    "The request uses the same client token as a previous, but non-identical request.",
                )
            return _success()
        result = original(self)  # raises on a cancellation: only a committed transaction is remembered
        with _lock:
            _completed[key] = (time.monotonic(), digest)
        return result

    DynamoHandler.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _success() -> Any:
    from moto.core.responses import ActionResult

    return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})


if __name__ == "__main__":  # `python -m devkit.moto_fidelity -H host -p port`: moto's server, patched
    import sys

    from moto.server import main

    install()
    main(sys.argv[1:])
