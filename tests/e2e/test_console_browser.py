"""The operator console in a real browser: Debian's headless Chromium, driven by Playwright, against the local
stack over HTTP. Screenshots of each page go to tests/output/console/ for review."""

import base64
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from devkit.signing import sendgrid_headers
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[1] / "output" / "console"
# Flags for a quiet, offline, reproducible run (no sandbox: CI runs as root in a container).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SEEDED_DAY = "2026-10-05"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no Chromium installed: `apt-get install -y chromium fonts-noto-cjk` runs the console test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency (make venv)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="console-profile-") as profile, sync_api.sync_playwright() as p:
        # A fresh profile each run; Playwright's own browser downloads are never used.
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, headless=True, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(90_000)  # filtered listings read many items on moto, slower under a parallel run
        yield context
        context.close()


def api_calls(page: Any, stack: RunningStack) -> list[tuple[str, int, bool]]:
    """Every response the page gets from the API (URL, status, whether it sent a key), as it happens."""
    seen: list[tuple[str, int, bool]] = []
    page.on(
        "response",
        lambda r: (
            seen.append((r.url, r.status, "x-api-key" in r.request.headers))
            if r.url.startswith(stack.api) and not r.url.endswith("/console")
            else None
        ),
    )
    return seen


def test_without_a_key_the_page_is_only_the_prompt_and_every_call_is_401(browser: Any, stack: RunningStack) -> None:
    page = browser.new_page()
    calls = api_calls(page, stack)
    page.goto(f"{stack.api}/console")
    page.wait_for_selector("#api-key")
    assert page.is_visible("#key-prompt") and not page.is_visible("#app") and not page.is_visible("#tabs")
    assert calls == []  # nothing asked of the API before a key is given
    assert page.get_by_role("textbox", name="API key").is_visible()  # labelled, and focused for typing at once
    assert page.evaluate("document.activeElement.id") == "api-key"
    page.screenshot(path=str(SHOTS / "0-key-prompt.png"))
    page.fill("#api-key", "not-a-key")
    page.press("#api-key", "Enter")
    page.wait_for_selector("#key-status:has-text('refused')")
    assert calls and all(status == 401 for _, status, _ in calls), calls
    assert page.is_visible("#key-prompt") and not page.is_visible("#app")
    assert page.evaluate("sessionStorage.length") == 0  # a refused key is not kept
    assert all("not-a-key" not in url for url, _, _ in calls)  # and never travels in a URL
    # the same calls with no key at all: 401 too
    for url, _, _ in calls:
        assert requests.get(url, timeout=20).status_code == 401
    page.close()


