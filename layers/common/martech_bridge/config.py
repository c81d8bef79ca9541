"""Settings: every environment variable template.yaml declares, parsed once into a checked, frozen record.

Secret settings hold a *reference* (`ssm:/path` or `secretsmanager:name`) that secrets.py resolves;
locally, with ALLOW_PLAINTEXT_SECRETS=true, they may hold the value itself. Logic never reads
os.environ: it receives a Settings (or plain values taken from one).

Settings is a dataclass checked by hand, not a pydantic model: every function reads it at INIT, and pydantic
with a model class costs a cold start ~60 ms the acknowledge paths (events, relay) need nothing else for.
The routes file is checked with its pydantic schema (models/route_schema.py) where that cost is paid once
(`sam build`, `make run`), and loaded by the functions as plain data under the same rules (models/routes.py).
"""

import dataclasses
import json
import os
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from martech_bridge.errors import ConfigurationError

if TYPE_CHECKING:
    from martech_bridge.models.routes import BridgeConfig

Provider = Literal["sendgrid", "braze", "infobip"]
UnknownRecipients = Literal["subscribed", "unsubscribed"]

# The directory the layer's files sit in: /opt/python in Lambda, layers/common in a checkout.
LAYER_ROOT = Path(__file__).resolve().parent.parent


def _secret() -> Any:
    """A secret setting: a reference, a literal (local only) or empty for "not configured"; never in repr."""
    return field(default="", repr=False)


def _bounded(default: float, low: float, high: float, *, open_low: bool = False) -> Any:
    return field(default=default, metadata={"low": low, "high": high, "open_low": open_low})


