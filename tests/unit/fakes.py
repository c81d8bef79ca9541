"""In-memory stand-ins for adapters (fakes, not mocks: they keep real state and real rules)."""

from martech_bridge.errors import Conflict
from martech_bridge.models.subscription import Subscription, SubscriptionChange


class FakeSubscriptionStore:
    def __init__(self) -> None:
        self.state: dict[str, Subscription] = {}
        self.history: dict[str, list[SubscriptionChange]] = {}

    def get(self, email: str) -> tuple[Subscription | None, list[SubscriptionChange]]:
        return self.state.get(email), list(reversed(self.history.get(email, [])))

    def save(self, new: Subscription, change: SubscriptionChange, *, expected_version: int | None) -> None:
        current = self.state.get(new.email)
        if (current.version if current else None) != expected_version:
            raise Conflict("changed concurrently", code="concurrent_update")
        self.state[new.email] = new
        self.history.setdefault(new.email, []).append(change)