def seed(stack: RunningStack) -> dict[str, str]:
    """A failed delivery (a non-idempotent add whose answer never came), a sent message with its events,
    a suppressed address with a Japanese reason, and a day of SendGrid events."""
    assert stack.sandbox is not None
    key = {"X-Api-Key": stack.api_key}
    requests.post(f"{stack.sandbox}/_sandbox/kintone/faults", json={"drop": True, "apply": False}, timeout=10)
    craft = json.loads(
        Path(__file__).resolve().parents[2].joinpath("events/relay-karte-craft-no-content-type.json").read_text()
    )
    body = json.loads(base64.b64decode(craft["body"]))
    body["user_id"] = f"user_{uuid.uuid4().hex[:8]}"
    answer = requests.post(
        f"{stack.api}/relay/karte-cart-abandon",
        data=json.dumps(body).encode(),
        headers={"X-Webhook-Token": "local-craft-token"},
        timeout=20,
    ).json()
    delivery_id = answer.get("delivery_id") or answer["error"]["delivery_id"]
    deadline = time.monotonic() + 45  # a loaded machine: the worker and the sandbox callbacks run late
    while time.monotonic() < deadline:
        state = requests.get(f"{stack.api}/deliveries/{delivery_id}", headers=key, timeout=20).json()
        if state["status"] == "failed":
            break
        time.sleep(0.2)
    assert state["status"] == "failed", state

    sent = requests.post(
        f"{stack.api}/mail/send",
        json={
            "provider": "sendgrid",
            "to": [{"email": f"hanako-{uuid.uuid4().hex[:6]}@example.com"}],
            "subject": "秋のご案内",
            "text": "本文",
        },
        headers=key,
        timeout=20,
    ).json()

    suppressed = f"jiro-{uuid.uuid4().hex[:6]}@example.com"
    requests.put(
        f"{stack.api}/subscriptions?email={suppressed}",
        json={"subscribed": False, "suppression": "unsubscribe", "reason": "配信停止のリンクから"},
        headers=key,
        timeout=20,
    ).raise_for_status()

    midnight = int(datetime.fromisoformat(SEEDED_DAY).replace(tzinfo=UTC).timestamp())
    day: list[dict[str, Any]] = []
    for n in range(12):
        tag = uuid.uuid4().hex[:8]
        rcpt = f"reader{n}-{tag}@example.com"
        day.append({"email": rcpt, "event": "processed", "timestamp": midnight + 600 + n, "sg_event_id": f"p-{tag}"})
        day.append({"email": rcpt, "event": "delivered", "timestamp": midnight + 700 + n, "sg_event_id": f"d-{tag}"})
        if n % 2 == 0:
            day.append({"email": rcpt, "event": "open", "timestamp": midnight + 900 + n, "sg_event_id": f"o-{tag}"})
        if n % 4 == 0:
            day.append(
                {
                    "email": rcpt,
                    "event": "click",
                    "timestamp": midnight + 950 + n,
                    "sg_event_id": f"c-{tag}",
                    "url": "https://shop.example/",
                }
            )
    raw = (json.dumps(day) + "\r\n").encode()
    posted = requests.post(
        f"{stack.api}/events/sendgrid",
        data=raw,
        headers={**sendgrid_headers(raw), "Content-Type": "application/json"},
        timeout=20,
    )
    assert posted.status_code == 200, posted.text
    return {"delivery_id": delivery_id, "dispatch_id": sent["dispatch_id"], "suppressed": suppressed}


