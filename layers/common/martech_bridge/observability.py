"""The one place that builds the Logger, Tracer and Metrics every function uses."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

# Service name, namespace, log level and tracer switches come from the POWERTOOLS_* variables that
# template.yaml sets in Globals; nothing here reads the environment itself.
logger = Logger(utc=True)
# Patch only what the functions call: AWS through botocore, targets and ESPs through http.client
# (adapters/http_client.py). patch_all would import requests, sqlite3 and more just to patch them.
tracer = Tracer(patch_modules=("botocore", "httplib"))
metrics = Metrics()


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
