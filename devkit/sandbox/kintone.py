"""kintone REST API stand-in: records of apps, get/add/update by id or updateKey, bulk add and bulk update
with upsert, guest-space paths, API tokens (comma-joined, at most 9) and optional Basic auth, and
kintone's own error bodies (GAIA_RE01, CB_VA01 with per-field errors, GAIA_CO02, CB_NO02, GAIA_IA02)."""

import base64
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from devkit.sandbox.base import Reply, Request

MAX_RECORDS = 100
_PATH = re.compile(r"^/k/(?:guest/(?P<space>\d+)/)?v1/(?P<resource>record|records)\.json$")


def kintone_error(status: int, code: str, message: str, errors: dict[str, Any] | None = None) -> Reply:
    body: dict[str, Any] = {"code": code, "id": secrets.token_urlsafe(15)[:20], "message": message}
    if errors:
        body["errors"] = errors
    return Reply(status, body)


class _Invalid(Exception):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply


@dataclass
class App:
    app_id: str
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> {type, unique, required, max}
    tokens: list[str] = field(default_factory=list)
    readonly_tokens: list[str] = field(default_factory=list)  # may view, may not add or edit
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1
    requests_today: int = 0


class Kintone:
    name = "kintone"

    def __init__(self, default_tokens: list[str], basic_auth: tuple[str, str] | None = None) -> None:
        self.default_tokens = list(default_tokens)
        self.basic_auth = basic_auth
        self.apps: dict[str, App] = {}
        self._lock = threading.Lock()
        self.running = 0

    def reset(self) -> None:
        with self._lock:
            self.apps.clear()

    # ------------------------------------------------------------------ control
    def control(self, method: str, path: str, body: Any) -> Reply | None:
        found = re.match(r"^/apps/(\d+)$", path)
        if not found:
            return None
        app_id = found.group(1)
        with self._lock:
            if method == "PUT":
                spec = body or {}
                app = App(
                    app_id,
                    fields=spec.get("fields", {}),
                    tokens=spec.get("tokens") or list(self.default_tokens),
                    readonly_tokens=spec.get("readonly_tokens", []),
                )
                for record in spec.get("records", []):
                    self._insert(app, record)
                self.apps[app_id] = app
                return Reply(200, {"app": app_id, "records": len(app.records)})
            existing = self.apps.get(app_id)
            if existing is None:
                return Reply(404, {"error": f"no app {app_id}"})
            return Reply(
                200, {"app": app_id, "records": list(existing.records.values()), "requests": existing.requests_today}
            )

    # ------------------------------------------------------------------ API
    def handle(self, request: Request) -> Reply:
        found = _PATH.match(request.path)
        if not found:
            return kintone_error(404, "GAIA_NF01", "The specified API is not found.")
        with self._lock:
            self.running += 1
        try:
            reply = self._dispatch(request, found.group("resource"))
        finally:
            with self._lock:
                self.running -= 1
        reply.headers.setdefault("X-ConcurrencyLimit-Limit", "100")
        reply.headers.setdefault("X-ConcurrencyLimit-Running", str(self.running + 1))
        return reply

    def _dispatch(self, request: Request, resource: str) -> Reply:
        if self.basic_auth is not None:
            expected = "Basic " + base64.b64encode(":".join(self.basic_auth).encode()).decode()
            if request.headers.get("authorization") != expected:
                return Reply(401, "認証が必要です (Basic authentication required)")
        if request.method == "GET":
            params = {k: v[0] for k, v in request.query.items()}
        else:
            try:
                params = request.json()
            except ValueError:
                return kintone_error(400, "CB_IJ01", "Invalid JSON string.")
            if not isinstance(params, dict):
                return kintone_error(400, "CB_IJ01", "Invalid JSON string.")
        app_id = str(params.get("app", ""))
        if not app_id.isdigit():
            return kintone_error(
                400, "CB_VA01", "Missing or invalid input.", {"app": {"messages": ["Required field."]}}
            )
        with self._lock:
            if app_id not in self.apps:
                self.apps[app_id] = App(app_id, tokens=list(self.default_tokens))
            app = self.apps[app_id]
            denied = self._check_token(app, request)
            if denied:
                return denied
            app.requests_today += 1
            try:
                return self._operate(app, request.method, resource, params)
            except _Invalid as invalid:
                return invalid.reply

    def _check_token(self, app: App, request: Request) -> Reply | None:
        header = request.headers.get("x-cybozu-api-token")
        if not header:
            return kintone_error(401, "CB_WA01", "Password authentication failed.")
        tokens = [t.strip() for t in header.split(",") if t.strip()]
        if len(tokens) > 9:
            return kintone_error(400, "GAIA_TM12", "Too many API tokens are specified (maximum 9).")
        if any(t in app.tokens for t in tokens):
            return None
        if any(t in app.readonly_tokens for t in tokens):
            if request.method == "GET":
                return None
            return kintone_error(403, "CB_NO02", "No privilege to proceed.")
        return kintone_error(
            401, "GAIA_IA02", "The specified API token does not match the API token generated via an app."
        )

    def _operate(self, app: App, method: str, resource: str, params: dict[str, Any]) -> Reply:
        if resource == "record" and method == "GET":
            record = app.records.get(str(params.get("id", "")))
            if record is None:
                raise _Invalid(_not_found(params.get("id")))
            return Reply(200, {"record": record})
        if resource == "records" and method == "GET":
            return Reply(200, {"records": list(app.records.values()), "totalCount": None})
        if resource == "record" and method == "POST":
            record = self._insert(app, params.get("record") or {})
            return Reply(200, {"id": record["$id"]["value"], "revision": record["$revision"]["value"]})
        if resource == "records" and method == "POST":
            rows = _rows(params, "records")
            staged = self._staged(app)
            created = [self._insert(staged, r) for r in rows]
            self._commit(app, staged)
            return Reply(
                200,
                {"ids": [r["$id"]["value"] for r in created], "revisions": [r["$revision"]["value"] for r in created]},
            )
        if resource == "record" and method == "PUT":
            if "upsert" in params:
                raise _Invalid(
                    kintone_error(
                        400,
                        "CB_VA01",
                        "Missing or invalid input.",
                        {"upsert": {"messages": ["Unknown parameter on this API."]}},
                    )
                )
            record = self._update(app, params, upsert=False)[0]
            return Reply(200, {"revision": record["$revision"]["value"]})
        if resource == "records" and method == "PUT":
            upsert = params.get("upsert") is True
            rows = _rows(params, "records")
            staged = self._staged(app)  # all or nothing, like kintone's bulk endpoints
            results = []
            for row in rows:
                record, operation = self._update(staged, row, upsert=upsert)
                item = {"id": record["$id"]["value"], "revision": record["$revision"]["value"]}
                if upsert:
                    item["operation"] = operation
                results.append(item)
            self._commit(app, staged)
            return Reply(200, {"records": results})
        return kintone_error(405, "GAIA_NF01", "The specified API is not found.")

    # ------------------------------------------------------------------ records
    @staticmethod
    def _staged(app: App) -> App:
        copy = App(app.app_id, fields=app.fields, tokens=app.tokens, next_id=app.next_id)
        copy.records = {k: {f: dict(v) for f, v in r.items()} for k, r in app.records.items()}
        return copy

    @staticmethod
    def _commit(app: App, staged: App) -> None:
        app.records, app.next_id = staged.records, staged.next_id

    def _insert(self, app: App, values: Any) -> dict[str, Any]:
        fields = self._validate(app, values, creating=True, exclude_id=None)
        record_id = str(app.next_id)
        app.next_id += 1
        record = {"$id": {"type": "__ID__", "value": record_id}, "$revision": {"type": "__REVISION__", "value": "1"}}
        record.update(fields)
        app.records[record_id] = record
        return record

    def _update(self, app: App, params: dict[str, Any], *, upsert: bool) -> tuple[dict[str, Any], str]:
        has_id, key = "id" in params and params["id"] not in (None, ""), params.get("updateKey")
        if has_id and key:
            raise _Invalid(
                kintone_error(
                    400,
                    "CB_VA01",
                    "Missing or invalid input.",
                    {"id": {"messages": ["Specify either id or updateKey, not both."]}},
                )
            )
        values = params.get("record") or {}
        if has_id:
            record = app.records.get(str(params["id"]))
        elif isinstance(key, dict) and key.get("field") and "value" in key:
            spec = app.fields.get(key["field"], {})
            if app.fields and not spec.get("unique"):
                raise _Invalid(
                    kintone_error(
                        400,
                        "CB_VA01",
                        "Missing or invalid input.",
                        {
                            "updateKey.field": {
                                "messages": [
                                    "The field must be a text or number field that prohibits duplicate values."
                                ]
                            }
                        },
                    )
                )
            record = next(
                (r for r in app.records.values() if str(r.get(key["field"], {}).get("value")) == str(key["value"])),
                None,
            )
        else:
            raise _Invalid(
                kintone_error(400, "CB_VA01", "Missing or invalid input.", {"id": {"messages": ["Required field."]}})
            )
        if record is None:
            if not upsert:
                raise _Invalid(_not_found(params.get("id") or (key or {}).get("value")))
            if isinstance(key, dict):
                values = {**values, key["field"]: {"value": key["value"]}}
            return self._insert(app, values), "INSERT"
        revision = params.get("revision")
        if revision not in (None, -1, "-1") and str(revision) != record["$revision"]["value"]:
            raise _Invalid(
                kintone_error(409, "GAIA_CO02", "The revision is not the latest. Someone may update a record.")
            )
        record.update(self._validate(app, values, creating=False, exclude_id=record["$id"]["value"]))
        record["$revision"]["value"] = str(int(record["$revision"]["value"]) + 1)
        return record, "UPDATE"

    @staticmethod
    def _validate(app: App, values: Any, *, creating: bool, exclude_id: str | None) -> dict[str, Any]:
        if not isinstance(values, dict):
            raise _Invalid(
                kintone_error(
                    400, "CB_VA01", "Missing or invalid input.", {"record": {"messages": ["Must be an object."]}}
                )
            )
        errors: dict[str, Any] = {}
        out: dict[str, Any] = {}
        for code, cell in values.items():
            if not isinstance(cell, dict) or "value" not in cell:
                errors[f"record.{code}.value"] = {"messages": ["Required."]}
                continue
            spec = app.fields.get(code)
            if app.fields and spec is None:
                continue  # kintone ignores unknown field codes
            spec = spec or {}
            value = cell["value"]
            if spec.get("type") == "NUMBER" and value not in ("", None):
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    errors[f"record.{code}.value"] = {"messages": ["Only numbers are allowed."]}
                    continue
                if "max" in spec and number > spec["max"]:
                    errors[f"record.{code}.value"] = {"messages": [f"The value must be {spec['max']} or less."]}
                    continue
            too_long = _too_long(spec, value)
            if too_long:
                errors[f"record.{code}.value"] = {"messages": [too_long]}
                continue
            if spec.get("unique") and value not in ("", None):
                clash = any(
                    str(r.get(code, {}).get("value")) == str(value) and r["$id"]["value"] != exclude_id
                    for r in app.records.values()
                )
                if clash:
                    errors[f"record.{code}.value"] = {"messages": ["This value already exists in another record."]}
                    continue
            out[code] = {"type": spec.get("type", "SINGLE_LINE_TEXT"), "value": value}
        if creating:
            for code, spec in app.fields.items():
                if spec.get("required") and code not in out and f"record.{code}.value" not in errors:
                    errors[f"record.{code}.value"] = {"messages": ["Required."]}
        if errors:
            raise _Invalid(kintone_error(400, "CB_VA01", "Missing or invalid input.", errors))
        return out


