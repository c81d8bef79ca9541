"""Re-subscribing: our flag is set, then the address is released from each configured provider's own
suppression lists; a provider that cannot be reached keeps its release `pending`, and the send queue makes it.

Order, so that no crash loses a release (tests/integration/test_release_quota_faults.py checks it):
1. a delayed *release check* goes into the send queue (refused: 503, nothing changed);
2. the new state is written with every configured provider's release `pending` (with its history entry);
3. each provider's lists are cleared now, within the request's deadline; each outcome is written into the
   state and as a history entry of its own;
4. when the check comes due, the send worker repeats the release of every provider still `pending` for that
   very re-subscription (a newer change makes it moot); one that stays unreachable goes back to the queue,
   and after the queue's receive limit to its DLQ (alarmed), still `pending` in the state.
Every call of a release is idempotent (a GET, a DELETE, Braze's list removals and state set), so repeating one
is harmless."""

import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from msgspec.structs import replace

from martech_bridge.adapters.providers import PROVIDERS
from martech_bridge.adapters.providers.base import (
    CLEARED,
    Provider,
    ReleaseContext,
    SuppressionDomain,
    classify,
    rate_limit_wait,
)
from martech_bridge.adapters.providers.infobip import DOMAIN_PAGE_SIZE, MAX_DOMAIN_PAGES
from martech_bridge.adapters.send_queue import SendQueue
from martech_bridge.adapters.subscription_store import SubscriptionStore
from martech_bridge.adapters.targets.base import TargetRequest, TargetResponse, send
from martech_bridge.config import Settings
from martech_bridge.errors import ConfigurationError, DependencyUnavailable
from martech_bridge.logic.delivery import backoff_seconds
from martech_bridge.logic.subscriptions import apply_update
from martech_bridge.models.subscription import Subscription, SubscriptionChange, SubscriptionUpdate
from martech_bridge.observability import count, logger

MAX_CALL_ATTEMPTS = 4
PENDING, REMOVED, NOT_LISTED, FAILED = "pending", "removed", "not_listed", "failed"


def configured(settings: Settings) -> list[Provider]:
    """The providers this deployment has an API key for: the ones whose lists may hold the address."""
    return [p for p in PROVIDERS.values() if getattr(settings, f"{p.name}_api_key", "")]


def resubscribe(
    address: str,
    update: SubscriptionUpdate,
    *,
    settings: Settings,
    store: SubscriptionStore,
    queue: SendQueue | None,
    deadline: float,
    now: datetime | None = None,
) -> tuple[Subscription, list[SubscriptionChange], dict[str, str] | None]:
    """Apply a `PUT /subscriptions` body. Returns the new state, its history (newest first) and, for a
    re-subscription, each configured provider's release outcome. `deadline` is a time.monotonic() value."""
    now = now or datetime.now(UTC)
    current, history = store.get(address)
    new, change = apply_update(address, current, update, source="api", now=now)
    providers = configured(settings) if update.subscribed else []
    if providers:
        if queue is None:
            raise DependencyUnavailable("The send queue is not configured; the release could not be made safe")
        new = new.model_copy(update={"release": {p.name: PENDING for p in providers}})
        queue.check_release(address, new.version, settings.release_check_delay_seconds)
    store.save(new, change, expected_version=current.version if current else None)
    history = [change, *history]
    if not providers:
        return new, history, None
    recorded: list[SubscriptionChange] = []
    released = release(
        address, new.version, providers, settings=settings, store=store, deadline=deadline, recorded=recorded
    )
    state = new.model_copy(update={"release": {**(new.release or {}), **released}})
    # The answer's history holds the release entries this request wrote, as a GET right after would.
    history = [*sorted(recorded, key=lambda c: c.changed_at, reverse=True), *history]
    return state, history, released


def resume(address: str, version: int, *, settings: Settings, store: SubscriptionStore, deadline: float) -> bool:
    """The release check: make every release still pending for this re-subscription. True when none is left
    pending (or the state has moved on), False when one must be tried again later."""
    state, _ = store.get(address)
    if state is None or state.version != version or not state.subscribed or not state.release:
        return True
    pending = [PROVIDERS[n] for n, outcome in state.release.items() if outcome == PENDING and n in PROVIDERS]
    if not pending:
        return True
    outcomes = release(address, version, pending, settings=settings, store=store, deadline=deadline)
    return all(o != PENDING for o in outcomes.values())


