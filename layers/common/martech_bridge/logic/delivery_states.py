"""The delivery state machine: every edge, who moves it, and the condition its one DynamoDB write carries.
The store (adapters/delivery_store.py) performs them; the sweeper reads the same table; the README draws
it, and a test holds the README's table equal to this one."""

import msgspec

from martech_bridge.models.delivery import DeliveryStatus as S

NEW = "(new)"


class Edge(msgspec.Struct, frozen=True):
    source: str
    target: str
    who: str
    write: str  # the store method and the condition of its conditional write


EDGES: tuple[Edge, ...] = (
    Edge(NEW, S.PENDING, "async relay, event sink", "create: id not taken"),
    Edge(
        NEW, S.IN_PROGRESS, "sync relay with an idempotency key", "create: id not taken (lease = function life + 15 s)"
    ),
    Edge(NEW, S.DELIVERED, "sync relay without a key (written once, after the call)", "create: id not taken"),
    Edge(NEW, S.REJECTED, "sync relay without a key", "create: id not taken"),
    Edge(NEW, S.PENDING, "sync relay without a key, retryable answer", "create: id not taken"),
    Edge(NEW, S.FAILED, "sync relay without a key, outcome unknown", "create: id not taken"),
    Edge(S.PENDING, S.IN_PROGRESS, "worker", "claim: attempts = n-1 and pending"),
    Edge(
        S.IN_PROGRESS,
        S.IN_PROGRESS,
        "worker (the lease lapsed: its holder died)",
        "claim: attempts = n-1 and lease < now",
    ),
    Edge(S.IN_PROGRESS, S.DELIVERED, "relay, worker", "record_attempt: attempts = n-1 and our lease"),
    Edge(S.IN_PROGRESS, S.REJECTED, "relay, worker", "record_attempt: attempts = n-1 and our lease"),
    Edge(S.IN_PROGRESS, S.PENDING, "relay, worker (retry later)", "record_attempt: attempts = n-1 and our lease"),
    Edge(S.IN_PROGRESS, S.PENDING, "relay, worker (stopped before calling)", "release: attempts and our lease"),
    Edge(
        S.IN_PROGRESS,
        S.FAILED,
        "relay, worker (gave up, outcome unknown)",
        "record_attempt: attempts = n-1 and our lease",
    ),
    Edge(
        S.IN_PROGRESS,
        S.FAILED,
        "worker (request cannot be built), sweeper (stuck)",
        "settle_without_attempt: unchanged",
    ),
    Edge(S.PENDING, S.FAILED, "worker (route removed), sweeper (stuck)", "settle_without_attempt: unchanged"),
    Edge(S.FAILED, S.FAILED, "anyone, then the sweeper: DLQ message sent", "dead_lettered: dead_letter_pending"),
    Edge(S.FAILED, S.PENDING, "operator: retry, or bridgectl redrive from the DLQ", "reopen: failed or rejected"),
    Edge(S.REJECTED, S.PENDING, "operator: POST /deliveries/{id}/retry", "reopen: failed or rejected"),
)

# Which states the sweeper looks at (the sparse sweep index holds exactly these) and when.
SWEPT = {
    S.PENDING: "next attempt due (or created) + grace: queue it again",
    S.IN_PROGRESS: "lease ended: queue it; the worker takes over and decides whether the call may be repeated",
    S.FAILED: "DLQ message not yet sent after grace: send it",
}
