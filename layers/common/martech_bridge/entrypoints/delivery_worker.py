"""DeliveryWorkerFunction entry point: hands records back until the relay issue builds it."""

from martech_bridge.entrypoints.pending import queue_handler

handle = queue_handler("Delivery retries")
