"""The one place that builds the Logger, Tracer and Metrics every function uses."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

# Service name, namespace, log level and tracer switches come from the POWERTOOLS_* variables that
# template.yaml sets in Globals; nothing here reads the environment itself.
logger = Logger(utc=True)
metrics = Metrics()


def traced(*patch_modules: str) -> Tracer:
    """A function's Tracer, patching only the libraries its path calls: "botocore" for AWS, "httplib" where
    targets or ESPs are called (adapters/http_client.py). patch_all would import requests, sqlite3 and more
    just to patch them. A function whose path needs no subsegments (EventsFunction: one SQS or S3 call)
    builds none: `Tracing: Active` records its invocation without the X-Ray SDK (~30 ms of cold start)."""
    return Tracer(patch_modules=patch_modules)


def __getattr__(name: str) -> Any:
    """`tracer`: AWS and HTTP patched, for a handler that does not say what it calls (built on first import)."""
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
