"""QueryFunction: the operator API - subscriptions, messages and their logs, reports, events, deliveries,
daily stats - and the operator console page that drives it."""

import base64
import binascii
import hashlib
import json
import re
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.adapters.delivery_store import list_time
from martech_bridge.adapters.message_store import MAX_LOG_DAYS, STATUSES_OF_GROUP
from martech_bridge.api import Response, build_resolver, json_response, parse_body, require_api_key
from martech_bridge.console import console_page
from martech_bridge.deliveries import replay_delivery
from martech_bridge.dependencies import delivery_engine, message_store, reply_store, subscription_store
from martech_bridge.errors import InvalidRequest, NotFound
from martech_bridge.logic import stats
from martech_bridge.logic.event_parsing import Unreadable, iso, recipient
from martech_bridge.models.delivery import DELIVERY_ID_PATTERN, DeliveryStatus
from martech_bridge.models.email import InvalidEmail, normalize_email
from martech_bridge.models.mail import DISPATCH_ID_PATTERN
from martech_bridge.models.subscription import SubscriptionUpdate, SubscriptionView
from martech_bridge.observability import logger, mask_email, metrics

app = build_resolver()
AUTH = [require_api_key]
_DISPATCH_ID = re.compile(DISPATCH_ID_PATTERN)
_DELIVERY_ID = re.compile(DELIVERY_ID_PATTERN)
RELEASE_RESERVE_SECONDS = 3.0  # kept back after the releases for writing their outcomes and answering
HISTORY_SHOWN = 51
MAX_IDS = 100  # message ids a look-up takes at once
MAX_IDS_CHARS = 2000  # and their length, so a URL stays far under API Gateway's limits


def _email_from_path(raw: str) -> str:
    # API Gateway hands the path over decoded (%40 is already @): decoding again would change the address.
    try:
        return normalize_email(raw)
    except InvalidEmail as exc:
        raise InvalidRequest(f"email {exc}", code="invalid_email", field="email") from None


def _email_from_query() -> str:
    raw = (app.current_event.query_string_parameters or {}).get("email")
    if not raw:
        raise InvalidRequest("email is required (?email=...)", code="invalid_email", field="email")
    return _email_from_path(raw)


@app.get("/health")
def health() -> Response:
    """No credentials, no secrets, no AWS call: the API and this function answer."""
    from martech_bridge.config import get_settings

    return json_response(200, {"status": "ok", "service": "martech-bridge", "stage": get_settings().stage})


# Every address the bridge accepts is reachable here, including those with `/`, `?` or `#` in their local
# part, which API Gateway's decoded path cannot carry in /subscriptions/{email}.
@app.get("/subscriptions", middlewares=AUTH)
def get_subscription_by_query() -> Response:
    return _get_subscription(_email_from_query())


@app.put("/subscriptions", middlewares=AUTH)
def put_subscription_by_query() -> Response:
    return _put_subscription(_email_from_query())


@app.get("/subscriptions/<email>", middlewares=AUTH)
def get_subscription(email: str) -> Response:
    return _get_subscription(_email_from_path(email))


def _get_subscription(address: str) -> Response:
    logger.append_keys(recipient=mask_email(address))
    state, history = subscription_store().get(address)
    if state is None:
        raise NotFound("No subscription record for this address", code="subscription_not_found")
    return json_response(200, SubscriptionView(subscription=state, history=history).to_json())


@app.put("/subscriptions/<email>", middlewares=AUTH)
def put_subscription(email: str) -> Response:
    return _put_subscription(_email_from_path(email))


def _put_subscription(address: str) -> Response:
    logger.append_keys(recipient=mask_email(address))
    update = parse_body(app, SubscriptionUpdate)
    # Imported here: the providers' modules stay out of the look-ups' cold start.
    from martech_bridge.adapters.send_queue import SendQueue
    from martech_bridge.config import get_settings
    from martech_bridge.releases import resubscribe

    settings = get_settings()
    remaining = app.lambda_context.get_remaining_time_in_millis() / 1000 - RELEASE_RESERVE_SECONDS
    new, history, released = resubscribe(
        address,
        update,
        settings=settings,
        store=subscription_store(),
        queue=SendQueue(settings.send_queue_url) if settings.send_queue_url else None,
        deadline=time.monotonic() + max(0.0, min(settings.send_deadline_seconds, remaining)),
    )
    metrics.add_metric(name="SubscriptionChanges", unit=MetricUnit.Count, value=1)
    logger.info("Subscription changed", extra={"subscribed": new.subscribed, "suppression": new.suppression})
    body = SubscriptionView(subscription=new, history=history[:HISTORY_SHOWN]).to_json()
    if released is not None:
        body["released"] = released
    return json_response(200, body)


