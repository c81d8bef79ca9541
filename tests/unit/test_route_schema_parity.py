"""One source of truth for the routes file: the pydantic schema that `sam build` and `make run` check it
with, and the plain loader the functions read it with at INIT, accept and refuse the same files and read the
same values - for the shipped files, the test fixtures, and every one-step corruption of them."""

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from martech_bridge.config import expand_config, parse_bridge_config
from martech_bridge.errors import ConfigurationError
from martech_bridge.models import routes

from devkit.routes_file import OVERLAY_FILE
from devkit.template import REPO_ROOT
from tests.routes_parity import assert_read_alike, plain_reading, schema_reading
from tests.unit.test_routes_config import BASE, http_route

SHIPPED = sorted((REPO_ROOT / "layers/common/config").glob("*.json"))


def shipped_readings() -> Iterator[Any]:
    for path in SHIPPED:
        data = json.loads(path.read_text(encoding="utf-8"))
        yield pytest.param(expand_config(data, stage="dev"), id=f"{path.name}-deployed")
        overlay = json.loads(OVERLAY_FILE.read_text(encoding="utf-8"))
        yield pytest.param(expand_config(data, overlay, stage="local"), id=f"{path.name}-local")


def fixtures() -> Iterator[Any]:
    """The routes files the other tests build (each with a loopback URL where theirs has the sandbox's)."""
    from tests.e2e.test_relay_flows import fast_routes
    from tests.integration.test_quota_failover import routes_file

    url = "http://127.0.0.1:9"
    yield pytest.param(BASE, id="routes-config-base")
    yield pytest.param(http_route("https://api.example.com/users/{id}", url_params={"id": "id"}), id="http-route")
    yield pytest.param({"version": 1, "routes": {}, "sinks": []}, id="empty")
    for sending in ({"sendgrid": {"daily_limit": 3, "notify": "ops@example.com"}}, {"infobip": {"fallback": True}}):
        yield pytest.param(sending_file(routes_file, sending), id=f"quota-{next(iter(sending))}")
    yield pytest.param(e2e_file(fast_routes), id="e2e-fast-routes")
    kintone = {"type": "kintone", "base_url": url, "app": 3, "api_tokens": ["t"], "budget_warn_ratio": 0.5}
    yield pytest.param(
        {
            "version": 1,
            "routes": {"k": {"auth": {"type": "none"}, "target": kintone, "mapping": {"id": "id"}}},
            "sinks": [
                {
                    "name": "effects",
                    "target": {"type": "http", "method": "POST", "url": url},
                    "mapping": {"body": {"n": "n"}},
                },
                {
                    "name": "reply-effects",
                    "source": "replies",
                    "target": {
                        "type": "http",
                        "method": "PUT",
                        "url": f"{url}/http/effects",
                        "secret_headers": {"Authorization": "local-http-token"},
                        "secret_header_format": {"Authorization": "Bearer {}"},
                        "timeout_seconds": 3,
                    },
                    "mapping": {"body": {"n": "subject", "text": "text"}},
                    "delivery": {"mode": "async", "max_attempts": 4, "backoff_base_seconds": 1},
                },
                {"name": "karte", "target": {"type": "karte", "api_token": "k"}, "mapping": {"id": {"const": None}}},
            ],
        },
        id="sinks-of-every-kind",
    )


def sending_file(build: Any, sending: dict[str, Any]) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(build(Path(tmp), sending)).read_text(encoding="utf-8"))


