"""Resolve secret settings: `ssm:/name` and `secretsmanager:name` references (cached for a few minutes, so
rotation takes effect without a deploy), literals only where allowed.

Read with the process's shared clients (adapters/aws.py), not Powertools Parameters: Parameters builds a
boto3 session of its own (botocore's data loaded a second time) and its import; together they cost a
cold start more than 20 ms on every function that holds a secret (docs/design.md, "Cold starts")."""

import threading
import time
from functools import cache

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.errors import ConfigurationError, DependencyUnavailable

SECRET_MAX_AGE_SECONDS = 300


@cache
def _literal_warning_issued() -> bool:
    from martech_bridge.observability import logger

    logger.warning("Secret settings hold literal values (ALLOW_PLAINTEXT_SECRETS=true); for local use only")
    return True


def resolve(setting_name: str, reference: str, *, allow_plaintext: bool) -> str:
    """The secret's value, or "" when the setting is empty (not configured: callers fail closed)."""
    if not reference:
        return ""
    scheme, sep, name = reference.partition(":")
    if sep and scheme == "ssm" and name.startswith("/"):
        return _fetch(setting_name, "ssm", name)
    if sep and scheme == "secretsmanager" and name:
        return _fetch(setting_name, "secretsmanager", name)
    if allow_plaintext:
        _literal_warning_issued()
        return reference
    # Never echo the value: it may be the secret itself, pasted where a reference belongs.
    raise ConfigurationError(f"{_label(setting_name)} must be a reference (ssm:/name or secretsmanager:name)")


def _label(setting_name: str) -> str:
    """ "Setting API_KEYS" for a setting; a description, as given, for anything else."""
    return f"Setting {setting_name.upper()}" if setting_name.isidentifier() else setting_name


def resolve_list(setting_name: str, reference: str, *, allow_plaintext: bool) -> tuple[str, ...]:
    """A secret holding several values (rotation): comma- or newline-separated."""
    raw = resolve(setting_name, reference, allow_plaintext=allow_plaintext)
    return tuple(v.strip() for v in raw.replace("\n", ",").split(",") if v.strip())


_cache: dict[tuple[str, str], tuple[float, str]] = {}
_cache_lock = threading.Lock()


def _fetch(setting_name: str, store: str, name: str) -> str:
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get((store, name))
    if hit is not None and hit[0] > now:
        return hit[1]
    try:
        if store == "ssm":
            value = aws.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        else:
            answer = aws.client("secretsmanager").get_secret_value(SecretId=name)
            value = answer["SecretString"] if "SecretString" in answer else answer["SecretBinary"].decode("utf-8")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ParameterNotFound", "ResourceNotFoundException"):
            raise ConfigurationError(
                f"{_label(setting_name)} refers to a secret that does not exist in {store}"
            ) from None
        raise DependencyUnavailable(f"Could not read the secret of {_label(setting_name)}") from None
    except (BotoCoreError, UnicodeDecodeError):
        raise DependencyUnavailable(f"Could not read the secret of {_label(setting_name)}") from None
    with _cache_lock:
        _cache[(store, name)] = (now + SECRET_MAX_AGE_SECONDS, str(value))
    return str(value)


def reset() -> None:
    _literal_warning_issued.cache_clear()
    with _cache_lock:
        _cache.clear()
