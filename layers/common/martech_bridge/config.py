"""Settings: every environment variable template.yaml declares, parsed once into a validated model.

Secret settings hold a *reference* (`ssm:/path` or `secretsmanager:name`) that secrets.py resolves;
locally, with ALLOW_PLAINTEXT_SECRETS=true, they may hold the value itself. Logic never reads
os.environ: it receives a Settings (or plain values taken from one).
"""

import json
import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from martech_bridge.errors import ConfigurationError

if TYPE_CHECKING:
    from martech_bridge.models.routes import BridgeConfig

Provider = Literal["sendgrid", "braze", "infobip"]
# A secret setting: a reference, a literal (local only) or empty for "not configured".
SecretSetting = Annotated[str, Field(default="", repr=False)]

# The directory the layer's files sit in: /opt/python in Lambda, layers/common in a checkout.
LAYER_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseModel):
    """One field per environment variable; the variable's name is the field's name in upper case."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    stage: str = "local"
    retention_days: int = Field(default=30, ge=1, le=3650)
    max_request_bytes: int = Field(default=1_048_576, ge=1024, le=10 * 1024 * 1024)
    bridge_config_file: str = "config/bridge.json"
    allow_plaintext_secrets: bool = False

    # State
    messages_table: str = ""
    deliveries_table: str = ""
    subscriptions_table: str = ""
    idempotency_table: str = ""
    dedupe_table: str = ""
    payload_bucket: str = ""
    delivery_queue_url: str = ""
    delivery_dlq_url: str = ""
    event_queue_url: str = ""
    send_queue_url: str = ""  # Braze recipients not sent within a request's deadline
    sweep_grace_seconds: float = Field(default=60, ge=1, le=3600)

    # Operator API
    api_keys: SecretSetting

    # Sending
    default_provider: Provider = "sendgrid"
    default_from_email: str = ""
    default_from_name: str = ""
    default_reply_to: str = ""
    unknown_recipients: Literal["subscribed", "unsubscribed"] = "subscribed"
    sendgrid_sandbox_mode: bool = False
    send_deadline_seconds: float = Field(default=20, gt=1, le=28)
    provider_timeout_seconds: float = Field(default=10, gt=0.5, le=25)
    send_concurrency: int = Field(default=16, ge=1, le=64)  # Braze calls in flight at once (one per recipient)
    public_base_url: str = ""
    sendgrid_api_key: SecretSetting
    sendgrid_base_url: str = "https://api.sendgrid.com"
    braze_api_key: SecretSetting
    braze_base_url: str = "https://rest.iad-01.braze.com"
    infobip_api_key: SecretSetting
    infobip_base_url: str = "https://api.infobip.com"

    # Event webhooks
    sendgrid_webhook_public_keys: SecretSetting
    braze_postback_secret: SecretSetting
    infobip_webhook_secret: SecretSetting
    insecure_accept_unsigned_events: bool = False
    # SendGrid retries for up to 24 h and does not say whether retries are signed afresh: a day by default.
    sendgrid_webhook_max_age_seconds: float = Field(default=86_400, ge=60, le=7 * 86_400)

    @field_validator("sendgrid_base_url", "braze_base_url", "infobip_base_url", "public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def from_environ(cls, environ: dict[str, str] | os._Environ[str]) -> "Settings":
        values = {name: environ[name.upper()] for name in cls.model_fields if name.upper() in environ}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
            raise ConfigurationError(f"Invalid settings: {problems}") from None

    def require(self, name: str) -> str:
        """The value of a setting a code path cannot work without (a table name, a queue URL)."""
        value = getattr(self, name)
        if not value:
            raise ConfigurationError(f"Setting {name.upper()} is not configured for this function")
        return value

    def config_path(self) -> Path:
        path = Path(self.bridge_config_file)
        return path if path.is_absolute() else LAYER_ROOT / path


@cache
def get_settings() -> Settings:
    """Settings of this process, read once and cached for warm invocations."""
    return Settings.from_environ(os.environ)


@cache
def load_bridge_config() -> "BridgeConfig":
    """The routes and sinks file, validated; an invalid file stops every request with a clear error."""

    path = get_settings().config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"Cannot read bridge config {path.name}: {exc.__class__.__name__}") from None
    return parse_bridge_config(data, path.name)


def parse_bridge_config(data: Any, source: str = "bridge config") -> "BridgeConfig":
    from martech_bridge.models.routes import BridgeConfig

    try:
        return BridgeConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)[:5]
        )
        raise ConfigurationError(f"Invalid {source}: {problems}") from None


def reset() -> None:
    """Forget cached settings and config (tests, and the local stack between invocations)."""
    get_settings.cache_clear()
    load_bridge_config.cache_clear()
    from martech_bridge import dependencies, secrets

    secrets.reset()
    dependencies.reset()
