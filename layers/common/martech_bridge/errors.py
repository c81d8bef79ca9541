"""Domain exceptions. Each carries the HTTP status and error code the API answers with (api.py maps them)."""

from typing import Any


class BridgeError(Exception):
    """Base of every error the bridge reports to a caller as `{"error": {"code", "message", ...}}`."""

    status: int = 500
    code: str = "internal_error"
    headers: dict[str, str] = {}  # noqa: RUF012 - replaced per instance, never mutated

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = {k: v for k, v in details.items() if v is not None}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class InvalidRequest(BridgeError):
    status, code = 400, "invalid_request"


class Unauthorized(BridgeError):
    status, code = 401, "unauthorized"


class NotFound(BridgeError):
    status, code = 404, "not_found"


class MethodNotAllowed(BridgeError):
    status, code = 405, "method_not_allowed"

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message, allow=allow)
        self.headers = {"Allow": allow}


class Conflict(BridgeError):
    status, code = 409, "conflict"


class PayloadTooLarge(BridgeError):
    status, code = 413, "payload_too_large"


class Unprocessable(BridgeError):
    status, code = 422, "unprocessable"


class DependencyUnavailable(BridgeError):
    """AWS (DynamoDB, SQS, SSM) did not answer; the caller may retry."""

    status, code = 503, "unavailable"


class ConfigurationError(BridgeError):
    """The deployment is misconfigured (missing table name, unreadable config file)."""

    status, code = 500, "configuration_error"


class QuotaExceeded(BridgeError):
    status, code = 429, "quota_exceeded"
