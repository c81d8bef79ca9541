"""SweeperFunction: on its schedule (every minute; `make run` every SWEEP_INTERVAL seconds), moves on every
delivery whose due time or lease has passed by the grace period (deliveries.Engine.sweep)."""

from typing import Any

import msgspec
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.config import load_bridge_config
from martech_bridge.deliveries import delivery_engine

# At INIT: a routes file that somehow skipped the build's check stops the function here, naming the file, the
# route and the field, instead of failing every request (models/routes.py loads it; cached for the requests).
load_bridge_config()


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Leave the last 10 s of the function's time unused: a sweep cut short is finished by the next one.
    report = delivery_engine().sweep(seconds=context.get_remaining_time_in_millis() / 1000 - 10)
    return msgspec.structs.asdict(report)