@app.get("/quota", middlewares=AUTH)
def get_quota() -> Response:
    """Each provider's send quota: per period, the recipients counted and the limit (config `sending`)."""
    from martech_bridge import quotas
    from martech_bridge.config import load_bridge_config
    from martech_bridge.dependencies import quota_store

    now = datetime.now(UTC)
    out: dict[str, Any] = {}
    for name, spec in load_bridge_config().sending.providers.items():
        if not quotas.limited(spec):
            continue
        entry: dict[str, Any] = {"on_limit": spec.on_limit, "warn_at": spec.warn_at}
        for kind, period in quotas.periods(now).items():
            limit = getattr(spec, f"{kind}_limit")
            if limit is not None:
                used = quota_store().used(name, period)
                entry[kind] = {"period": period.partition("#")[2], "used": used, "limit": limit}
        out[name] = entry
    return json_response(200, {"providers": out})


@app.get("/messages/<dispatch_id>", middlewares=AUTH)
def get_message(dispatch_id: str) -> Response:
    # An id this API cannot have issued is not looked up (a key past DynamoDB's size limit would be a 503).
    message = message_store().get(unquote(dispatch_id)) if _DISPATCH_ID.match(unquote(dispatch_id)) else None
    if message is None:
        raise NotFound("No message with this dispatch id", code="message_not_found")
    return json_response(200, message)


@app.get("/messages", middlewares=AUTH)
def list_messages() -> Response:
    """Logs, filtered as Infobip's are: messageId (several, repeated or comma-separated), bulkId, to, from,
    campaignReferenceId, sentSince, sentUntil, generalStatus, limit (lines), cursor."""
    params = app.current_event.query_string_parameters or {}
    since, until, explicit = _window(params)
    status = params.get("generalStatus")
    if status is not None and status.upper() not in STATUSES_OF_GROUP:
        raise InvalidRequest(f"generalStatus must be one of {', '.join(STATUSES_OF_GROUP)}", field="generalStatus")
    to = _email_from_path(params["to"]) if params.get("to") else None
    sender = _email_from_path(params["from"]) if params.get("from") else None
    ids = _many(params, "messageId")
    bulk_id = _bounded(params, "bulkId", 200)
    campaign = _bounded(params, "campaignReferenceId", 255)
    group = status.upper() if status else None
    filters: dict[str, Any] = {
        "messageId": ids,
        "bulkId": bulk_id,
        "to": to,
        "from": sender,
        "campaignReferenceId": campaign,
        "generalStatus": status.upper() if status else None,
        "sentSince": params.get("sentSince"),  # as given: a default window moves with the clock
        "sentUntil": params.get("sentUntil"),
    }
    windowed = explicit or not (ids or bulk_id)
    cursor = _cursor(params, filters)
    if cursor is not None:
        _check_log_cursor(cursor, to=to, bulk_id=bulk_id, ids=ids)
    results, after = message_store().logs(
        message_id=ids,
        to=to,
        since=since if windowed else None,
        until=until if windowed else None,
        general_status=group,
        limit=_limit(params, 50),
        cursor=cursor,
        bulk_id=bulk_id,
        sender=sender,
        campaign=campaign,
    )
    return json_response(200, {"results": results, "cursor": _encode_cursor(after, filters)})


@app.get("/reports", middlewares=AUTH)
def get_reports() -> Response:
    """Final delivery reports, each returned once (Infobip semantics): a report read is a report gone.
    Filtered by messageId (several) and bulkId, as Infobip's reports API is."""
    params = app.current_event.query_string_parameters or {}
    ids = _many(params, "messageId")
    bulk_id = _bounded(params, "bulkId", 200)
    reports = message_store().take_reports(_limit(params, 100), message_ids=ids, bulk_id=bulk_id)
    return json_response(200, {"results": reports})


