"""The console page's own defences: what a browser is told about framing, and what the key form can leak."""

from html.parser import HTMLParser

from martech_bridge.console import console_page


def test_the_console_refuses_to_be_framed_in_browsers_without_csp_frame_ancestors() -> None:
    headers = console_page().headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"  # older browsers and embedded views ignore frame-ancestors


def test_the_key_field_can_never_be_submitted_into_a_url() -> None:
    """Without the script (slow, blocked, hash mismatch), pressing Enter submits the form natively: a GET
    form with a named key field would put the key in the address bar, history and access logs."""

    class Fields(HTMLParser):
        forms: dict[str, dict[str, str | None]] = {}
        current = ""
        key_field: dict[str, str | None] = {}

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found = dict(attrs)
            if tag == "form":
                self.current = found.get("id") or ""
                self.forms[self.current] = found
            if tag == "input" and found.get("id") == "api-key":
                self.key_field = {**found, "form": self.current}

    parsed = Fields()
    parsed.feed(console_page().html)
    assert parsed.key_field["type"] == "password"
    assert "name" not in parsed.key_field  # an unnamed control is never part of a submitted form
    assert (parsed.forms[str(parsed.key_field["form"])].get("method") or "get").lower() == "post"
    assert "form-action 'none'" in console_page().headers["Content-Security-Policy"]