def e2e_file(build: Any) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(build(Path(tmp) / "routes.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("data", [*shipped_readings(), *fixtures()])
def test_the_shipped_files_and_the_fixtures_are_read_alike(data: Any) -> None:
    assert assert_read_alike(data), "the schema and the loader both refuse a file that should be valid"


# Values a hand-edited file may hold where it should not: wrong JSON types, bounds, a boolean for a number,
# a trailing newline after a name (Python's `$` would let it through), NaN (Python's json reads it).
TRICKY = [None, True, False, 0, -1, 1, 1.5, 10**40, "", "x", "5", "a\n", [], {}, float("nan"), "https://h.ex/{x}"]
TRICKY += ["GET", 0.5, 61, "Host", "https://h.ex/a/", {"path": "a["}, {"const": 1, "path": "a"}, ["x"] * 10]
KEYS = ["Bad Name", "a\n", "", "x" * 129, "Host", "zz"]


def _nodes(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _nodes(value, (*at, key))
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _nodes(value, (*at, n))


def corruptions(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each node removed, replaced by each tricky value, renamed, or given an unknown member - in a file
    holding only the route or sink it belongs to (the others cannot change the answer; it keeps this fast)."""
    for at in _nodes(data):
        if not at:
            continue
        if at[0] == "routes" and len(at) > 1:
            base: Any = {"version": 1, "routes": {at[1]: data["routes"][at[1]]}}
        elif at[0] == "sinks" and len(at) > 1:
            base, at = {"version": 1, "sinks": [data["sinks"][at[1]]]}, ("sinks", 0, *at[2:])
        else:
            base = data
        parent = base
        for key in at[:-1]:
            parent = parent[key]
        changes: list[Any] = [("drop", None), *(("set", v) for v in TRICKY)]
        if isinstance(parent, dict):
            changes += [("rename", k) for k in KEYS]
        if isinstance(parent[at[-1]], dict):
            changes.append(("unknown", None))
        for change, value in changes:
            copied = copy.deepcopy(base)
            node = copied
            for key in at[:-1]:
                node = node[key]
            if change == "drop":
                del node[at[-1]]
            elif change == "set":
                node[at[-1]] = copy.deepcopy(value)
            elif change == "rename":
                node[value] = node.pop(at[-1])
            else:
                node[at[-1]]["zz_unknown"] = 1
            yield copied


@pytest.mark.parametrize(
    "data", [*shipped_readings(), *(p for p in fixtures() if p.id in ("sinks-of-every-kind", "routes-config-base"))]
)
def test_every_one_step_corruption_is_refused_or_read_alike_by_both(data: Any) -> None:
    accepted = refused = 0
    for corrupted in corruptions(data):
        if assert_read_alike(corrupted):
            accepted += 1
        else:
            refused += 1
    assert refused > 20 and accepted > 20  # the corruptions reach both answers, many times


def test_the_loader_names_the_route_and_the_field_and_shows_the_schemas_pattern() -> None:
    route = copy.deepcopy(BASE["routes"]["r"])
    route["target"]["app"] = 0
    with pytest.raises(ConfigurationError, match=r"^Invalid my-routes.json: route r, field target.app: .*>= 1"):
        parse_bridge_config({"version": 1, "routes": {"r": route}}, "my-routes.json")
    route = copy.deepcopy(BASE["routes"]["r"])
    route["auth"]["header"] = "X-Token\n"
    with pytest.raises(ConfigurationError, match=r"route r, field auth.header: .*\{1,100\}\$"):
        parse_bridge_config({"version": 1, "routes": {"r": route}})
    with pytest.raises(ConfigurationError, match=r"sink #0, field \(the sink\): .*unknown field `extra`"):
        parse_bridge_config(
            {"version": 1, "sinks": [{"name": "s", "target": {"type": "karte", "api_token": "t"}, "extra": 1}]}
        )


def test_a_const_of_null_is_a_value_and_a_bare_string_is_a_path() -> None:
    config = routes.load(
        {
            "version": 1,
            "routes": {
                "r": {
                    "auth": {"type": "none"},
                    "target": {"type": "http", "method": "POST", "url": "https://api.example.com/x"},
                    "mapping": {"body": {"a": {"const": None}, "b": "n.m", "c": {"path": "z", "default": 7}}},
                }
            },
        }
    )
    body = config.routes["r"].mapping.body or {}
    assert [spec.evaluate({"n": {"m": 2}}) for spec in body.values()] == [None, 2, 7]
    refused = {"version": 1, "routes": {"r": {**BASE["routes"]["r"], "mapping": {"id": {"default": 1}}}}}
    assert schema_reading(refused) is None and plain_reading(refused) is None


def test_the_routes_file_is_frozen_data_without_pydantic() -> None:
    config = routes.load(BASE)
    with pytest.raises(AttributeError):
        config.routes["r"].target.app = 2  # type: ignore[misc]
    assert not any(cls.__module__.startswith("pydantic") for cls in type(config.routes["r"]).__mro__)


@pytest.mark.parametrize("notify", ["ops@intranet", "ops@example", "o%ps@example.com", "ops@exa_mple.com"])
def test_a_quota_notify_address_the_mail_checks_refuse_is_refused_by_both_readings(notify: str) -> None:
    """The quota warning is mailed with the send request's address checks: an address they refuse would make
    the warning fail after the send it warns about was made (a 500 for a sent mail), so the file refuses it."""
    data = {"version": 1, "sending": {"providers": {"sendgrid": {"daily_limit": 3, "notify": notify}}}}
    assert not assert_read_alike(data)
    with pytest.raises(ConfigurationError, match=r"sending.providers.sendgrid.notify: .*notification address"):
        parse_bridge_config(data, schema=True)
    with pytest.raises(ConfigurationError, match=r"sending.providers.*: the notification address"):
        parse_bridge_config(data)


@pytest.mark.parametrize("notify", ["ops@example.com", "Ops@Example.COM", "ops@straße.de"])
def test_a_quota_notify_address_the_mail_checks_take_is_read_alike(notify: str) -> None:
    data = {"version": 1, "sending": {"providers": {"sendgrid": {"daily_limit": 3, "notify": notify}}}}
    assert assert_read_alike(data)


@pytest.mark.parametrize(
    "change",
    [
        {"version": 1.0},  # pydantic's Literal[1] took 1.0 (it equals 1); msgspec's refuses it
        # Python's \s (the loader's) also takes the separators \x1c-\x1f, Rust's (the schema's) does not
        {
            "routes": {
                "r": {
                    **BASE["routes"]["r"],
                    "target": {**BASE["routes"]["r"]["target"], "base_url": "https://h.example\x1c"},
                }
            }
        },
        {
            "routes": {
                "r": {
                    **BASE["routes"]["r"],
                    "target": {**BASE["routes"]["r"]["target"], "base_url": "https://h.example/\x1f"},
                }
            }
        },
    ],
)
def test_numbers_and_control_characters_are_refused_by_both_readings(change: dict[str, Any]) -> None:
    assert not assert_read_alike({**BASE, **change})