@app.get("/events", middlewares=AUTH)
def list_events() -> Response:
    """Every normalised event recorded for an address (`to`) or a provider's message id
    (`provider_message_id`), newest first, including events of mail not sent through the bridge."""
    params = app.current_event.query_string_parameters or {}
    if len(params.get("to") or "") > 320:
        raise InvalidRequest("to is longer than 320 characters", field="to")
    to = recipient(params["to"]) if params.get("to") else None
    pmid = params.get("provider_message_id") or None
    if bool(to) == bool(pmid):
        raise InvalidRequest("give either to or provider_message_id", field="to")
    if pmid is not None and len(pmid) > 512:
        raise InvalidRequest("provider_message_id is longer than 512 characters", field="provider_message_id")
    filters = {"to": to, "provider_message_id": pmid}
    cursor = _cursor(params, filters)
    if cursor is not None:
        hash_key, sort_key, partition = ("gsi2pk", "gsi2sk", f"EVT#{to}") if to else ("gsi1pk", "gsi1sk", f"PEV#{pmid}")
        _check_key_cursor(cursor, {"pk", "sk", hash_key, sort_key}, {hash_key: partition})
    events, after = message_store().events_for(to=to, provider_message_id=pmid, limit=_limit(params, 50), cursor=cursor)
    return json_response(200, {"results": events, "cursor": _encode_cursor(after, filters)})


@app.get("/replies", middlewares=AUTH)
def list_replies() -> Response:
    """Replies received by the inbound mail path: those tied to one message (`dispatch_id`), or those tied to
    none (`unmatched=true`), newest first."""
    params = app.current_event.query_string_parameters or {}
    dispatch_id = params.get("dispatch_id") or None
    unmatched = params.get("unmatched")
    if unmatched not in (None, "true"):
        raise InvalidRequest("unmatched takes only the value true", field="unmatched")
    if bool(dispatch_id) == bool(unmatched):
        raise InvalidRequest("give either dispatch_id or unmatched=true", field="dispatch_id")
    if dispatch_id is not None and not re.fullmatch(r"d_[0-9a-f]{12,32}", dispatch_id):
        raise InvalidRequest("dispatch_id is not an id this bridge issues", field="dispatch_id")
    from martech_bridge.adapters.reply_store import partition

    filters = {"replies": partition(dispatch_id)}
    cursor = _cursor(params, filters)
    if cursor is not None:
        _check_key_cursor(cursor, {"pk", "sk", "gsi2pk", "gsi2sk"}, {"gsi2pk": partition(dispatch_id)})
    replies, after = reply_store().list(dispatch_id=dispatch_id, limit=_limit(params, 50), cursor=cursor)
    return json_response(200, {"results": replies, "cursor": _encode_cursor(after, filters)})


def _many(params: dict[str, str], name: str) -> list[str]:
    """A parameter given several times (API Gateway joins repeats with commas) or comma-separated."""
    raw = params.get(name) or ""
    if len(raw) > MAX_IDS_CHARS:
        raise InvalidRequest(f"{name} is longer than {MAX_IDS_CHARS} characters", field=name)
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if len(values) > MAX_IDS:
        raise InvalidRequest(f"at most {MAX_IDS} values of {name} at once", field=name)
    if any(len(v) > 200 for v in values):
        raise InvalidRequest(f"{name} is longer than 200 characters", field=name)
    return values


def _bounded(params: dict[str, str], name: str, limit: int) -> str | None:
    """An optional filter value no longer than `limit` characters (as openapi.json states)."""
    value = params.get(name) or None
    if value is not None and len(value) > limit:
        raise InvalidRequest(f"{name} is longer than {limit} characters", field=name)
    return value


def _limit(params: dict[str, str], default: int) -> int:
    raw = params.get("limit", str(default))
    # ASCII digits only: "²".isdigit() is true and int("²") raises.
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= 1000:
        raise InvalidRequest("limit must be a whole number from 1 to 1000", field="limit")
    return int(raw)


def _window(params: dict[str, str]) -> tuple[datetime, datetime, bool]:
    """sentSince / sentUntil, validated: real times (2000-2100), in order, at most MAX_LOG_DAYS apart, so a
    look-up never walks an unbounded range of days. Default: the 48 hours Infobip keeps logs."""
    now = datetime.now(UTC)
    given_until, given_since = _when(params, "sentUntil"), _when(params, "sentSince")
    until = given_until or now
    since = given_since or until - timedelta(days=2)
    if since > until:
        raise InvalidRequest("sentSince is after sentUntil", field="sentSince")
    if until - since > timedelta(days=MAX_LOG_DAYS):
        raise InvalidRequest(f"sentSince and sentUntil may be at most {MAX_LOG_DAYS} days apart", field="sentSince")
    return since, until, bool(given_since or given_until)