def release(
    address: str,
    version: int,
    providers: Sequence[Provider],
    *,
    settings: Settings,
    store: SubscriptionStore,
    deadline: float,
    recorded: list[SubscriptionChange] | None = None,
) -> dict[str, str]:
    """Each provider's lists cleared (providers in parallel, each list in turn); every outcome but `pending`
    written into the state and the history (and appended to `recorded` once written). A write that fails
    leaves the release pending: the check repeats it."""
    from martech_bridge.sending import api_key  # the send flow's key resolution, shared

    sender_domain = settings.default_from_email.rpartition("@")[2]

    def one(provider: Provider) -> tuple[str, dict[str, str]]:
        try:
            key = api_key(settings, provider)
        except DependencyUnavailable:
            return PENDING, {"credentials": "the provider's API key could not be read"}
        except ConfigurationError:
            # A key that refers to no secret: this provider's release fails (recorded, like refused credentials);
            # raising would lose the other providers' outcomes and answer 500 for a re-subscription made.
            return FAILED, {"credentials": "the provider's API key is not configured"}
        ctx = ReleaseContext(
            api_key=key,
            base_url=getattr(settings, f"{provider.name}_base_url"),
            sender_domain=sender_domain,
            timeout=settings.provider_timeout_seconds,
        )
        if hasattr(provider, "suppression_domains_request"):
            return _release_per_domain(provider, address, ctx, deadline)
        return release_one(provider, address, ctx, deadline)

    with ThreadPoolExecutor(max_workers=max(1, len(providers)), thread_name_prefix="release") as pool:
        results = list(pool.map(one, providers))
    out: dict[str, str] = {}
    for provider, (outcome, lists) in zip(providers, results, strict=True):
        out[provider.name] = outcome
        count("SuppressionReleases", 1, provider=provider.name, outcome=outcome)
        logger.info("Provider suppression release", extra={"provider": provider.name, "outcome": outcome})
        if outcome == PENDING:
            continue
        change = SubscriptionChange(
            subscribed=True,
            reason=f"{provider.label} suppression lists: "
            + ", ".join(f"{name} {what}" for name, what in lists.items()),
            source=f"release:{provider.name}",
            changed_at=datetime.now(UTC),
            released={provider.name: outcome},
        )
        try:
            if store.record_release(address, version, provider.name, outcome, change) and recorded is not None:
                recorded.append(change)
        except DependencyUnavailable:
            # The caller is told `pending`, as the state says: the check settles it, and by then the address is
            # off the list, so it records `not_listed` - an answer of `removed` would never be on record.
            out[provider.name] = PENDING
            logger.warning(
                "Release outcome not recorded; the release check repeats it", extra={"provider": provider.name}
            )
    return out


def release_one(provider: Provider, address: str, ctx: ReleaseContext, deadline: float) -> tuple[str, dict[str, str]]:
    """(the provider's outcome, each list's): `pending` if any list could not be settled now (unreachable,
    429/5xx past the deadline), else `failed` if the provider refused a call, else `removed` if the address
    was taken off a list, else `cleared` if a list that cannot be asked was cleared regardless (Braze's spam
    list), else `not_listed`."""
    lists: dict[str, str] = {}
    for step in provider.release_steps(address, ctx):
        if step.check is not None and step.listed is not None:
            answer = _call(step.check, deadline)
            if not isinstance(answer, TargetResponse):
                lists[step.name] = PENDING
                continue
            kind = classify(answer.status)
            if kind != "accepted":
                lists[step.name] = PENDING if kind == "retry" else f"{FAILED} (HTTP {answer.status})"
                continue
            if not step.listed(answer):
                lists[step.name] = NOT_LISTED
                continue
        if step.remove is None:  # listed (or not readable), and the account may not delete it there
            lists[step.name] = f"{FAILED} (no permission to delete)"
            continue
        answer = _call(step.remove, deadline)
        if not isinstance(answer, TargetResponse):
            lists[step.name] = PENDING
        elif answer.status == 404:  # pessimistic: an undocumented "not found" means it was not there
            lists[step.name] = NOT_LISTED
        else:
            kind = classify(answer.status)
            lists[step.name] = {"accepted": step.done, "retry": PENDING}.get(kind, f"{FAILED} (HTTP {answer.status})")
    return _outcome(lists), lists


def _outcome(lists: dict[str, str]) -> str:
    values = list(lists.values())
    if PENDING in values:
        return PENDING
    if any(v.startswith(FAILED) for v in values):
        return FAILED
    if any(v not in (NOT_LISTED, CLEARED) for v in values):
        return REMOVED
    return CLEARED if CLEARED in values else NOT_LISTED


