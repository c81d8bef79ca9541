"""PERSIST=1: the local stack's DynamoDB tables written to .local-state/ when it stops and loaded when it
starts, so messages, subscriptions and deliveries outlive a restart; `make reset` forgets them."""

import base64
import json
import os
from pathlib import Path
from typing import Any

from devkit.template import REPO_ROOT

STATE_DIR = REPO_ROOT / ".local-state"
TABLES_FILE = STATE_DIR / "dynamodb.json"


def tables_file() -> Path:
    """Where the tables are kept: PERSIST_DIR if set (tests use their own), else .local-state/."""
    override = os.environ.get("PERSIST_DIR")
    return Path(override) / TABLES_FILE.name if override else TABLES_FILE


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"__b64__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, set):
        return [_encode(v) for v in sorted(value, key=repr)]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__b64__"}:
            return base64.b64decode(value["__b64__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def save(dynamodb: Any, path: Path | None = None) -> int:
    """Every item of every table, in DynamoDB's typed JSON; returns the number of items written."""
    path = path or tables_file()
    tables: dict[str, list[Any]] = {}
    for name in dynamodb.list_tables()["TableNames"]:
        items: list[Any] = []
        for page in dynamodb.get_paginator("scan").paginate(TableName=name):
            items.extend(page["Items"])
        tables[name] = items
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_encode(tables)), encoding="utf-8")
    tmp.replace(path)  # a stop interrupted mid-write keeps the previous state whole
    return sum(len(v) for v in tables.values())


def load(dynamodb: Any, path: Path | None = None) -> int:
    """Put the saved items back into the (freshly created, same-named) tables; returns how many."""
    path = path or tables_file()
    if not path.is_file():
        return 0
    tables = _decode(json.loads(path.read_text(encoding="utf-8")))
    existing = set(dynamodb.list_tables()["TableNames"])
    count = 0
    for name, items in tables.items():
        if name not in existing:
            continue  # a table the template no longer has
        for start in range(0, len(items), 25):
            batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            pending: dict[str, Any] = {name: batch}
            while pending:
                pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        count += len(items)
    return count


def reset(path: Path | None = None) -> bool:
    path = path or tables_file()
    if path.exists():
        path.unlink()
        return True
    return False
