"""kintone REST API target: update one record by `id` or `updateKey` (PUT record.json), upsert through the
bulk endpoint (PUT records.json with upsert: true - the single-record endpoint has no upsert), or add one
(POST record.json); with `each`, up to 100 records in one bulk call; guest spaces; API tokens comma-joined
(at most 9) and optional Basic auth."""

import base64
import json
from typing import Any

from martech_bridge.adapters.targets.base import (
    SecretResolver,
    TargetRequest,
    TargetResponse,
    generic_outcome,
    require_https,
)
from martech_bridge.errors import ConfigurationError, InvalidRequest
from martech_bridge.logic.delivery import Outcome
from martech_bridge.models.routes import Deliverable, KintoneTarget, search

MAX_BULK_RECORDS = 100  # records per add/update call (WIRE-FORMATS 5.4)


def record_fields(route: Deliverable, payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat mapped values shaped the way kintone wants them: {"code": {"value": ...}}. A value the payload
    does not have (and that has no default) is left out, so kintone keeps what the field holds."""
    out = {}
    for code, spec in route.mapping.record.items():
        value = spec.evaluate(payload)
        if value is not None:
            out[code] = {"value": value if isinstance(value, (str, list, dict)) else _scalar(value)}
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class KintoneTargetAdapter:
    def build(
        self, route: Deliverable, payload: dict[str, Any], secrets: SecretResolver, *, local_mode: bool
    ) -> TargetRequest:
        target = route.target
        assert isinstance(target, KintoneTarget)
        require_https(target.base_url, local_mode)
        tokens = secrets(target.api_tokens)
        if not tokens:
            raise ConfigurationError("The kintone target has no API token configured")
        if len(tokens) > 9:
            raise ConfigurationError("kintone accepts at most 9 API tokens in one request")
        headers = {"X-Cybozu-API-Token": ",".join(tokens), "Content-Type": "application/json"}
        secret_headers = {"X-Cybozu-API-Token"}
        if target.basic_auth:
            (credentials,) = secrets([target.basic_auth])[:1] or ("",)
            if ":" not in credentials:
                raise ConfigurationError("kintone basic_auth must be 'user:password'")
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
            secret_headers.add("Authorization")

        prefix = f"/k/guest/{target.guest_space}/v1" if target.guest_space else "/k/v1"
        if route.mapping.each is not None:
            method, resource, rows = self._bulk(route, payload)
            return TargetRequest(
                method=method,
                url=f"{target.base_url}{prefix}/{resource}",
                headers=headers,
                body=json.dumps(rows, ensure_ascii=False).encode("utf-8"),
                timeout=target.timeout_seconds,
                idempotent=target.operation != "add",
                secret_headers=frozenset(secret_headers),
            )
        record = record_fields(route, payload)
        body: dict[str, Any] = {"app": target.app}
        locator = self._locator(route, payload)
        if target.operation == "add":
            method, resource = "POST", "record.json"
            body["record"] = record
        elif target.operation == "update":
            method, resource = "PUT", "record.json"
            body.update(locator)
            body["record"] = record
            if route.mapping.revision is not None:
                revision = route.mapping.revision.evaluate(payload)
                if revision is not None:
                    body["revision"] = revision
        else:
            method, resource = "PUT", "records.json"
            body.update({"upsert": True, "records": [{**locator, "record": record}]})
        return TargetRequest(
            method=method,
            url=f"{target.base_url}{prefix}/{resource}",
            headers=headers,
            body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            timeout=target.timeout_seconds,
            idempotent=target.operation != "add",
            secret_headers=frozenset(secret_headers),
        )

    def _bulk(self, route: Deliverable, payload: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """One record per element of `mapping.each`, in one bulk call: kintone's records.json takes at most
        100 records and applies all of them or none (WIRE-FORMATS 5.2, 5.4)."""
        target = route.target
        assert isinstance(target, KintoneTarget) and route.mapping.each is not None
        items = search(route.mapping.each, payload)
        if not isinstance(items, list) or not items:
            raise InvalidRequest(
                f"No records to write (mapping each: {route.mapping.each})", code="missing_field", field="each"
            )
        if len(items) > MAX_BULK_RECORDS:
            raise InvalidRequest(
                f"kintone takes at most {MAX_BULK_RECORDS} records in one call; got {len(items)}", field="each"
            )
        rows = []
        for item in items:
            merged = {**payload, **item} if isinstance(item, dict) else payload
            record = record_fields(route, merged)
            rows.append(record if target.operation == "add" else {**self._locator(route, merged), "record": record})
        body: dict[str, Any] = {"app": target.app, "records": rows}
        if target.operation == "add":
            return "POST", "records.json", body
        if target.operation == "upsert":
            body["upsert"] = True
        return "PUT", "records.json", body

    @staticmethod
    def _locator(route: Deliverable, payload: dict[str, Any]) -> dict[str, Any]:
        mapping = route.mapping
        if mapping.id is not None:
            record_id = mapping.id.evaluate(payload)
            if record_id in (None, ""):
                raise InvalidRequest(
                    f"No record id in the payload (mapping id: {mapping.id.path})",
                    code="missing_field",
                    field=mapping.id.path,
                )
            return {"id": record_id}
        if mapping.update_key is not None:
            value = mapping.update_key.value.evaluate(payload)
            if value in (None, ""):
                path = mapping.update_key.value.path
                raise InvalidRequest(
                    f"No value for update key {mapping.update_key.field} (mapping: {path})",
                    code="missing_field",
                    field=path,
                )
            return {"updateKey": {"field": mapping.update_key.field, "value": value}}
        return {}

    def interpret(self, route: Deliverable, response: TargetResponse) -> Outcome:
        data = response.json()
        data = data if isinstance(data, dict) else {}
        result: dict[str, Any] = {"target_status": response.status}
        if "revision" in data:
            result["revision"] = data["revision"]
        if "id" in data and 200 <= response.status < 300:
            result["record_id"] = data["id"]
        records = data.get("records")
        if isinstance(records, list) and records and isinstance(records[0], dict):
            result.update(
                {
                    "record_id": records[0].get("id"),
                    "revision": records[0].get("revision"),
                    "operation": records[0].get("operation"),
                }
            )
        message = data.get("message") if isinstance(data.get("message"), str) else None
        if message is None and not 200 <= response.status < 300:
            message = response.body[:200].decode("utf-8", "replace") or None
        return generic_outcome(
            response,
            code=data.get("code") if isinstance(data.get("code"), str) else None,
            message=message,
            errors=data.get("errors"),
            result=result,
        )