# A SINGLE_LINE_TEXT field that prohibits duplicate values takes at most 64 characters: kintone help
# "フィールドの入力制限" (https://get.kintone.help/k/ja/user/app_settings/form/form_parts/field_restriction.html).
UNIQUE_TEXT_MAX_CHARS = 64
# Other text values: kintone's help states no limit for text fields, only 65,535 characters for spaces and
# threads (as a developer-community thread found: https://community.cybozu.dev/t/topic/10454). The
# pessimistic reading: every text value is refused beyond it.
TEXT_MAX_CHARS = 65_535
_TEXT_TYPES = {"SINGLE_LINE_TEXT", "MULTI_LINE_TEXT", "RICH_TEXT", "LINK"}


def _too_long(spec: dict[str, Any], value: Any) -> str | None:
    if spec.get("type", "SINGLE_LINE_TEXT") not in _TEXT_TYPES or not isinstance(value, str):
        return None
    limit = UNIQUE_TEXT_MAX_CHARS if spec.get("unique") else TEXT_MAX_CHARS
    if len(value) > limit:
        return f"Enter {limit} or fewer characters."  # the message text is ours; the CB_VA01 shape is kintone's
    return None


def _not_found(record_id: Any) -> Reply:
    return kintone_error(404, "GAIA_RE01", f"The specified record (ID: {record_id}) is not found.")


def _rows(params: dict[str, Any], key: str) -> list[Any]:
    rows = params.get(key)
    if not isinstance(rows, list) or not rows:
        raise _Invalid(
            kintone_error(400, "CB_VA01", "Missing or invalid input.", {key: {"messages": ["Required field."]}})
        )
    if len(rows) > MAX_RECORDS:
        raise _Invalid(
            kintone_error(
                400,
                "CB_VA01",
                "Missing or invalid input.",
                {key: {"messages": [f"Specify up to {MAX_RECORDS} records."]}},
            )
        )
    return rows