def _release_per_domain(
    provider: Provider, address: str, ctx: ReleaseContext, deadline: float
) -> tuple[str, dict[str, str]]:
    """Infobip keeps suppressions per sending domain, and a send may name any domain of the account (the
    request's `from`, another system sending through the same account), so the domains are listed at release
    time (*Get suppression domains*, every page) and each one's lists cleared. Listing beats remembering the
    domains the bridge sent from: it also covers suppressions made by other senders and before the bridge was
    deployed. No answer leaves the release pending (the check repeats it); a refusal fails it; an answer that
    cannot be read falls back to the default sender's domain and fails the release, so that it is looked at."""
    domains: dict[str, SuppressionDomain] = {}
    listing = "listed"
    partial: str | None = None  # why the listing may have left domains out (they are then not looked at)
    request_page = getattr(provider, "suppression_domains_request")  # noqa: B009 - optional provider hook
    read_page = getattr(provider, "suppression_domains")  # noqa: B009
    for page in range(MAX_DOMAIN_PAGES):
        answer = _call(request_page(ctx, page), deadline)
        if not isinstance(answer, TargetResponse):
            return PENDING, {"sending domains": PENDING}
        kind = classify(answer.status)
        if kind == "retry":
            return PENDING, {"sending domains": PENDING}
        if kind != "accepted":
            return FAILED, {"sending domains": f"{FAILED} (HTTP {answer.status})"}
        found = read_page(answer)
        if found is None:
            listing = f"{FAILED} (unreadable answer; the default sender's domain only)"
            domains = {}
            break
        new = {d.name: d for d in found if d.name not in domains}
        domains.update(new)
        if len(found) < DOMAIN_PAGE_SIZE:
            break
        if not new:
            # A full page naming only domains already listed: the provider repeats a page (ignores `page`), so
            # its paging cannot be followed, and what lies past it is unknown - never read as "not listed".
            partial = f"{FAILED} (the listing repeated a page; only the domains it named)"
            break
    else:
        partial = f"{FAILED} (more than {MAX_DOMAIN_PAGES} pages; only the domains they named)"
    if listing != "listed":
        _, lists = release_one(provider, address, replace(ctx, domains=None), deadline)
        lists = {"sending domains": listing, **lists}
        return _outcome(lists), lists
    if not domains:
        return NOT_LISTED, {"sending domains": "none the account may manage"}
    # Domains in parallel (each domain's lists in turn): an account with many domains fits in the deadline, so
    # that the check, which repeats the whole release, can finish it; Infobip allows 100 requests a second.
    with ThreadPoolExecutor(max_workers=min(DOMAIN_WORKERS, len(domains)), thread_name_prefix="infobip") as pool:
        results = list(
            pool.map(lambda d: release_one(provider, address, replace(ctx, domains=(d,)), deadline), domains.values())
        )
    lists = {name: what for _, own in results for name, what in own.items()}
    if partial:
        lists = {"sending domains": partial, **lists}
    return _outcome(lists), _summarised(lists)


DOMAIN_WORKERS = 8
MAX_LISTS_NAMED = 30


def _summarised(lists: dict[str, str]) -> dict[str, str]:
    """An account with many domains has three lists each: past MAX_LISTS_NAMED, the lists that did not hold
    the address are counted rather than named, and so are the ones past the first MAX_LISTS_NAMED that did (or
    could not be settled), by kind - so the history entry stays readable and far below DynamoDB's item limit
    (an account of thousands of refusing domains would otherwise make an entry whose write fails on every
    check). Counting keeps each kind as a value, so the outcome read from the summary is the same."""
    if len(lists) <= MAX_LISTS_NAMED:
        return lists
    named: dict[str, str] = {}
    counted: dict[str, int] = {}
    for name, what in lists.items():
        if what != NOT_LISTED and len(named) < MAX_LISTS_NAMED:
            named[name] = what
        else:
            kind = what.split(" (", 1)[0]  # "failed (HTTP 403)" -> "failed"
            counted[kind] = counted.get(kind, 0) + 1
    for kind, n in counted.items():
        named[f"{n} other lists" if kind == NOT_LISTED else f"{n} more lists ({kind})"] = kind  # a key per kind
    return named


def _call(request: TargetRequest, deadline: float) -> TargetResponse | None:
    """One idempotent call, repeated on no answer, 429 and 5xx with backoff (honouring the provider's rate
    limit reset) while the deadline allows; the last answer, or None when none came."""
    answer: TargetResponse | None = None
    for attempt in range(1, MAX_CALL_ATTEMPTS + 1):
        remaining = deadline - time.monotonic()
        if remaining < 0.5:
            break
        raw = send(request, remaining)
        # A look-up whose body was cut off said nothing: asked again, like one that got no answer (a listing
        # read as unreadable would fail the release for a network blip, and nothing retries `failed`).
        read_cut = isinstance(raw, TargetResponse) and raw.cut_short and request.method == "GET"
        answer = raw if isinstance(raw, TargetResponse) and not read_cut else None
        if answer is not None and classify(answer.status) != "retry":
            return answer
        wait = backoff_seconds(
            attempt, base=0.5, cap=4, retry_after=rate_limit_wait(answer.headers) if answer is not None else None
        )
        if time.monotonic() + wait > deadline - 0.5:
            break
        time.sleep(wait + random.uniform(0, 0.05))  # noqa: S311 - jitter, not security
    return answer