def test_an_operator_fixes_a_delivery_reads_a_timeline_resubscribes_and_sees_the_chart(
    browser: Any, stack: RunningStack
) -> None:
    if stack.sandbox is None:
        pytest.skip("needs the local stack's sandbox")
    seeded = seed(stack)
    page = browser.new_page()
    calls = api_calls(page, stack)
    page.goto(f"{stack.api}/console")
    page.fill("#api-key", stack.api_key)
    page.click("text=Open console")
    # Keyboard: the tabs follow the arrow keys, as WAI-ARIA's tabs pattern has them.
    page.focus("#tab-deliveries")
    page.keyboard.press("ArrowRight")
    assert page.is_visible("#view-messages") and page.evaluate("document.activeElement.id") == "tab-messages"
    page.keyboard.press("ArrowLeft")
    assert page.is_visible("#view-deliveries") and not page.is_visible("#view-messages")

    # Deliveries: find the failed one, see its attempt and the target's silence, retry it, see it delivered.
    page.select_option("#d-status", "outcome_unknown")
    page.fill("#d-route", "karte-cart-abandon")
    page.click("#deliveries-form button[type=submit]")
    row = page.locator(f'tr[data-id="{seeded["delivery_id"]}"]')
    row.wait_for()
    assert row.get_attribute("data-status") == "outcome_unknown" and "⚠" in row.inner_text()
    row.locator("text=Attempts").click()
    page.wait_for_selector("#d-detail:has-text('may have reached the target')")
    assert "no answer" in page.inner_text("#d-detail")
    page.screenshot(path=str(SHOTS / "1-deliveries-failed.png"), full_page=True)
    row.locator("text=Retry").click()
    page.wait_for_selector(f"#d-progress:has-text('{seeded['delivery_id']} is delivered')", timeout=60_000)
    assert page.locator(f'tr[data-id="{seeded["delivery_id"]}"]').get_attribute("data-status") == "delivered"
    page.screenshot(path=str(SHOTS / "2-deliveries-retried.png"), full_page=True)

    # A filtered set redriven with progress: two deliveries kintone rejected (no such record).
    rejected = []
    for _ in range(2):
        answer = requests.post(
            f"{stack.api}/relay/marketo-email-opened",
            json={"email": f"nobody-{uuid.uuid4().hex[:6]}@example.com"},
            headers={"X-Webhook-Token": "local-marketo-token"},
            timeout=20,
        )
        assert answer.status_code == 502, answer.text
        rejected.append(answer.json()["error"]["delivery_id"])
    page.fill("#d-route", "marketo-email-opened")
    page.select_option("#d-status", "rejected")
    page.click("#deliveries-form button[type=submit]")
    page.locator(f'tr[data-id="{rejected[1]}"]').wait_for()
    page.click("#d-redrive")
    page.click("#confirm-yes")
    page.wait_for_selector("#d-progress:has-text('Redrive finished: 2 queued again')", timeout=180_000)
    assert page.locator("#d-progress progress").get_attribute("value") == "2"
    for delivery_id in rejected:
        replayed = requests.get(
            f"{stack.api}/deliveries/{delivery_id}", headers={"X-Api-Key": stack.api_key}, timeout=20
        )
        assert replayed.json()["replays"] == 1

    # Messages: the sent message's recipient and its status timeline (the sandbox posts its events back).
    page.click("#tab-messages")
    page.fill("#m-value", seeded["dispatch_id"])
    deadline = time.monotonic() + 45  # a loaded machine: the worker and the sandbox callbacks run late
    while True:
        page.click("#messages-form button[type=submit]")
        page.wait_for_selector("#m-result .panel")
        if page.locator("#m-result ol.timeline li").count() >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    text = page.inner_text("#m-result")
    assert "秋のご案内" in text and "matched no message" not in text
    life = page.locator("#m-result ol.timeline li").all_inner_texts()
    assert [line for line in life if "queued" in line] and [line for line in life if "delivered" in line]
    assert next(i for i, t in enumerate(life) if "queued" in t) < next(
        i for i, t in enumerate(life) if "delivered" in t
    )
    page.screenshot(path=str(SHOTS / "3-message-timeline.png"), full_page=True)

    # Subscriptions: why it is suppressed, then an explicit re-subscribe behind a confirmation.
    page.click("#tab-subscriptions")
    page.fill("#s-email", seeded["suppressed"])
    page.press("#s-email", "Enter")
    page.wait_for_selector("#s-resubscribe")
    assert "配信停止のリンクから" in page.inner_text("#s-result") and page.inner_text("#s-state") == "suppressed"
    page.click("#s-resubscribe")
    assert page.is_visible("#confirm")
    page.screenshot(path=str(SHOTS / "4-resubscribe-confirm.png"))
    page.fill("#confirm-reason", "本人から再開の依頼")
    page.click("#confirm-yes")
    page.wait_for_selector("#s-state:has-text('subscribed')")
    state = requests.get(
        f"{stack.api}/subscriptions",
        params={"email": seeded["suppressed"]},
        headers={"X-Api-Key": stack.api_key},
        timeout=20,
    ).json()
    assert state["subscribed"] is True
    # the operator's reason is kept (the ESPs' suppression releases may be recorded beside it)
    assert any("本人から再開の依頼" in (h.get("reason") or "") for h in state["history"]), state["history"]
    page.screenshot(path=str(SHOTS / "5-resubscribed.png"), full_page=True)

    # Stats: the seeded day's chart is drawn with bars.
    page.click("#tab-stats")
    page.wait_for_selector("#st-svg")  # the last 7 days, drawn on opening the tab
    page.fill("#st-from", SEEDED_DAY)
    page.fill("#st-to", SEEDED_DAY)
    deadline = time.monotonic() + 45  # a loaded machine: the worker and the sandbox callbacks run late
    while True:  # the worker applies the seeded post asynchronously
        page.click("#stats-form button[type=submit]")
        page.wait_for_selector(f"#st-svg[aria-label*='{SEEDED_DAY} to {SEEDED_DAY}']")
        if page.locator("#st-svg rect[data-series=delivered]").count() or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert page.locator("#st-svg rect[data-series=delivered]").count() == 1
    assert page.locator("#st-svg rect[data-series=opened]").count() == 1
    row = page.locator("#st-table tbody tr").first.inner_text()
    assert row.split("\t")[:3] == [SEEDED_DAY, "12", "12"], row  # sent, delivered
    page.screenshot(path=str(SHOTS / "6-stats.png"), full_page=True)

    # Local extras: what the sandboxed kintone received, and its fault switches.
    page.click("#tab-local")
    page.select_option("#l-provider", "kintone")
    page.click("#local-form button[type=submit]")
    page.wait_for_selector("#l-result table")
    assert "connection dropped" in page.inner_text("#l-result") or "drop" in page.inner_text("#l-result")
    page.fill("#l-status", "503")
    page.click("#l-fault")
    page.wait_for_selector("#l-result:has-text('1 fault(s) queued: 503')")
    page.screenshot(path=str(SHOTS / "7-local-sandbox.png"), full_page=True)
    page.click("#l-clear")
    page.wait_for_selector("#l-result:has-text('0 fault(s) queued')")
    assert requests.get(f"{stack.sandbox}/_sandbox/kintone/faults", timeout=10).json() == []

    # Every call the page made carried the key and none was refused.
    assert calls and all(has_key for _, _, has_key in calls)
    assert all(status != 401 for _, status, _ in calls)
    assert all(stack.api_key not in url for url, _, _ in calls)
    page.close()


