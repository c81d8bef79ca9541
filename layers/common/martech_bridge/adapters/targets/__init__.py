"""Targets a route or sink can call: one module each, one small interface (base.Target). Adding a kind of
target means adding a module and one line here."""

from martech_bridge.adapters.targets import http, karte, kintone
from martech_bridge.adapters.targets.base import Target

TARGETS: dict[str, Target] = {
    "kintone": kintone.KintoneTargetAdapter(),
    "http": http.HttpTargetAdapter(),
    "karte": karte.KarteTargetAdapter(),
}


def for_kind(kind: str) -> Target:
    return TARGETS[kind]