@dataclass(frozen=True)
class Settings:
    """One field per environment variable; the variable's name is the field's name in upper case."""

    stage: str = "local"
    retention_days: int = _bounded(30, 1, 3650)
    max_request_bytes: int = _bounded(1_048_576, 1024, 10 * 1024 * 1024)
    bridge_config_file: str = "config/bridge.json"
    # Local only: a file that swaps the routes' secret references and target URLs for local values.
    bridge_config_overlay: str = ""
    allow_plaintext_secrets: bool = False

    # State
    messages_table: str = ""
    deliveries_table: str = ""
    subscriptions_table: str = ""
    idempotency_table: str = ""
    payload_bucket: str = ""
    delivery_queue_url: str = ""
    delivery_dlq_url: str = ""
    event_queue_url: str = ""
    send_queue_url: str = ""  # Braze recipients not sent within a request's deadline
    sweep_grace_seconds: float = _bounded(60, 1, 3600)

    # Operator API
    api_keys: str = _secret()

    # Sending
    default_provider: Provider = "sendgrid"
    # Checked as a request's addresses are: every send builds its From and Reply-To from these.
    default_from_email: str = field(default="", metadata={"address": True})
    default_from_name: str = ""
    default_reply_to: str = field(default="", metadata={"address": True})
    unknown_recipients: UnknownRecipients = "subscribed"
    sendgrid_sandbox_mode: bool = False
    send_deadline_seconds: float = _bounded(20, 1, 28, open_low=True)
    provider_timeout_seconds: float = _bounded(10, 0.5, 25, open_low=True)
    send_concurrency: int = _bounded(16, 1, 64)  # Braze calls in flight at once (one per recipient)
    # A re-subscription's release check comes due after this (releases.py): long after its request has ended.
    release_check_delay_seconds: int = _bounded(120, 0, 900)
    public_base_url: str = ""
    sendgrid_api_key: str = _secret()
    sendgrid_base_url: str = "https://api.sendgrid.com"
    braze_api_key: str = _secret()
    braze_base_url: str = "https://rest.iad-01.braze.com"
    infobip_api_key: str = _secret()
    infobip_base_url: str = "https://api.infobip.com"

    # Event webhooks
    sendgrid_webhook_public_keys: str = _secret()
    braze_postback_secret: str = _secret()
    infobip_webhook_secret: str = _secret()
    insecure_accept_unsigned_events: bool = False
    # SendGrid retries for up to 24 h and does not say whether retries are signed afresh: a day by default.
    sendgrid_webhook_max_age_seconds: float = _bounded(86_400, 60, 7 * 86_400)
    # A soft bounce is a final `bounced` either way; true also sets the address to subscribed: false
    # (suppression `soft_bounce`: marketing is held back, transactional mail still goes).
    suppress_soft_bounces: bool = False

    # Replies (issue 16): the inbound bucket SES writes to, the domain of the reply+<dispatch id>@ Reply-To a
    # send sets (empty: none), and how much of one received message is read.
    inbound_mail_bucket: str = ""
    # Checked as the domain of a request's address: a send's Reply-To is reply+<dispatch id>@ this domain.
    reply_domain: str = field(
        default="",
        metadata={
            "pattern": r"^$|^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$",
            "address": "reply+d_" + "0" * 24 + "@",
        },
    )
    max_inbound_mail_bytes: int = _bounded(10 * 1024 * 1024, 64 * 1024, 40 * 1024 * 1024)
    # A reply is linked to its message only when SES's Authentication-Results authenticate its From domain;
    # false for an inbound path that is not SES (it writes no such field): then the From header is believed.
    reply_require_auth: bool = True

    def __post_init__(self) -> None:
        problems = []
        for f in dataclasses.fields(self):
            try:
                object.__setattr__(self, f.name, _checked(f, getattr(self, f.name)))
            except ValueError as exc:
                problems.append(f"{f.name.upper()}: {exc}")
        if problems:
            raise ConfigurationError(f"Invalid settings: {'; '.join(problems)}")

    @classmethod
    def from_environ(cls, environ: dict[str, str] | os._Environ[str]) -> "Settings":
        values: dict[str, Any] = {n: environ[n.upper()] for n in cls.field_names() if n.upper() in environ}
        return cls(**values)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def require(self, name: str) -> str:
        """The value of a setting a code path cannot work without (a table name, a queue URL)."""
        value = getattr(self, name)
        if not value:
            raise ConfigurationError(f"Setting {name.upper()} is not configured for this function")
        return value

    def config_path(self) -> Path:
        path = Path(self.bridge_config_file)
        return path if path.is_absolute() else LAYER_ROOT / path

    def overlay_path(self) -> Path:
        """Relative to the checkout (the overlay never ships in the layer)."""
        path = Path(self.bridge_config_overlay)
        return path if path.is_absolute() else LAYER_ROOT.parent.parent / path


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}
_NO_TRAILING_SLASH = {"sendgrid_base_url", "braze_base_url", "infobip_base_url", "public_base_url"}


def _checked(f: "dataclasses.Field[Any]", value: Any) -> Any:
    """One field's value from its environment string (or a value given in code), as the field's type reads
    it; ValueError says what is wrong, never echoing the value (it may be a secret)."""
    kind = f.type
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError("Input should be a valid boolean")
    if kind in (int, "int", float, "float"):
        number: float
        try:
            if kind in (int, "int"):
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                number = int(value)
            else:
                if isinstance(value, bool):
                    raise ValueError
                number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"Input should be a valid {'integer' if kind in (int, 'int') else 'number'}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("Input should be a finite number")
        low, high, open_low = f.metadata.get("low"), f.metadata.get("high"), f.metadata.get("open_low")
        if low is not None and (number <= low if open_low else number < low):
            raise ValueError(f"Input should be greater than {'' if open_low else 'or equal to '}{low}")
        if high is not None and number > high:
            raise ValueError(f"Input should be less than or equal to {high}")
        return number
    if not isinstance(value, str):
        raise ValueError("Input should be a valid string")
    choices = get_args(_LITERALS.get(f.name))
    if choices and value not in choices:
        raise ValueError(f"Input should be {' or '.join(repr(c) for c in choices)}")
    pattern = f.metadata.get("pattern")
    if pattern and not re.match(pattern, value):
        raise ValueError(f"String should match pattern '{pattern}'")
    address = f.metadata.get("address")
    if address and value:
        from martech_bridge.models.email import InvalidEmail, normalize_email  # only when one is set, at INIT

        try:
            normalize_email(value if address is True else f"{address}{value}")
        except InvalidEmail as exc:
            raise ValueError(
                f"the address {'' if address is True else 'reply+<dispatch id>@<this domain> '}{exc}"
            ) from None
    return value.rstrip("/") if f.name in _NO_TRAILING_SLASH else value


