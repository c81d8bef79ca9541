"""Attributes every DynamoDB write of a benchmark run to the partition keys it touches (table and each GSI).

How the writes are captured: moto's own request recorder, at the moto server (moto 5.2.5:
`/moto-api/recorder/start-recording`, `download-recording`, `reset-recording`). Every request that reaches
the server is logged there, whichever process sends it - a handler run in the benchmark's process, a
function in a subprocess, a worker - with no hook to install anywhere else. The recorder logs requests,
not answers; what that means is listed below.

What the model counts, per item written (each count is one item write; not capacity units):
- Tables: PutItem, UpdateItem, DeleteItem, each Put/Update/Delete of a BatchWriteItem and of a
  TransactWriteItems count one write on the table's partition key. A ConditionCheck writes nothing and is
  not counted. Item size (a 3 KB item costs 3 WCU) and the doubled cost of transactions are not weighed.
- Global secondary indexes: an item is in an index when it carries every key attribute of the index
  (sparse indexes: an item without them is not written to it). For each item write the model compares the
  item's index keys before and after:
    * not indexed before or after: nothing;
    * indexed after only: one write under the new partition key;
    * indexed before only (a delete, a REMOVE, a put without the attributes): one write under the old key;
    * indexed before and after under another key: two writes, the old key's removal and the new key
      (DynamoDB's GSI docs: a changed index key takes a delete from the index and a put into it);
    * indexed before and after under the same key: one write under that key if the index projects ALL,
      or INCLUDEs an attribute the write touched (a put touches every attribute); none for KEYS_ONLY.
  "Before" comes from a shadow map of each item's index key attributes, filled by a Scan of every table
  when recording starts and kept up to date from every write seen since. UpdateItem is read for its
  SET/REMOVE/ADD of key attributes (`:v`, `if_not_exists(path, :v)`, another attribute, and ADD of a
  number); a value it cannot work out (`a + :b`, `list_append`) counts under the key `<unresolved>`.
- Not known from requests alone: a write whose condition failed, or a cancelled transaction, is counted as
  if it succeeded. DynamoDB does charge a failed conditional write against the table's partition, so the
  table counts hold; the index counts and the shadow map then over-state it. `WriteLog.unseen_updates`
  counts updates and deletes of items neither scanned nor written before, whose prior keys the model
  could not know; `WriteLog.shadow_mismatches` counts the items whose index keys, read back by a Scan when
  recording stops, differ from the shadow map's (a counted write that did not happen, or one not seen).
  A request botocore retries reaches the server, and is counted, once per attempt.
Keys are reported masked: any e-mail address inside a key becomes `<email:...>` with a short hash."""

import base64
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

TARGET_PREFIX = "DynamoDB_20120810."
WRITE_OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
UNRESOLVED = "<unresolved>"
GOAL = 0.05  # issue 10: no key above 5% of a table's or index's writes, so 20,000 writes/s stay under 1,000/key

_EMAIL = re.compile(r"[^\s#|:/@<>]+@[^\s#|:/@<>]+")


def mask_key(key: str) -> str:
    """A key fit for a report: each e-mail address replaced by a short hash of it (same address, same mask)."""
    return _EMAIL.sub(lambda m: f"<email:{hashlib.sha256(m.group(0).encode()).hexdigest()[:10]}>", key)


@dataclass(frozen=True)
class IndexSchema:
    name: str
    hash_key: str
    range_key: str | None = None
    projection: str = "ALL"  # ALL, KEYS_ONLY or INCLUDE
    non_key_attributes: frozenset[str] = frozenset()

    @property
    def key_attributes(self) -> tuple[str, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)


