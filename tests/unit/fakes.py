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


class FakeMessageStore:
    """Sent messages' recipient items, as the send flow stores them (the address normalised), read the two ways
    the replies flow reads them: by dispatch id, and by a provider's message id."""

    def __init__(self) -> None:
        self.items: list[dict[str, object]] = []

    def sent(self, dispatch_id: str, provider: str, provider_message_id: str, *emails: str) -> None:
        for n, email in enumerate(emails):
            self.items.append(
                {
                    "dispatch_id": dispatch_id,
                    "message_id": f"{dispatch_id}.{n}",
                    "email": email,
                    "provider": provider,
                    "provider_message_id": provider_message_id,
                }
            )

    def recipients(self, dispatch_id: str) -> list[dict[str, object]]:
        return [dict(i) for i in self.items if i["dispatch_id"] == dispatch_id]

    def recipients_by_provider_id(self, provider: str, provider_message_id: str) -> list[dict[str, object]]:
        return [
            dict(i) for i in self.items if i["provider"] == provider and i["provider_message_id"] == provider_message_id
        ]
