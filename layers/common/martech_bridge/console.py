"""The operator console: the one HTML page (console.html, beside this module) and the headers it is served with."""

import base64
import hashlib
import re
from functools import cache
from pathlib import Path

import msgspec

PAGE = Path(__file__).with_name("console.html")


class ConsolePage(msgspec.Struct, frozen=True):
    html: str
    headers: dict[str, str]


def _hashes(html: str, tag: str) -> str:
    """CSP hashes of each inline <script> or <style>: only the page's own code runs, nothing injected."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)


@cache
def console_page() -> ConsolePage:
    html = PAGE.read_text(encoding="utf-8")
    policy = (
        f"default-src 'none'; script-src {_hashes(html, 'script')}; style-src {_hashes(html, 'style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return ConsolePage(
        html=html,
        headers={
            "Content-Security-Policy": policy,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            # frame-ancestors is ignored by older browsers and some embedded views: no framing there either.
            "X-Frame-Options": "DENY",
        },
    )
