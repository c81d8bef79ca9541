"""SweeperFunction: on its schedule (every minute; `make run` every SWEEP_INTERVAL seconds), moves on every
delivery whose due time or lease has passed by the grace period (deliveries.Engine.sweep)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.dependencies import delivery_engine


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = delivery_engine().sweep()
    return dict(report.__dict__)
