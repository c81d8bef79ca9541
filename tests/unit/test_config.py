"""Settings come from the environment once, validated; secrets are references, literals only when allowed."""

import pytest
from martech_bridge import secrets
from martech_bridge.config import Settings, get_settings, reset
from martech_bridge.errors import ConfigurationError


def test_every_declared_variable_maps_to_a_field() -> None:
    settings = Settings.from_environ(
        {
            "STAGE": "prod",
            "RETENTION_DAYS": "90",
            "SUBSCRIPTIONS_TABLE": "subs",
            "SENDGRID_BASE_URL": "https://api.sendgrid.com/",
            "UNRELATED": "x",
        }
    )
    assert (settings.stage, settings.retention_days, settings.subscriptions_table) == ("prod", 90, "subs")
    assert settings.sendgrid_base_url == "https://api.sendgrid.com"


def test_invalid_values_name_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="RETENTION_DAYS"):
        Settings.from_environ({"RETENTION_DAYS": "forever"})
    with pytest.raises(ConfigurationError, match="DEFAULT_PROVIDER"):
        Settings.from_environ({"DEFAULT_PROVIDER": "mailchimp"})


def test_missing_required_setting_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="SUBSCRIPTIONS_TABLE is not configured"):
        Settings.from_environ({}).require("subscriptions_table")


def test_settings_are_read_once_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGE", "first")
    reset()
    assert get_settings().stage == "first"
    monkeypatch.setenv("STAGE", "second")
    assert get_settings().stage == "first"
    reset()
    assert get_settings().stage == "second"
    reset()


def test_secret_values_are_not_in_the_settings_repr() -> None:
    settings = Settings.from_environ({"API_KEYS": "super-secret-value"})
    assert "super-secret-value" not in repr(settings)


def test_literal_secret_refused_unless_allowed_and_never_echoed() -> None:
    with pytest.raises(ConfigurationError) as caught:
        secrets.resolve("api_keys", "pasted-key-123", allow_plaintext=False)
    assert "pasted-key-123" not in str(caught.value)
    assert secrets.resolve("api_keys", "pasted-key-123", allow_plaintext=True) == "pasted-key-123"


def test_empty_secret_means_not_configured() -> None:
    assert secrets.resolve_list("api_keys", "", allow_plaintext=False) == ()


def test_secret_lists_split_on_commas_and_newlines() -> None:
    assert secrets.resolve_list("api_keys", " k1, k2\nk3,, ", allow_plaintext=True) == ("k1", "k2", "k3")


def test_settings_read_numbers_booleans_and_choices_as_their_types() -> None:
    settings = Settings.from_environ(
        {"RETENTION_DAYS": "90", "SEND_DEADLINE_SECONDS": "2.5", "ALLOW_PLAINTEXT_SECRETS": "TRUE", "STAGE": "dev"}
    )
    assert (settings.retention_days, settings.send_deadline_seconds) == (90, 2.5)
    assert settings.allow_plaintext_secrets is True
    assert Settings.from_environ({"SENDGRID_SANDBOX_MODE": "off"}).sendgrid_sandbox_mode is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RETENTION_DAYS", "0"),  # below its range
        ("RETENTION_DAYS", "1.5"),  # not a whole number
        ("MAX_REQUEST_BYTES", "99999999"),  # above its range
        ("SEND_DEADLINE_SECONDS", "1"),  # the lower bound itself is excluded
        ("SWEEP_GRACE_SECONDS", "nan"),
        ("ALLOW_PLAINTEXT_SECRETS", "maybe"),
        ("UNKNOWN_RECIPIENTS", "everyone"),
    ],
)
def test_out_of_range_or_unreadable_settings_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_environ({variable: value})


def test_an_invalid_secret_setting_is_refused_without_its_value() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(api_keys=123)  # type: ignore[arg-type]
    assert "API_KEYS" in str(caught.value) and "123" not in str(caught.value)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.stage = "prod"  # type: ignore[misc]


@pytest.mark.parametrize("variable", ["DEFAULT_FROM_EMAIL", "DEFAULT_REPLY_TO"])
@pytest.mark.parametrize("value", ["noreply@intranet", "no reply@example.com", "noreply"])
def test_a_default_address_the_send_checks_refuse_is_refused_at_start_without_its_value(
    variable: str, value: str
) -> None:
    """Every send builds its From and Reply-To from these with the request's address checks: an address they
    refuse would make every send a 500, so the function does not start, naming the variable."""
    with pytest.raises(ConfigurationError, match=variable) as caught:
        Settings.from_environ({variable: value})
    assert value not in str(caught.value)


def test_default_addresses_the_send_checks_take_are_read() -> None:
    settings = Settings.from_environ({"DEFAULT_FROM_EMAIL": "News@Example.com", "DEFAULT_REPLY_TO": ""})
    assert (settings.default_from_email, settings.default_reply_to) == ("News@Example.com", "")


@pytest.mark.parametrize(
    "value", ["localhost", "replies..example.com", "replies.example.c0m", "a" * 60 + ".b" * 80 + ".jp"]
)
def test_a_reply_domain_the_send_checks_refuse_is_refused_at_start(value: str) -> None:
    """A send's Reply-To is reply+<dispatch id>@REPLY_DOMAIN, checked as a request's address: a domain that
    check refuses (or too long for the whole address) would make every send a 500."""
    with pytest.raises(ConfigurationError, match="REPLY_DOMAIN"):
        Settings.from_environ({"REPLY_DOMAIN": value})
    assert Settings.from_environ({"REPLY_DOMAIN": "Replies.Example.com"}).reply_domain == "Replies.Example.com"
