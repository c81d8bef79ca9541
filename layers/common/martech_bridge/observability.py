"""The one place that builds the Logger, Tracer and Metrics every function uses."""

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

# Service name, namespace, log level and tracer switches come from the POWERTOOLS_* variables that
# template.yaml sets in Globals; nothing here reads the environment itself.
logger = Logger(utc=True)
metrics = Metrics()
H = TypeVar("H", bound=Callable[..., Any])


class _Untraced:
    """What a handler decorates itself with when the X-Ray SDK is off: nothing added to the invocation."""

    def capture_lambda_handler(self, **_options: Any) -> Callable[[H], H]:
        return lambda handler: handler


def traced(*patch_modules: str) -> Tracer | _Untraced:
    """A function's Tracer, patching only the libraries its path calls: "botocore" for AWS, "httplib" where
    targets or ESPs are called (adapters/http_client.py); patch_all would import requests, sqlite3 and more
    just to patch them. Built only where the Tracer would trace (Powertools' own rule: in Lambda, with
    POWERTOOLS_TRACE_DISABLED false - the template's EnableXRaySdk): elsewhere the X-Ray SDK is not even
    imported (~20-30 ms of every cold start, docs/tracing.md), and `Tracing: Active` alone records each
    invocation's segment."""
    if Tracer._is_tracer_disabled():  # the rule Tracer(...) applies to itself, without importing the SDK
        return _Untraced()
    return Tracer(patch_modules=patch_modules)


def __getattr__(name: str) -> Any:
    """`tracer`: AWS and HTTP patched, for a handler that does not say what it calls (built on first use)."""
    if name == "tracer":
        built = traced("botocore", "httplib")
        globals()["tracer"] = built
        return built
    raise AttributeError(name)


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Count `name` in the flow's aggregate metric (what the alarms and dashboard read) and, with
    dimensions, once more under them - CloudWatch keeps each dimension set as a metric of its own."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if dimensions:
        with single_metric(name=name, unit=MetricUnit.Count, value=value, default_dimensions=dimensions):
            pass


def mask_email(address: str) -> str:
    """Keep enough of an address to find it in logs without writing it down: t***@example.com."""
    local, sep, domain = address.partition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}"
