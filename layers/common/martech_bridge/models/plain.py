"""Records without pydantic: field checks that fail with pydantic's words and locations, and the
model_validate / model_dump / model_copy the callers use.

Importing pydantic costs each function ~60 ms of CPU at INIT (docs/design.md, "Cold starts"); the request
and stored-record models are a few fields each, so they are slotted dataclasses checked here by hand. The
pydantic models that describe them in openapi.json live in devkit/api_models.py, and a test holds the two
to the same verdicts and error locations (tests/unit/test_request_models.py)."""

import dataclasses
import math
import re
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, Self, TypeVar

Loc = tuple[str | int, ...]
E = TypeVar("E", bound=Enum)
T = TypeVar("T")


class ValidationError(ValueError):
    """The first thing wrong with an input: where (`loc`, as pydantic names it) and why, in pydantic's words."""

    def __init__(self, loc: Loc, msg: str, kind: str = "value_error") -> None:
        self.loc, self.msg, self.kind = loc, msg, kind
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}" if loc else msg)

    def errors(self) -> list[dict[str, Any]]:
        return [{"type": self.kind, "loc": self.loc, "msg": self.msg}]


def value_error(loc: Loc, why: object) -> ValidationError:
    """A check of our own failed (pydantic: a ValueError raised by a validator)."""
    return ValidationError(loc, f"Value error, {why}")


def pattern(regex: str) -> re.Pattern[str]:
    """A JSON Schema pattern as pydantic's (Rust) engine runs it: `$` is the end of the text, not before a
    final line break as Python's `$` would have it."""
    return re.compile(regex[:-1] + r"\Z" if regex.endswith("$") else regex)


def string(
    value: Any, loc: Loc, *, min_length: int = 0, max_length: int | None = None, match: re.Pattern[str] | None = None
) -> str:
    if not isinstance(value, str):
        raise ValidationError(loc, "Input should be a valid string", "string_type")
    if len(value) < min_length:
        s = "" if min_length == 1 else "s"
        raise ValidationError(loc, f"String should have at least {min_length} character{s}", "string_too_short")
    if max_length is not None and len(value) > max_length:
        s = "" if max_length == 1 else "s"
        raise ValidationError(loc, f"String should have at most {max_length} character{s}", "string_too_long")
    if match is not None and not match.search(value):
        shown = match.pattern[:-2] + "$" if match.pattern.endswith(r"\Z") else match.pattern
        raise ValidationError(loc, f"String should match pattern '{shown}'", "string_pattern_mismatch")
    return value


def literal(value: Any, loc: Loc, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in choices:
        return value
    raise ValidationError(loc, f"Input should be {_either(choices)}", "literal_error")


def enum(value: Any, loc: Loc, kind: type[E]) -> E:
    try:
        return kind(value)
    except (ValueError, TypeError):
        raise ValidationError(loc, f"Input should be {_either([m.value for m in kind])}", "enum") from None


def _either(choices: Collection[Any]) -> str:
    shown = [repr(c) for c in choices]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def boolean(value: Any, loc: Loc, *, strict: bool = False) -> bool:
    """pydantic's bool: strict takes only true/false; lax also 0 and 1 (ints or floats) and its yes/no words."""
    if isinstance(value, bool):
        return value
    if not strict:
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        # pydantic reads a whole float in i64 range as the integer it is (2.0 as 2): "unable to interpret".
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, str) or (whole and -(2**63) <= value < 2**63):
            word = value.lower() if isinstance(value, str) else None
            if word in _TRUE or word in _FALSE:
                return word in _TRUE
            raise ValidationError(loc, "Input should be a valid boolean, unable to interpret input", "bool_parsing")
    raise ValidationError(loc, "Input should be a valid boolean", "bool_type")


def integer(value: Any, loc: Loc, *, ge: int | None = None) -> int:
    """A whole number as the stores keep it (an int, or a float without a fraction)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(loc, "Input should be a valid integer", "int_type")
    if ge is not None and value < ge:
        raise ValidationError(loc, f"Input should be greater than or equal to {ge}", "greater_than_equal")
    return value


def timestamp(value: Any, loc: Loc) -> datetime:
    """A datetime as the stores write it (ISO 8601, `Z` for UTC)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError(loc, "Input should be a valid datetime", "datetime_type")


def json_datetime(value: datetime) -> str:
    """A datetime as pydantic writes it in JSON mode (UTC as `Z`), so stored items stay as they were."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def items(value: Any, loc: Loc, *, min_length: int = 0, max_length: int | None = None) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ValidationError(loc, "Input should be a valid list", "list_type")
    if len(value) < min_length:
        s = "" if min_length == 1 else "s"
        raise ValidationError(
            loc, f"List should have at least {min_length} item{s} after validation, not {len(value)}", "too_short"
        )
    if max_length is not None and len(value) > max_length:
        s = "" if max_length == 1 else "s"
        raise ValidationError(
            loc, f"List should have at most {max_length} item{s} after validation, not {len(value)}", "too_long"
        )
    return list(value)


def mapping(value: Any, loc: Loc) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(loc, "Input should be a valid dictionary", "dict_type")
    return dict(value)


def fields(value: Any, loc: Loc, model: str) -> Mapping[str, Any]:
    """The input of a nested model: a JSON object."""
    if isinstance(value, Mapping):
        return value
    raise ValidationError(loc, f"Input should be a valid dictionary or instance of {model}", "model_type")


def required(data: Mapping[str, Any], name: str, loc: Loc) -> Any:
    if name not in data:
        raise ValidationError((*loc, name), "Field required", "missing")
    return data[name]


def no_extra(data: Mapping[str, Any], known: Collection[str], loc: Loc) -> None:
    for key in data:
        if key not in known:
            raise ValidationError((*loc, key), "Extra inputs are not permitted", "extra_forbidden")


def optional(check: Callable[..., T], value: Any, loc: Loc, **kw: Any) -> T | None:
    return None if value is None else check(value, loc, **kw)


class Record:
    """model_dump and model_copy for a dataclass, as pydantic's: fields in order, nested records dumped,
    `mode="json"` writes enums as values and datetimes as pydantic does; `alias` in a field's metadata."""

    __slots__ = ()

    def model_dump(self, *, mode: str = "python", by_alias: bool = False, exclude_none: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and exclude_none:
                continue
            out[f.metadata.get("alias", f.name) if by_alias else f.name] = _dump(value, mode, by_alias, exclude_none)
        return out

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Self:
        return dataclasses.replace(self, **(update or {}))  # type: ignore[type-var]


def _dump(value: Any, mode: str, by_alias: bool, exclude_none: bool) -> Any:
    if isinstance(value, Record):
        return value.model_dump(mode=mode, by_alias=by_alias, exclude_none=exclude_none)
    if isinstance(value, list):
        return [_dump(v, mode, by_alias, exclude_none) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v, mode, by_alias, exclude_none) for k, v in value.items()}
    if mode == "json":
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, datetime):
            return json_datetime(value)
        if isinstance(value, float) and not math.isfinite(value):
            return None  # pydantic's JSON mode writes NaN and the infinities as null (JSON has neither)
    return value
