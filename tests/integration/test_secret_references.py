"""In AWS, secret settings are references resolved through Powertools Parameters; here moto's SSM and
Secrets Manager stand in. A missing secret fails closed and the error never shows the secret."""

import pytest

from tests.conftest import Functions, http_body, load_event

REF_ENV = {"ALLOW_PLAINTEXT_SECRETS": "false"}


def get_with_key(functions: Functions, key: str | None, **env: str) -> dict:
    event = load_event("query-get-subscription.json")
    if key is None:
        event["headers"].pop("x-api-key")
    else:
        event["headers"]["x-api-key"] = key
    return functions.invoke("QueryFunction", event, **env)


def test_api_keys_from_an_ssm_secure_string(functions: Functions, moto_server) -> None:
    moto_server.client("ssm").put_parameter(
        Name="/martech-bridge/test/api-keys", Type="SecureString", Value="ssm-key-old,ssm-key-new", Overwrite=True
    )
    env = {**REF_ENV, "API_KEYS": "ssm:/martech-bridge/test/api-keys"}
    assert get_with_key(functions, "ssm-key-new", **env)["statusCode"] in (200, 404)
    assert get_with_key(functions, "ssm-key-old", **env)["statusCode"] in (200, 404)
    assert get_with_key(functions, "local-dev-key-1", **env)["statusCode"] == 401


def test_api_keys_from_secrets_manager(functions: Functions, moto_server) -> None:
    moto_server.client("secretsmanager").create_secret(Name="martech-bridge/test/api-keys", SecretString="sm-key")
    env = {**REF_ENV, "API_KEYS": "secretsmanager:martech-bridge/test/api-keys"}
    assert get_with_key(functions, "sm-key", **env)["statusCode"] in (200, 404)
    assert get_with_key(functions, "other", **env)["statusCode"] == 401


def test_missing_secret_fails_closed_without_detail(functions: Functions) -> None:
    env = {**REF_ENV, "API_KEYS": "ssm:/martech-bridge/test/does-not-exist"}
    result = get_with_key(functions, "anything", **env)
    body = http_body(result)
    assert result["statusCode"] == 500 and body["error"]["code"] == "configuration_error"
    assert "does-not-exist" not in result["body"]


@pytest.mark.parametrize("value", ["plaintext-key-in-template"])
def test_literal_secret_outside_local_mode_is_refused(functions: Functions, value: str) -> None:
    result = get_with_key(functions, value, **REF_ENV, API_KEYS=value)
    assert result["statusCode"] == 500 and value not in result["body"]
