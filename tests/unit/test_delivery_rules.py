"""Which target answers are retried, how long to wait, and when to stop."""

import random

import pytest
from martech_bridge.logic.delivery import backoff_seconds, classify_status, parse_retry_after, should_give_up


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (400, "rejected"),
        (401, "rejected"),
        (404, "rejected"),
        (409, "rejected"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (520, "retry"),
    ],
)
def test_classify(status: int, verdict: str) -> None:
    assert classify_status(status) == verdict


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_is_exponential_jittered_and_capped() -> None:
    rng = random.Random(7)
    waits = [backoff_seconds(n, base=2, cap=60, rng=rng) for n in range(1, 10)]
    assert all(2 ** (n - 1) <= w <= 2**n for n, w in enumerate(waits[:5], start=1))
    assert max(waits) <= 60 and waits[-1] >= 30


def test_retry_after_is_honoured_even_above_the_cap() -> None:
    assert backoff_seconds(1, base=2, cap=10, retry_after=30, rng=random.Random(1)) == 30


def test_give_up_on_attempts_or_age() -> None:
    assert should_give_up(8, 8, 0, 3600, 10, 1) is not None
    assert should_give_up(2, 8, 0, 3600, 3590, 20) is not None
    assert should_give_up(2, 8, 0, 3600, 100, 20) is None


def test_the_design_notes_draw_the_delivery_state_machine_the_code_has() -> None:
    from martech_bridge.logic.delivery_states import EDGES

    from devkit.template import REPO_ROOT

    readme = (REPO_ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    rows = {line for line in readme.splitlines() if line.startswith("| ") and line.count("|") == 5}
    for edge in EDGES:
        assert f"| {edge.source} | {edge.target} | {edge.who} | {edge.write} |" in rows, edge
