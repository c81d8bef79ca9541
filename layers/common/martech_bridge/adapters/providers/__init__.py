"""E-mail service providers: one module each behind one small interface (base.Provider). Adding a fourth
ESP means adding its module and one line here."""

from martech_bridge.adapters.providers.base import Provider
from martech_bridge.adapters.providers.braze import Braze
from martech_bridge.adapters.providers.infobip import Infobip
from martech_bridge.adapters.providers.sendgrid import SendGrid

PROVIDERS: dict[str, Provider] = {p.name: p for p in (SendGrid(), Braze(), Infobip())}
