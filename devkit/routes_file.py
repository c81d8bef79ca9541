"""Checks the routes file (and the local overlay) before anything serves or builds, and writes its JSON Schema."""

import json
import os
import sys
from pathlib import Path

from devkit.template import REPO_ROOT

CONFIG_FILE = REPO_ROOT / "layers" / "common" / "config" / "bridge.json"
OVERLAY_FILE = REPO_ROOT / "config" / "bridge.local.json"
SCHEMA_FILE = REPO_ROOT / "config" / "bridge.schema.json"


def schema_text() -> str:
    """The JSON Schema of the routes file, generated from the pydantic schema `sam build` checks it with."""
    sys.path.insert(0, str(REPO_ROOT / "layers" / "common"))
    from martech_bridge.models.route_schema import BridgeConfig

    schema = BridgeConfig.model_json_schema(by_alias=True)
    # A value may also be written as a bare JMESPath string (the model's "before" validator takes it).
    spec = schema["$defs"]["ValueSpec"]
    schema["$defs"]["ValueSpec"] = {"anyOf": [{"type": "string", "description": "a JMESPath"}, spec]}
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/martech-bridge/martech-bridge/config/bridge.schema.json",
        "title": "Martech Bridge routes and sinks",
        **schema,
    }
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def check(config_file: Path, overlay_file: Path | None, stage: str) -> str | None:
    """None when the file is valid for the stage, else the message (file, route, field)."""
    sys.path.insert(0, str(REPO_ROOT / "layers" / "common"))
    from martech_bridge.config import read_bridge_config
    from martech_bridge.errors import ConfigurationError

    try:
        config = read_bridge_config(config_file, overlay_file, stage=stage, schema=True)
    except ConfigurationError as exc:
        return str(exc)
    if overlay_file is None:
        # What is deployed must name secrets by reference; a literal would ship in the layer.
        from martech_bridge.config import config_secret_references

        literals = sorted(
            f"{', '.join(places)}"
            for ref, places in config_secret_references(config).items()
            if not ref.startswith(("ssm:/", "secretsmanager:"))
        )
        if literals:
            places = "; ".join(literals)
            return f"{config_file}: secrets must be references (ssm:/... or secretsmanager:...) in {places}"
    return None


def main_check(config: str | None, overlay: str | None, stage: str) -> int:
    config_file = Path(config) if config else CONFIG_FILE
    overlay_file = Path(overlay) if overlay else None
    problem = check(config_file, overlay_file, stage)
    if problem:
        print(f"Routes file refused: {problem}", file=sys.stderr)
        return 2
    where = f"{config_file.name} + {overlay_file.name}" if overlay_file else config_file.name
    print(f"Routes file OK for stage {stage}: {where}")
    return 0


def check_for_run(env_json: Path) -> str | None:
    """The routes file `make run` is about to serve, checked as its functions will read it (env.json's
    Parameters, overridden by the shell as SAM does)."""
    from devkit.runtime import LAYER_ROOT, load_env_json

    params = {**load_env_json(env_json).get("Parameters", {})}
    for key in ("BRIDGE_CONFIG_FILE", "BRIDGE_CONFIG_OVERLAY", "STAGE"):
        if key in os.environ:
            params[key] = os.environ[key]
    config = Path(params.get("BRIDGE_CONFIG_FILE") or "config/bridge.json")
    overlay = Path(params["BRIDGE_CONFIG_OVERLAY"]) if params.get("BRIDGE_CONFIG_OVERLAY") else None
    config = config if config.is_absolute() else LAYER_ROOT / config
    if overlay is not None and not overlay.is_absolute():
        overlay = REPO_ROOT / overlay
    return check(config, overlay, params.get("STAGE") or "local")


def main_schema(write: bool) -> int:
    text = schema_text()
    if write:
        SCHEMA_FILE.write_text(text, encoding="utf-8")
        print(f"Wrote {SCHEMA_FILE.relative_to(REPO_ROOT)}")
    else:
        sys.stdout.write(text)
    return 0