def _when(params: dict[str, str], name: str) -> datetime | None:
    if not params.get(name):
        return None
    try:
        # An unencoded "+0000" arrives as " 0000" (a plus is a space in a query string).
        return iso(params[name].replace(" ", "+"))
    except Unreadable:
        raise InvalidRequest(
            f"{name} must be an ISO 8601 time between 2000 and 2100, e.g. 2026-11-22T05:00:00.000+0000", field=name
        ) from None


def _filter_hash(filters: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cursor(params: dict[str, str], filters: dict[str, Any]) -> dict[str, Any] | None:
    """The page position a cursor holds, if it is one this API returned for these same filters."""
    if not params.get("cursor"):
        return None
    bad = InvalidRequest("cursor is not one this API returned for these filters", field="cursor")
    raw = params["cursor"]
    if len(raw) > 4000:
        raise bad
    try:
        value = json.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise bad from None
    if not isinstance(value, dict) or set(value) != {"f", "k"} or value["f"] != _filter_hash(filters):
        raise bad
    position = value["k"]
    if (
        not isinstance(position, dict)
        or not position
        or not all(isinstance(k, str) and isinstance(v, str) and 0 < len(v) <= 1200 for k, v in position.items())
    ):
        raise bad
    return position


def _check_key_cursor(cursor: dict[str, Any], keys: set[str], fixed: dict[str, str]) -> None:
    """A DynamoDB start key must have exactly the index's key attributes, with this query's partition."""
    if set(cursor) != keys or any(cursor.get(k) != v for k, v in fixed.items()):
        raise InvalidRequest("cursor is not one this API returned for these filters", field="cursor")


def _check_log_cursor(cursor: dict[str, Any], *, to: str | None, bulk_id: str | None, ids: list[str]) -> None:
    bad = InvalidRequest("cursor is not one this API returned for these filters", field="cursor")
    if ids:
        raise bad  # a look-up by message ids is one page
    if bulk_id:
        _check_key_cursor(cursor, {"pk", "sk"}, {"pk": f"MSG#{bulk_id}"})
    elif to:
        _check_key_cursor(cursor, {"pk", "sk", "gsi2pk", "gsi2sk"}, {"gsi2pk": f"TO#{to}"})
        if not cursor["pk"].startswith("MSG#") or not cursor["sk"].startswith("R#"):
            raise bad
    else:
        if set(cursor) != {"b", "m"} or not cursor["m"].startswith("R#"):
            raise bad
        try:
            datetime.strptime(cursor["b"][:10], "%Y-%m-%d")
        except ValueError:
            raise bad from None
    if "sk" in cursor and not cursor["sk"].startswith("R#"):
        raise bad


def _encode_cursor(cursor: Any, filters: dict[str, Any]) -> str | None:
    if not cursor:
        return None
    body = {"f": _filter_hash(filters), "k": {k: str(v) for k, v in cursor.items()}}
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


_LIST_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
MAX_LIST_DAYS = 92  # a listing or stats window: at most a quarter


@app.get("/deliveries", middlewares=AUTH)
def list_deliveries() -> Response:
    """Relay and sink deliveries, newest first: by route (a sink's as `sink:<name>`; default all), state
    (several, comma-separated; `outcome_unknown` names failed ones whose call may have reached the target),
    creation time (since/until, default the last 7 days), limit and cursor."""
    params = app.current_event.query_string_parameters or {}
    route = _bounded(params, "route", 200)
    states = _many(params, "status")
    allowed = [s.value for s in DeliveryStatus] + ["outcome_unknown"]
    if any(s not in allowed for s in states):
        raise InvalidRequest(f"status must be among {', '.join(allowed)}", field="status")
    now = datetime.now(UTC)
    until = _when(params, "until") or now
    since = _when(params, "since") or until - timedelta(days=7)
    if since > until or until - since > timedelta(days=MAX_LIST_DAYS):
        raise InvalidRequest(f"since must come before until, at most {MAX_LIST_DAYS} days apart", field="since")
    filters = {"route": route, "status": states, "since": params.get("since"), "until": params.get("until")}
    before, start = list_time(until), list_time(since)
    cursor = _cursor(params, filters)
    if cursor is not None:
        # The cursor keeps the first page's window start: a default window ("the last 7 days") would
        # otherwise slide on between pages and drop, then refuse, its oldest deliveries.
        start = cursor.get("s", "")
        if (
            set(cursor) != {"p", "s"}
            or not _LIST_TIME.fullmatch(start)
            or not start < cursor["p"]
            or (params.get("since") and start != list_time(since))
            or start < list_time(until - timedelta(days=MAX_LIST_DAYS))
        ):
            raise InvalidRequest("cursor is not one this API returned for these filters", field="cursor")
        before = min(before, cursor["p"])
    stored = sorted({s if s != "outcome_unknown" else "failed" for s in states})
    items, after = delivery_engine().store.listing(
        route=route,
        statuses=stored or None,
        since=start,
        before=before,
        limit=_limit(params, 50),
    )
    if "outcome_unknown" in states and "failed" not in states:
        items = [i for i in items if i.get("status") != "failed" or i.get("failure") == "outcome_unknown"]
    return json_response(
        200, {"results": items, "cursor": _encode_cursor({"p": after, "s": start} if after else None, filters)}
    )


@app.get("/stats", middlewares=AUTH)
def get_stats() -> Response:
    """Effect measurement per UTC day from `from` to `to` (YYYY-MM-DD, default the last 7 days): sent,
    delivered, bounced hard and soft, opened, clicked, complained, unsubscribed, their rates, optionally of
    one provider; and the relay's deliveries per route and day, by state."""
    from martech_bridge.adapters.providers import PROVIDERS

    params = app.current_event.query_string_parameters or {}
    provider = params.get("provider") or None
    if provider is not None and provider not in PROVIDERS:
        raise InvalidRequest(f"provider must be one of {', '.join(sorted(PROVIDERS))}", field="provider")
    last = _day(params, "to") or datetime.now(UTC).date()
    first = _day(params, "from") or last - timedelta(days=6)
    if first > last or (last - first).days >= MAX_LIST_DAYS:
        raise InvalidRequest(f"from must not come after to, at most {MAX_LIST_DAYS} days", field="from")
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    providers = [provider] if provider else sorted(PROVIDERS)
    body: dict[str, Any] = {"from": days[0], "to": days[-1], "provider": provider}
    body.update(stats.daily(days, providers, message_store().stats(providers, days)))
    counted = delivery_engine().store.daily_counts(f"{days[0]}T", f"{(last + timedelta(days=1)).isoformat()}T")
    body["relay"] = [
        {"day": day, "route": route, "total": sum(counts.values()), **counts}
        for (route, day), counts in sorted(counted.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]
    return json_response(200, body)


def _day(params: dict[str, str], name: str) -> date | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
            raise ValueError
        value = date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a day, YYYY-MM-DD", field=name) from None
    if not 2000 <= value.year < 2100:
        raise InvalidRequest(f"{name} must be a day between 2000 and 2100", field=name)
    return value


@app.get("/console")
def console() -> Response:
    """The operator console: a self-contained page (no credentials in it, no network but this API)."""
    page = console_page()
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=page.html, headers=page.headers)


@app.get("/deliveries/<delivery_id>", middlewares=AUTH)
def get_delivery(delivery_id: str) -> Response:
    delivery = delivery_engine().store.get(unquote(delivery_id)) if _DELIVERY_ID.match(unquote(delivery_id)) else None
    if delivery is None:
        raise NotFound("No delivery with this id", code="delivery_not_found")
    return json_response(200, delivery.public())


@app.post("/deliveries/<delivery_id>/retry", middlewares=AUTH)
def retry_delivery(delivery_id: str) -> Response:
    """Replay one failed (or rejected) delivery with a fresh allowance of attempts."""
    engine = delivery_engine()
    delivery_id = unquote(delivery_id)
    if not _DELIVERY_ID.match(delivery_id):
        raise NotFound("No delivery with this id", code="delivery_not_found")
    logger.append_keys(delivery_id=delivery_id)
    reopened = replay_delivery(engine, delivery_id)
    return json_response(202, {"status": "queued", "delivery_id": delivery_id, "replays": reopened.replays})


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
