"""The kintone daily budget is counted in batches and warned about when the count crosses the threshold."""

import pytest
from martech_bridge import deliveries
from martech_bridge.config import Settings, parse_bridge_config
from martech_bridge.deliveries import Engine


class CountingStore:
    def __init__(self) -> None:
        self.total = 0
        self.writes = 0

    def count_request(self, counter: str, day: str, requests: int = 1) -> int:
        self.writes += 1
        self.total += requests
        return self.total


ROUTE = parse_bridge_config(
    {
        "version": 1,
        "routes": {
            "r": {
                "auth": {"type": "none"},
                "target": {
                    "type": "kintone",
                    "base_url": "https://x.cybozu.com",
                    "app": 1,
                    "api_tokens": ["t"],
                    "daily_request_budget": 100,
                    "budget_warn_ratio": 0.5,
                },
                "mapping": {"id": "id"},
            }
        },
    }
).routes["r"]


def test_counts_are_written_in_batches_and_warned_once_when_crossing(monkeypatch: pytest.MonkeyPatch) -> None:
    store = CountingStore()
    engine = Engine(store, None, Settings())  # type: ignore[arg-type]
    warnings: list[int] = []
    monkeypatch.setattr(
        deliveries.logger,
        "warning",
        lambda msg, extra=None: warnings.append(extra["requests_today"]) if extra else None,
    )
    for _ in range(3 * deliveries.BUDGET_FLUSH_REQUESTS):
        engine._count_budget(ROUTE)
    batch = deliveries.BUDGET_FLUSH_REQUESTS
    assert (store.total, store.writes) == (3 * batch, 3)  # three batches, not one write per request
    # The batch that crossed 50 of 100 warned; later batches warn once per hundred more.
    assert warnings == [batch, 2 * batch, 3 * batch]


def test_a_quiet_instance_still_writes_after_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    store = CountingStore()
    engine = Engine(store, None, Settings())  # type: ignore[arg-type]
    clock = iter([0.0, 0.0, 31.0, 31.0, 31.0])
    monkeypatch.setattr(deliveries.time, "monotonic", lambda: next(clock))
    engine._count_budget(ROUTE)
    engine._count_budget(ROUTE)
    assert (store.total, store.writes) == (2, 1)
