"""EventWorkerFunction entry point: hands records back until the events issue builds it."""

from martech_bridge.entrypoints.pending import queue_handler

handle = queue_handler("ESP event processing")
