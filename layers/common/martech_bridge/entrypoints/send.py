"""SendFunction entry point: answers 501 until the send issue builds it."""

from martech_bridge.entrypoints.pending import http_handler

handle = http_handler("Mail send", [("POST", "/mail/send")])
