"""Resolve secret settings: `ssm:/name` and `secretsmanager:name` references through Powertools Parameters
(cached for a few minutes, so rotation takes effect without a deploy), literals only where allowed."""

from functools import cache

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


def _fetch(setting_name: str, store: str, name: str) -> str:
    # Imported here: Parameters pulls in boto3, which functions without secrets should not pay for.
    from aws_lambda_powertools.utilities import parameters
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if store == "ssm":
            value = parameters.get_parameter(name, decrypt=True, max_age=SECRET_MAX_AGE_SECONDS)
        else:
            value = parameters.get_secret(name, max_age=SECRET_MAX_AGE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        # Powertools re-raises without `from`, so the ClientError is the implicit context.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError) and cause.response["Error"]["Code"] in (
            "ParameterNotFound",
            "ResourceNotFoundException",
        ):
            raise ConfigurationError(
                f"{_label(setting_name)} refers to a secret that does not exist in {store}"
            ) from None
        raise DependencyUnavailable(f"Could not read the secret of {_label(setting_name)}") from None
    except (BotoCoreError, ClientError):
        raise DependencyUnavailable(f"Could not read the secret of {_label(setting_name)}") from None
    return str(value)


def reset() -> None:
    _literal_warning_issued.cache_clear()
    try:
        from aws_lambda_powertools.utilities import parameters
    except ImportError:  # pragma: no cover - powertools is a hard dependency
        return
    parameters.clear_caches()
