"""Routes are configuration, validated when a function starts: the shipped files, and the mistakes a
user can make, each refused with a reason."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from martech_bridge.config import config_secret_references, expand_config, parse_bridge_config, read_bridge_config
from martech_bridge.errors import ConfigurationError

from devkit.routes_file import SCHEMA_FILE, check, schema_text
from devkit.template import REPO_ROOT

CONFIG = REPO_ROOT / "layers/common/config/bridge.json"
OVERLAY = REPO_ROOT / "config/bridge.local.json"


def test_shipped_routes_file_validates_locally_and_for_any_stage() -> None:
    local = read_bridge_config(CONFIG, OVERLAY, stage="local")
    deployed = read_bridge_config(CONFIG, None, stage="dev")
    # One routes file: whatever routes it holds, the local overlay changes only secrets and URLs.
    assert local.routes and set(local.routes) == set(deployed.routes)
    assert [s.name for s in local.sinks] == [s.name for s in deployed.sinks]


def test_each_stage_reads_only_its_own_secrets() -> None:
    for stage in ("dev", "prod", "staging"):
        refs = config_secret_references(read_bridge_config(CONFIG, None, stage=stage))
        assert refs and all(r.startswith(f"ssm:/martech-bridge/{stage}/") for r in refs)
    assert "/prod/" not in CONFIG.read_text()


def test_the_deployed_file_holds_no_local_values() -> None:
    text = CONFIG.read_text()
    assert "local-" not in text and "127.0.0.1" not in text
    assert check(CONFIG, None, "dev") is None


def test_the_overlay_gives_every_secret_a_local_value_and_every_target_a_local_url() -> None:
    local = read_bridge_config(CONFIG, OVERLAY, stage="local")
    assert all(not r.startswith(("ssm:", "secretsmanager:")) for r in config_secret_references(local))
    for item in [*local.routes.values(), *local.sinks]:
        assert item.target.host.split(":")[0] == "127.0.0.1"


def test_an_overlay_replaces_only_what_it_names() -> None:
    data = {"a": "ssm:/p/{stage}/routes/x", "b": "https://h.example/v1/u", "c": "https://other.example/"}
    overlay = {"secrets": {"ssm:/p/{stage}/routes/x": "lit"}, "urls": {"https://h.example": "http://127.0.0.1:9"}}
    assert expand_config(data, overlay, stage="dev") == {
        "a": "lit",
        "b": "http://127.0.0.1:9/v1/u",
        "c": "https://other.example/",
    }
    assert expand_config(data, None, stage="dev")["a"] == "ssm:/p/dev/routes/x"
    with pytest.raises(ConfigurationError, match="only `secrets` and `urls`"):
        expand_config(data, {"routes": {}}, stage="dev")


def test_a_bad_route_is_reported_with_file_route_and_field(tmp_path: Path) -> None:
    data = json.loads(CONFIG.read_text())
    name = next(iter(data["routes"]))
    data["routes"][name]["delivery"] = {"deadline_seconds": 99}
    bad = tmp_path / "my-routes.json"
    bad.write_text(json.dumps(data))
    message = check(bad, OVERLAY, "local")
    assert message and "my-routes.json" in message and f"route {name}" in message and "deadline_seconds" in message
    bad.write_text("{not json")
    assert "my-routes.json is not valid JSON" in (check(bad, None, "dev") or "")


def test_a_literal_secret_in_the_deployed_file_is_refused(tmp_path: Path) -> None:
    data = json.loads(CONFIG.read_text())
    name = next(iter(data["routes"]))
    data["routes"][name]["auth"]["secrets"] = ["pasted-token-value"]
    path = tmp_path / "bridge.json"
    path.write_text(json.dumps(data))
    message = check(path, None, "dev") or ""
    assert "must be references" in message and name in message and "pasted-token-value" not in message


def test_the_published_schema_is_generated_from_the_model() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), "run `python -m devkit schema --write`"
    schema = json.loads(SCHEMA_FILE.read_text())
    # Editors can check the shipped file with it: the routes file points at it and it knows the routes.
    assert json.loads(CONFIG.read_text())["$schema"] == "../../../config/bridge.schema.json"
    assert "routes" in schema["properties"] and schema["additionalProperties"] is False


def test_the_shipped_file_validates_against_the_published_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.validate(json.loads(CONFIG.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "routes": {"r": {"auth": {"type": "magic"}}}}, schema)


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
        ({"version": 1, "routes": {"Bad Name": BASE["routes"]["r"]}}, "route name 'Bad Name'"),
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


def test_a_redrive_grants_the_route_its_own_attempts() -> None:
    from bridgectl.redrive import route_attempts

    data = json.loads(CONFIG.read_text())
    name, route = next((n, r) for n, r in data["routes"].items() if r.get("delivery", {}).get("max_attempts", 8) != 8)
    assert route_attempts(name) == route["delivery"]["max_attempts"]
    assert route_attempts("no-such-route") == 8