_LITERALS: dict[str, Any] = {"default_provider": Provider, "unknown_recipients": UnknownRecipients}


@cache
def get_settings() -> Settings:
    """Settings of this process, read once and cached for warm invocations."""
    return Settings.from_environ(os.environ)


def load_bridge_config() -> "BridgeConfig":
    """The routes and sinks file (with the local overlay, if any), validated; read again when either file
    changes, so a local edit takes effect without a restart. An invalid file stops every request."""
    settings = get_settings()
    files = [settings.config_path()] + ([settings.overlay_path()] if settings.bridge_config_overlay else [])
    stamps = []
    for path in files:
        try:
            stat = path.stat()
            stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
        except OSError:
            stamps.append((str(path), 0, 0))
    return _load_bridge_config(tuple(stamps), settings.stage)


@cache
def _load_bridge_config(stamps: tuple[tuple[str, int, int], ...], stage: str) -> "BridgeConfig":
    config_file = Path(stamps[0][0])
    overlay_file = Path(stamps[1][0]) if len(stamps) > 1 else None
    return read_bridge_config(config_file, overlay_file, stage=stage)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"Cannot read {_shown(path)}: {exc.strerror or exc.__class__.__name__}") from None
    except ValueError as exc:
        raise ConfigurationError(f"{_shown(path)} is not valid JSON: {exc}") from None


def _shown(path: Path) -> str:
    """The path as the user knows it: relative to the checkout when it is inside it."""
    try:
        return str(path.resolve().relative_to(LAYER_ROOT.parent.parent))
    except ValueError:
        return str(path)


def expand_config(data: Any, overlay: Any = None, *, stage: str) -> Any:
    """The routes file as a stage reads it: an overlay's `secrets` replace equal strings (a reference by
    its local value), its `urls` replace a target URL's leading part; then `{stage}` in a secret reference
    becomes the stage, so each stage reads only its own secrets."""
    secrets: dict[str, str] = {}
    urls: dict[str, str] = {}
    if overlay is not None:
        if not isinstance(overlay, dict) or set(overlay) - {"$schema", "$comment", "secrets", "urls"}:
            raise ConfigurationError("The overlay holds only `secrets` and `urls` objects")
        secrets = overlay.get("secrets") or {}
        urls = overlay.get("urls") or {}
        if not all(isinstance(v, str) for v in [*secrets.values(), *urls.values()]):
            raise ConfigurationError("The overlay's `secrets` and `urls` map strings to strings")

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, str):
            return node
        if node in secrets:
            return secrets[node]
        for prefix, local in urls.items():
            if node == prefix or node.startswith(prefix.rstrip("/") + "/"):
                return local.rstrip("/") + node[len(prefix.rstrip("/")) :]
        if node.startswith(("ssm:", "secretsmanager:")):
            return node.replace("{stage}", stage)
        return node

    return walk(data)


def read_bridge_config(
    config_file: Path, overlay_file: Path | None = None, *, stage: str, schema: bool = False
) -> "BridgeConfig":
    """Read, expand and validate a routes file; errors name the file, the route and the field. With `schema`,
    the pydantic schema checks it first (build and start time: its messages are the ones users know)."""
    data = _read_json(config_file)
    overlay = _read_json(overlay_file) if overlay_file else None
    try:
        expanded = expand_config(data, overlay, stage=stage)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{_shown(overlay_file or config_file)}: {exc}") from None
    return parse_bridge_config(expanded, _shown(config_file), schema=schema)


