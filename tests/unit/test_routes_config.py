"""Routes are configuration, validated when a function starts: the shipped files, and the mistakes a
user can make, each refused with a reason."""

import copy
import json
from typing import Any

import pytest
from martech_bridge.config import parse_bridge_config
from martech_bridge.errors import ConfigurationError

from devkit.template import REPO_ROOT

SHIPPED = ["bridge.json", "bridge.local.json"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_validate(name: str) -> None:
    config = parse_bridge_config(json.loads((REPO_ROOT / "layers/common/config" / name).read_text()), name)
    # The production file and its local twin describe the same routes, whatever routes those are.
    other = SHIPPED[1 - SHIPPED.index(name)]
    twin = parse_bridge_config(json.loads((REPO_ROOT / "layers/common/config" / other).read_text()), other)
    assert config.routes and set(config.routes) == set(twin.routes)


def test_production_config_holds_only_secret_references() -> None:
    text = (REPO_ROOT / "layers/common/config/bridge.json").read_text()
    for route in json.loads(text)["routes"].values():
        refs = route["auth"].get("secrets", []) + route["target"].get("api_tokens", [])
        refs += list(route["target"].get("secret_headers", {}).values())
        assert refs and all(r.startswith("ssm:/") for r in refs)
    for sink in json.loads(text)["sinks"]:
        refs = sink["target"].get("api_tokens", []) + [sink["target"].get("api_token")]
        assert all(r.startswith("ssm:/") for r in refs if r)
    assert "local-" not in text and "127.0.0.1" not in text


def test_local_and_production_configs_differ_only_in_where_and_secrets() -> None:
    def skeleton(name: str) -> Any:
        data = json.loads((REPO_ROOT / "layers/common/config" / name).read_text())
        for route in data["routes"].values():
            route["auth"].pop("secrets", None)
            for key in ("base_url", "url", "api_tokens", "secret_headers"):
                route["target"].pop(key, None)
        for sink in data["sinks"]:
            for key in ("base_url", "api_tokens", "api_token"):
                sink["target"].pop(key, None)
        return data

    assert skeleton("bridge.json") == skeleton("bridge.local.json")


BASE = {
    "version": 1,
    "routes": {
        "r": {
            "auth": {"type": "shared_secret", "secrets": ["s"]},
            "target": {"type": "kintone", "base_url": "https://x.cybozu.com", "app": 1, "api_tokens": ["t"]},
            "mapping": {"update_key": {"field": "email", "value": "email"}},
        }
    },
}


def variant(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node = data["routes"]["r"]
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": 2, "routes": {}}, "version"),
        (variant("auth", {"type": "magic"}), "auth"),
        (variant("auth.secrets", []), "secrets"),
        (variant("mapping", {}), "needs an `id` or `update_key`"),
        (variant("mapping.id", "record_id"), "either `id` or `update_key`"),
        (variant("mapping.record", {"x": "a[?"}), "invalid JMESPath"),
        (variant("mapping.url_params", {"a": "b"}), "kintone target takes"),
        (variant("target.api_tokens", ["t"] * 10), "api_tokens"),
        (variant("target.app", 0), "app"),
        (variant("delivery", {"deadline_seconds": 29}), "deadline_seconds"),
        (variant("extra", 1), "extra"),
        ({"version": 1, "routes": {"Bad Name": BASE["routes"]["r"]}}, "routes"),
    ],
)
def test_bad_routes_are_refused_with_a_reason(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_bridge_config(data)


def http_route(url: str, **mapping: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "routes": {
            "h": {
                "auth": {"type": "none"},
                "target": {"type": "http", "method": "PATCH", "url": url},
                "mapping": mapping,
            }
        },
    }


@pytest.mark.parametrize(
    "url", ["https://{host}/x", "https://api.{tenant}.example.com/x", "{scheme}://a.b/c", "/relative"]
)
def test_http_targets_keep_scheme_and_host_fixed(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_bridge_config(http_route(url, url_params={"host": "h", "tenant": "t", "scheme": "s"}))


def test_every_url_placeholder_needs_a_mapping() -> None:
    with pytest.raises(ConfigurationError, match="user_id"):
        parse_bridge_config(http_route("https://api.example.com/users/{user_id}"))
