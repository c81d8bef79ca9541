"""The routes file read both ways must agree: the pydantic schema `sam build` and `make run` check it with
(models/route_schema.py) and the plain loader the functions use (models/routes.py) accept and refuse the same
files, and read the same values from the ones they accept."""

import json
from typing import Any

import msgspec
from martech_bridge.models import route_schema, routes
from pydantic import ValidationError


def _canonical(value: Any) -> str:
    """JSON text with sorted keys, numbers as floats, without null members. The schema keeps a float field's
    default as written (2, not 2.0) and writes an absent `const` as null, where the plain reading leaves it out
    (a null `const` and none at all differ only in whether `path` may be null, which the accept/refuse half of
    the comparison covers). Each reading refuses a float where an integer belongs, so no difference hides."""

    def plain(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: plain(v) for k, v in node.items() if v is not None}
        if isinstance(node, list):
            return [plain(v) for v in node]
        if isinstance(node, int) and not isinstance(node, bool):
            return float(node)
        return node

    return json.dumps(plain(value), sort_keys=True, ensure_ascii=False)


def schema_reading(data: Any) -> str | None:
    try:
        model = route_schema.BridgeConfig.model_validate(data)
    except ValidationError:
        return None
    return _canonical(model.model_dump(by_alias=True))


def plain_reading(data: Any) -> str | None:
    try:
        config = routes.load(data)
    except routes.RoutesFileError:
        return None
    return _canonical(msgspec.to_builtins(config))


def assert_read_alike(data: Any) -> bool:
    """Both accept with equal values (True) or both refuse (False); AssertionError otherwise."""
    schema, plain = schema_reading(data), plain_reading(data)
    assert (schema is None) == (plain is None), (
        f"the schema {'refuses' if schema is None else 'accepts'} and the loader "
        f"{'refuses' if plain is None else 'accepts'}: {json.dumps(data, default=repr)[:2000]}"
    )
    assert schema == plain, f"different values:\nschema {schema}\nloader {plain}"
    return schema is not None