def config_secret_references(config: "BridgeConfig") -> dict[str, list[str]]:
    """Every secret reference the routes and sinks name, with the places that name it."""
    found: dict[str, list[str]] = {}
    items: list[tuple[str, Any]] = [(f"route {n}", r) for n, r in config.routes.items()]
    items += [(f"sink {s.name}", s) for s in config.sinks]
    for where, item in items:
        refs = list(getattr(getattr(item, "auth", None), "secrets", None) or [])
        target = item.target
        refs += list(getattr(target, "api_tokens", None) or [])
        refs += list((getattr(target, "secret_headers", None) or {}).values())
        if getattr(target, "api_token", None):
            refs.append(target.api_token)
        for ref in refs:
            found.setdefault(ref, []).append(where)
    return found


def parse_bridge_config(data: Any, source: str = "bridge config", *, schema: bool = False) -> "BridgeConfig":
    """The routes file's JSON as the functions use it (plain data, every rule checked). `schema`: check it
    with the pydantic schema first, as `sam build` and `make run` do."""
    # Imported here: the functions that read the routes file import models/routes.py at INIT (and load the
    # file there); the events function, which reads only its Settings from this module, never needs it.
    from martech_bridge.models import routes

    if schema:
        check_bridge_config(data, source)
    try:
        return routes.load(data)
    except routes.RoutesFileError as exc:
        raise ConfigurationError(f"Invalid {source}: {exc}") from None


def check_bridge_config(data: Any, source: str = "bridge config") -> None:
    """The build-time check: the pydantic schema (models/route_schema.py), up to five problems at once."""
    # Imported here, not at the top: only the build-time check and devkit call this, never a function.
    from pydantic import ValidationError

    from martech_bridge.models.route_schema import BridgeConfig

    try:
        BridgeConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_where(e["loc"]) + f": {e['msg']}" for e in exc.errors(include_url=False)[:5])
        raise ConfigurationError(f"Invalid {source}: {problems}") from None


def _where(loc: tuple[Any, ...]) -> str:
    """`route marketo-x, field target.app` for a route's field; the dotted path for anything else."""
    parts = [str(p) for p in loc]
    if parts[:1] == ["routes"] and parts[2:] == ["[key]"]:
        return f"route name {parts[1]!r}"
    if len(parts) >= 2 and parts[0] == "routes":
        return f"route {parts[1]}, field {'.'.join(parts[2:]) or '(the route)'}"
    if len(parts) >= 2 and parts[0] == "sinks":
        return f"sink #{parts[1]}, field {'.'.join(parts[2:]) or '(the sink)'}"
    return ".".join(parts) or "(the file)"


def reset() -> None:
    """Forget cached settings and config (tests, and the local stack between invocations)."""
    get_settings.cache_clear()
    _load_bridge_config.cache_clear()
    from martech_bridge import secrets
    from martech_bridge.adapters import aws

    secrets.reset()
    aws.reset()


def check_files(names: list[str], shown_as: str = "layers/common/") -> int:
    """Validate routes files as `sam build` sees them (no overlay, any stage); print each problem."""
    failed = 0
    for name in names:
        try:
            data = json.loads(Path(name).read_text(encoding="utf-8"))
            parse_bridge_config(expand_config(data, stage="build"), shown_as + name, schema=True)
        except (OSError, ValueError, ConfigurationError) as exc:
            message = str(exc) if isinstance(exc, ConfigurationError) else f"{shown_as + name}: {exc}"
            print(message, file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    # `python -m martech_bridge.config config/*.json`: the layer's Makefile runs it inside `sam build`.
    sys.exit(check_files(sys.argv[1:]))