@dataclass(frozen=True)
class TableSchema:
    name: str
    hash_key: str
    range_key: str | None = None
    indexes: tuple[IndexSchema, ...] = ()

    @property
    def index_key_attributes(self) -> frozenset[str]:
        return frozenset(a for index in self.indexes for a in index.key_attributes)

    @classmethod
    def from_description(cls, table: dict[str, Any]) -> "TableSchema":
        """From DescribeTable's `Table` (or a template's properties with `TableName` added)."""

        def keys(schema: list[dict[str, str]]) -> tuple[str, str | None]:
            by_type = {k["KeyType"]: k["AttributeName"] for k in schema}
            return by_type["HASH"], by_type.get("RANGE")

        indexes = []
        for gsi in table.get("GlobalSecondaryIndexes") or []:
            hash_key, range_key = keys(gsi["KeySchema"])
            projection = gsi.get("Projection", {})
            indexes.append(
                IndexSchema(
                    name=gsi["IndexName"],
                    hash_key=hash_key,
                    range_key=range_key,
                    projection=projection.get("ProjectionType", "ALL"),
                    non_key_attributes=frozenset(projection.get("NonKeyAttributes", [])),
                )
            )
        hash_key, range_key = keys(table["KeySchema"])
        return cls(name=table["TableName"], hash_key=hash_key, range_key=range_key, indexes=tuple(indexes))


def _scalar(value: dict[str, Any] | None) -> str | None:
    """The text of a key-typed attribute value (S, N or B); None for absent or non-key types."""
    if not value:
        return None
    if "S" in value:
        return str(value["S"])
    if "N" in value:
        return str(Decimal(value["N"]).normalize())
    if "B" in value:
        raw = value["B"]
        return "b64:" + (raw if isinstance(raw, str) else base64.b64encode(raw).decode())
    return None


@dataclass(frozen=True)
class KeyShare:
    source: str  # "Table" or "Table/Index"
    writes: int
    distinct_keys: int
    hottest_key: str  # masked
    hottest_writes: int
    top_keys: tuple[tuple[str, int], ...] = ()  # the busiest few keys (masked) and their writes

    @property
    def share(self) -> float:
        return self.hottest_writes / self.writes

    def as_dict(self) -> dict[str, Any]:
        return {
            "writes": self.writes,
            "distinct_keys": self.distinct_keys,
            "hottest_key": self.hottest_key,
            "hottest_writes": self.hottest_writes,
            "share": self.share,
            "top_keys": [{"key": k, "writes": n, "share": n / self.writes} for k, n in self.top_keys],
        }


