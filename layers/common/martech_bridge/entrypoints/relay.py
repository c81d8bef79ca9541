"""RelayFunction entry point: answers 501 until the relay issue builds it."""

from martech_bridge.entrypoints.pending import http_handler

handle = http_handler("Relay", [("POST", "/relay/<route>"), ("GET", "/relay/<route>")])