HOSTILE = '<img src=x onerror="window.__pwned=1">"\'><script>window.__pwned=2</script>'


def test_hostile_text_from_targets_and_callers_is_shown_as_text_never_run(browser: Any, stack: RunningStack) -> None:
    """A target's error message and an operator-entered reason carry markup: the page shows it literally, and
    nothing in it runs (the page builds text nodes; the CSP allows only the page's own hashed script)."""
    if stack.sandbox is None:
        pytest.skip("needs the local stack's sandbox")
    key = {"X-Api-Key": stack.api_key}
    requests.post(
        f"{stack.sandbox}/_sandbox/kintone/faults",
        json={"count": 1, "status": 400, "body": {"code": "GAIA_XX", "id": "1", "message": HOSTILE}},
        timeout=10,
    ).raise_for_status()
    answer = requests.post(
        f"{stack.api}/relay/marketo-email-opened",
        json={"email": f"mal-{uuid.uuid4().hex[:6]}@example.com"},
        headers={"X-Webhook-Token": "local-marketo-token"},
        timeout=20,
    )
    delivery_id = answer.json()["error"]["delivery_id"]
    address = f"mal-{uuid.uuid4().hex[:6]}@example.com"
    requests.put(
        f"{stack.api}/subscriptions?email={address}",
        json={"subscribed": False, "suppression": "unsubscribe", "reason": HOSTILE},
        headers=key,
        timeout=20,
    ).raise_for_status()

    page = browser.new_page()
    page.goto(f"{stack.api}/console")
    page.fill("#api-key", stack.api_key)
    page.click("text=Open console")
    page.fill("#d-route", "marketo-email-opened")
    page.click("#deliveries-form button[type=submit]")
    row = page.locator(f'tr[data-id="{delivery_id}"]')
    row.wait_for()
    row.locator("text=Attempts").click()
    page.wait_for_selector("#d-detail:not([hidden]) table")
    page.click("#tab-subscriptions")
    page.fill("#s-email", address)
    page.press("#s-email", "Enter")
    page.wait_for_selector("#s-resubscribe")

    assert HOSTILE in page.inner_text("#s-result")
    assert HOSTILE in page.inner_text("#d-detail") or HOSTILE in page.inner_text("#d-table")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#app img, #app script").count() == 0


def test_a_redrive_that_the_api_refuses_midway_says_it_stopped(browser: Any, stack: RunningStack) -> None:
    page = browser.new_page()
    page.goto(f"{stack.api}/console")
    page.fill("#api-key", stack.api_key)
    page.click("text=Open console")
    page.wait_for_selector("#d-table tbody tr")
    # The API answers the redrive's listing with a 503 (a throttled table): the operator must be told.
    page.route(
        "**/deliveries?*limit=100*",
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body='{"error": {"code": "dependency_unavailable", "message": "Delivery store unavailable"}}',
        ),
    )
    page.click("#d-redrive")
    page.click("#confirm-yes")
    page.wait_for_selector("#d-progress:has-text('Redrive stopped')", timeout=10_000)
    assert "Delivery store unavailable" in page.inner_text("#d-progress")
    assert page.locator("#d-progress.error").count() == 1
