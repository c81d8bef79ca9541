"""EventsFunction entry point: answers 501 until the events issue builds it."""

from martech_bridge.entrypoints.pending import http_handler

handle = http_handler("ESP event ingestion", [("POST", "/events/<provider>")])