@dataclass
class WriteLog:
    """The write counts of a run, per table and per index and partition key, with the shadow map."""

    schemas: dict[str, TableSchema]
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    shadow: dict[tuple[str, str | None, str | None], dict[str, dict[str, Any]]] = field(default_factory=dict)
    unseen_updates: int = 0
    requests: int = 0
    unreadable: int = 0  # recorded lines or bodies that could not be parsed
    # Items whose index keys in the table at the end differ from the shadow map's (None: not checked):
    # the trace of writes the model counted that did not happen (a failed condition) or did not see.
    shadow_mismatches: int | None = None

    # ------------------------------------------------------------------ report
    def shares(self, min_writes: int = 1000) -> list[KeyShare]:
        """For each table and index with at least `min_writes` writes: its hottest key, busiest first."""
        out = []
        for source, keys in self.counts.items():
            total = sum(keys.values())
            if total < min_writes or not keys:
                continue
            top = tuple((mask_key(k), n) for k, n in keys.most_common(3))
            out.append(KeyShare(source, total, len(keys), top[0][0], top[0][1], top))
        return sorted(out, key=lambda s: s.share, reverse=True)

    def hottest(self, min_writes: int = 1000) -> KeyShare | None:
        shares = self.shares(min_writes)
        return shares[0] if shares else None

    def summary(self, min_writes: int = 1000) -> dict[str, Any]:
        """What a benchmark stores: every table/index over the threshold, the hottest, and the caveat counts."""
        hottest = self.hottest(min_writes)
        return {
            "hottest_key_share": hottest.share if hottest else None,
            "hottest_key_in": hottest.source if hottest else None,
            "hottest_key": hottest.hottest_key if hottest else None,
            "min_writes": min_writes,
            "by_table_or_index": {s.source: s.as_dict() for s in self.shares(min_writes)},
            "writes_below_threshold": {
                source: sum(keys.values())
                for source, keys in sorted(self.counts.items())
                if sum(keys.values()) < min_writes
            },
            "dynamodb_write_requests": self.requests,
            "unseen_updates": self.unseen_updates,
            "unreadable": self.unreadable,
            "shadow_mismatches": self.shadow_mismatches,
        }

    # ------------------------------------------------------------------ model
    def remember(self, table: str, item: dict[str, Any]) -> None:
        """An item that exists when recording starts (from a Scan): its index keys, no write counted."""
        schema = self._schema(table)
        self.shadow[self._item_id(schema, item)] = self._index_attributes(schema, item)

    def mismatches(self, table: str, items: list[dict[str, Any]]) -> int:
        """How many of a table's stored items carry index keys other than the shadow map says they do."""
        schema = self._schema(table)

        def keys(attributes: dict[str, dict[str, Any]]) -> dict[str, str | None]:
            return {a: _scalar(v) for a, v in attributes.items()}

        return sum(
            keys(self.shadow.get(self._item_id(schema, item), {})) != keys(self._index_attributes(schema, item))
            for item in items
        )

    def apply(self, operation: str, request: dict[str, Any]) -> None:
        """One DynamoDB API request, as its JSON body; anything but the five write operations is ignored."""
        if operation not in WRITE_OPERATIONS:
            return
        self.requests += 1
        if operation == "PutItem":
            self._put(request["TableName"], request["Item"])
        elif operation == "DeleteItem":
            self._delete(request["TableName"], request["Key"])
        elif operation == "UpdateItem":
            self._update(request)
        elif operation == "BatchWriteItem":
            for table, entries in request["RequestItems"].items():
                for entry in entries:
                    if "PutRequest" in entry:
                        self._put(table, entry["PutRequest"]["Item"])
                    elif "DeleteRequest" in entry:
                        self._delete(table, entry["DeleteRequest"]["Key"])
        else:
            for entry in request["TransactItems"]:
                if "Put" in entry:
                    self._put(entry["Put"]["TableName"], entry["Put"]["Item"])
                elif "Delete" in entry:
                    self._delete(entry["Delete"]["TableName"], entry["Delete"]["Key"])
                elif "Update" in entry:
                    self._update(entry["Update"])
                # ConditionCheck: a read under a transaction, nothing written

    def _schema(self, table: str) -> TableSchema:
        name = table.rsplit(":table/", 1)[-1]  # a table ARN names the table too
        if name not in self.schemas:  # a table the run created after recording started: no indexes known
            raise KeyError(f"no key schema for table {name}")
        return self.schemas[name]

    @staticmethod
    def _item_id(schema: TableSchema, key: dict[str, Any]) -> tuple[str, str | None, str | None]:
        sort = _scalar(key.get(schema.range_key)) if schema.range_key else None
        return (schema.name, _scalar(key.get(schema.hash_key)), sort)

    @staticmethod
    def _index_attributes(schema: TableSchema, item: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {a: item[a] for a in schema.index_key_attributes if a in item}

    def _count(self, source: str, key: str | None) -> None:
        self.counts.setdefault(source, Counter())[key if key is not None else UNRESOLVED] += 1

    def _write(
        self,
        schema: TableSchema,
        key: dict[str, Any],
        before: dict[str, dict[str, Any]],
        after: dict[str, dict[str, Any]],
        touched: frozenset[str] | None,
    ) -> None:
        """Count one item write: the table's partition, then each index the item leaves, enters or stays in.
        `touched` is the attributes the write set or removed; None for a whole-item put or delete."""
        self._count(schema.name, _scalar(key.get(schema.hash_key)))
        for index in schema.indexes:
            old = self._index_key(index, before)
            new = self._index_key(index, after)
            source = f"{schema.name}/{index.name}"
            if old is None and new is None:
                continue
            if old == new:
                if (
                    index.projection == "ALL"
                    or touched is None
                    or (index.projection == "INCLUDE" and touched & index.non_key_attributes)
                ):
                    self._count(source, new[0] if new else None)
                continue
            if old is not None:
                self._count(source, old[0])  # the entry under the old key is removed
            if new is not None:
                self._count(source, new[0])
        self.shadow[self._item_id(schema, key)] = after

    @staticmethod
    def _index_key(index: IndexSchema, attributes: dict[str, dict[str, Any]]) -> tuple[str, ...] | None:
        if any(a not in attributes for a in index.key_attributes):
            return None  # sparse: the item is not in this index
        return tuple(
            UNRESOLVED if "?" in attributes[a] else (_scalar(attributes[a]) or UNRESOLVED) for a in index.key_attributes
        )

    def _put(self, table: str, item: dict[str, Any]) -> None:
        schema = self._schema(table)
        before = self.shadow.get(self._item_id(schema, item), {})
        self._write(schema, item, before, self._index_attributes(schema, item), None)

    def _delete(self, table: str, key: dict[str, Any]) -> None:
        schema = self._schema(table)
        item_id = self._item_id(schema, key)
        if item_id not in self.shadow:
            self.unseen_updates += 1
        self._write(schema, key, self.shadow.get(item_id, {}), {}, None)

    def _update(self, request: dict[str, Any]) -> None:
        schema = self._schema(request["TableName"])
        key = request["Key"]
        item_id = self._item_id(schema, key)
        if item_id not in self.shadow:
            self.unseen_updates += 1
        before = self.shadow.get(item_id, {})
        after = dict(before)
        touched: set[str] = set()
        names = request.get("ExpressionAttributeNames") or {}
        values = request.get("ExpressionAttributeValues") or {}
        if request.get("UpdateExpression"):
            for action, path, value in parse_update_expression(request["UpdateExpression"], names):
                touched.add(path)
                if path not in schema.index_key_attributes:
                    continue
                if action == "REMOVE":
                    after.pop(path, None)
                elif action == "SET":
                    after[path] = _set_value(value, after, values, names)
                elif action == "ADD":
                    after[path] = _add_number(after.get(path), values.get(value or ""))
        for path, update in (request.get("AttributeUpdates") or {}).items():  # the legacy form
            touched.add(path)
            if path not in schema.index_key_attributes:
                continue
            if update.get("Action", "PUT") == "DELETE":
                after.pop(path, None)
            elif update.get("Action", "PUT") == "PUT":
                after[path] = update["Value"]
            else:
                after[path] = _add_number(after.get(path), update.get("Value"))
        self._write(schema, key, before, after, frozenset(touched))


# ---------------------------------------------------------------------- UpdateExpression
# Clause keywords are reserved words, so they only appear as keywords, between blanks (`#set` is a name).
_CLAUSE = re.compile(r"(?<!\S)(SET|REMOVE|ADD|DELETE)(?!\S)", re.IGNORECASE)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses: `a = if_not_exists(a, :v), b = :w` is two actions."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _top_level_name(path: str, names: dict[str, str]) -> str:
    """`#s` -> its name; a nested path (`a.b`, `a[0]`) keeps only its full text (never a key attribute)."""
    path = path.strip()
    return names.get(path, path)


def parse_update_expression(expression: str, names: dict[str, str]) -> list[tuple[str, str, str | None]]:
    """(action, attribute, value expression) for each action of an UpdateExpression, names resolved."""
    actions: list[tuple[str, str, str | None]] = []
    pieces = _CLAUSE.split(expression)
    for keyword, body in zip(pieces[1::2], pieces[2::2], strict=True):
        keyword = keyword.upper()
        for action in _split_top_level(body):
            if keyword == "SET":
                path, _, value = action.partition("=")
                actions.append(("SET", _top_level_name(path, names), value.strip()))
            elif keyword == "REMOVE":
                actions.append(("REMOVE", _top_level_name(action, names), None))
            else:  # ADD / DELETE: "path :value"
                path, _, value = action.strip().partition(" ")
                actions.append((keyword, _top_level_name(path, names), value.strip()))
    return actions


_IF_NOT_EXISTS = re.compile(r"^if_not_exists\s*\(\s*([^,\s]+)\s*,\s*(:[\w]+)\s*\)$", re.IGNORECASE)


def _set_value(
    expression: str | None, item: dict[str, dict[str, Any]], values: dict[str, Any], names: dict[str, str]
) -> dict[str, Any]:
    """The value a SET gives, from what the shadow knows; `{"?": ...}` when it cannot be worked out."""
    expression = (expression or "").strip()
    if expression.startswith(":") and expression in values:
        return dict(values[expression])
    match = _IF_NOT_EXISTS.match(expression)
    if match:
        existing = item.get(_top_level_name(match.group(1), names))
        return dict(existing) if existing else dict(values.get(match.group(2)) or {"?": expression})
    other = _top_level_name(expression, names)
    if re.fullmatch(r"[\w\-]+", other) and other in item:
        return dict(item[other])
    return {"?": expression}


def _add_number(current: dict[str, Any] | None, value: dict[str, Any] | None) -> dict[str, Any]:
    if not value or "N" not in value:
        return {"?": "ADD"}
    if current is None:
        return dict(value)
    if "N" not in current:
        return {"?": "ADD"}
    return {"N": str(Decimal(current["N"]) + Decimal(value["N"]))}


# ---------------------------------------------------------------------- capture at the moto server
def table_schemas(client: Any) -> dict[str, TableSchema]:
    """Every table the server holds, from DescribeTable: key schema and each GSI's keys and projection."""
    names = [n for page in client.get_paginator("list_tables").paginate() for n in page["TableNames"]]
    return {n: TableSchema.from_description(client.describe_table(TableName=n)["Table"]) for n in names}


def _scan_keys(client: Any, schema: TableSchema) -> list[dict[str, Any]]:
    """Every item of a table, reduced to its primary key and index key attributes."""
    wanted = {schema.hash_key, *([schema.range_key] if schema.range_key else []), *schema.index_key_attributes}
    aliases = {f"#a{i}": name for i, name in enumerate(sorted(wanted))}
    pages = client.get_paginator("scan").paginate(
        TableName=schema.name, ProjectionExpression=", ".join(aliases), ExpressionAttributeNames=aliases
    )
    return [item for page in pages for item in page["Items"]]


def _scan_into(log: WriteLog, client: Any) -> None:
    """Seed the shadow map with the index keys of every item already stored (no write counted)."""
    for schema in log.schemas.values():
        if schema.indexes:
            for item in _scan_keys(client, schema):
                log.remember(schema.name, item)


def _check_against_tables(log: WriteLog, client: Any) -> None:
    log.shadow_mismatches = sum(
        log.mismatches(schema.name, _scan_keys(client, schema)) for schema in log.schemas.values() if schema.indexes
    )


def feed_recording(log: WriteLog, recording: str) -> None:
    """Apply every DynamoDB request of a moto recording (JSON lines) to the log, in the order recorded."""
    for line in recording.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
            target = headers.get("x-amz-target", "")
            if not target.startswith(TARGET_PREFIX):
                continue
            operation = target[len(TARGET_PREFIX) :]
            if operation not in WRITE_OPERATIONS:
                continue
            body = entry.get("body") or ""
            raw = base64.b64decode(body) if entry.get("body_encoded") else body.encode()
            log.apply(operation, json.loads(raw))
        except (ValueError, TypeError, AttributeError, KeyError):  # KeyError: a table with no schema
            log.unreadable += 1


class WriteRecorder:
    """Records at a moto server (`/moto-api/recorder/*`) from start() to stop(), which returns the WriteLog.

    The recording holds the requests' bodies (e-mail addresses included) in the server's recorder file
    (`MOTO_RECORDER_FILEPATH`; devkit's MotoProcess points it into a private temporary directory; an
    in-process MotoServer uses moto's default, `moto_recording` in the working directory), so stop() empties
    it again once read."""

    def __init__(self, moto_url: str) -> None:
        import boto3
        import requests

        self.moto_url = moto_url.rstrip("/")
        self._http = requests.Session()
        self._client = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
            region_name="us-east-1",
        ).client("dynamodb", endpoint_url=self.moto_url)
        self.log: WriteLog | None = None

    def _call(self, action: str) -> str:
        answer = self._http.post(f"{self.moto_url}/moto-api/recorder/{action}", timeout=60)
        answer.raise_for_status()
        return str(answer.text)

    def start(self) -> WriteLog:
        self.log = WriteLog(table_schemas(self._client))
        _scan_into(self.log, self._client)
        self._call("reset-recording")
        self._call("start-recording")
        return self.log

    def stop(self) -> WriteLog:
        assert self.log is not None, "start() first"
        self._call("stop-recording")
        try:
            recording = self._http.get(f"{self.moto_url}/moto-api/recorder/download-recording", timeout=120)
            recording.raise_for_status()
            # Tables created during the run: their schemas, with no items seen before they were made.
            self.log.schemas = {**table_schemas(self._client), **self.log.schemas}
            feed_recording(self.log, recording.text)
            _check_against_tables(self.log, self._client)
        finally:
            self._call("reset-recording")
        return self.log


@contextmanager
def recording(moto_url: str) -> Iterator[WriteLog]:
    """`with recording(moto.endpoint) as log: ...` - the log is filled when the block ends."""
    recorder = WriteRecorder(moto_url)
    log = recorder.start()
    try:
        yield log
    finally:
        recorder.stop()


def store(results: dict[str, Any], run: str, log: WriteLog | dict[str, Any], min_writes: int = 1000) -> dict[str, Any]:
    """Put one run's figures (a WriteLog, or its summary()) under results["scale"]["runs"][run] and recompute
    the figure over all runs: `scale.hottest_key_share` is the largest share over every table and index."""
    scale = results.setdefault("scale", {})
    scale.setdefault("runs", {})[run] = log.summary(min_writes) if isinstance(log, WriteLog) else log
    best: tuple[float, str, str, str] | None = None
    for name, summary in scale["runs"].items():
        if summary["hottest_key_share"] is not None and (best is None or summary["hottest_key_share"] > best[0]):
            best = (summary["hottest_key_share"], name, summary["hottest_key_in"], summary["hottest_key"])
    scale.update(
        {
            "hottest_key_share": best[0] if best else None,
            "hottest_key_run": best[1] if best else None,
            "hottest_key_in": best[2] if best else None,
            "hottest_key": best[3] if best else None,
            "goal": GOAL,
            "ratio_to_goal": best[0] / GOAL if best else None,
        }
    )
    return scale


def print_report(log: WriteLog, min_writes: int = 1000) -> None:
    print(f"  DynamoDB writes by partition key (tables and indexes with >= {min_writes:,} writes)")
    print(f"    {'table / index':34} {'writes':>8} {'keys':>7} {'hottest share':>14}  hottest key")
    for s in log.shares(min_writes):
        print(f"    {s.source:34} {s.writes:8} {s.distinct_keys:7} {s.share:14.3f}  {s.hottest_key}")
    for source, keys in sorted(log.counts.items()):
        if sum(keys.values()) < min_writes:
            print(f"    {source:34} {sum(keys.values()):8}  (below {min_writes:,}: not rated)")
    if log.unseen_updates or log.unreadable or log.shadow_mismatches:
        print(
            f"    updates/deletes of unseen items: {log.unseen_updates}; unreadable records: {log.unreadable}; "
            f"items whose index keys at the end differ from the model's: {log.shadow_mismatches}"
        )
