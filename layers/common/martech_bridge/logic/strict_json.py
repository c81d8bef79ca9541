"""The one JSON reader for everything the bridge did not write itself: request bodies, event posts, queue
messages, cursors and the answers of targets and providers. It refuses what `json.loads` lets through but
nothing downstream can use: NaN and Infinity, numbers that overflow (1e400) or integers too long to be
data (Python refuses past 4,300 digits with a ValueError, not a JSONDecodeError), lone UTF-16 surrogates
(valid JSON escapes that no UTF-8 encoder can write) and nesting deeper than anyone sends."""

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
# Longer than any id, amount or timestamp a webhook carries (a 64-bit integer has 20 digits, a kintone
# record number fewer); bounded far below the interpreter's 4,300-digit limit.
MAX_INTEGER_DIGITS = 40
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonRefused(ValueError):
    """The text is not JSON the bridge accepts; the message says why (for a 400, or a target's error)."""


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise JsonRefused(f"an integer has more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"the number {text[:20]} is out of range")
    return value


def _constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_int=_integer, parse_float=_float, parse_constant=_constant)


def may_hold_lone_surrogate(text: str) -> bool:
    """False when nothing parsed from `text` can hold a lone surrogate: it has no \\ud800-\\udfff escape
    and none in the text itself. One look at a whole text (about a tenth of parsing it), instead of a check
    of every value in it."""
    if not text.isascii():
        try:
            text.encode("latin-1")  # every character below U+0100, so no surrogate: a plain copy, fast
        except UnicodeEncodeError:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return True
    # The expression (its literal prefix searched first) is faster here than `in` with a short needle.
    return _SURROGATE_ESCAPE.search(text) is not None


def loads(data: str | bytes, *, max_depth: int | None = MAX_DEPTH) -> Any:
    """Parse JSON text (bytes are read as UTF-8, a BOM allowed); JsonRefused says what is wrong. A caller
    that never recurses into the value may pass max_depth=None and skip the depth walk."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise JsonRefused("not valid UTF-8") from None
    try:
        value = _DECODER.decode(data)
    except json.JSONDecodeError as exc:
        raise JsonRefused(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise JsonRefused("nested too deeply") from None
    except JsonRefused:
        raise
    except ValueError as exc:  # anything else the decoder raises (the interpreter's own digit limit)
        raise JsonRefused(str(exc)[:200]) from None
    # Counting brackets is C-speed; the walk runs only when the text could nest that deep at all.
    if max_depth is not None and data.count("{") + data.count("[") > max_depth and _depth(value, max_depth) > max_depth:
        raise JsonRefused(f"nested deeper than {max_depth} levels")
    # Only a \uD8xx-\uDFxx escape can put a surrogate into decoded text; look for lone ones only then.
    if _SURROGATE_ESCAPE.search(data) and _has_lone_surrogate(value):
        raise JsonRefused("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff) that is not text")
    return value


def loads_object(data: str | bytes, *, max_depth: int | None = MAX_DEPTH) -> dict[str, Any]:
    """JSON text that must be one object."""
    value = loads(data, max_depth=max_depth)
    if not isinstance(value, dict):
        raise JsonRefused(f"expected a JSON object, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _depth(value: Any, limit: int, level: int = 0) -> int:
    if level > limit:
        return level
    if isinstance(value, dict):
        return max((_depth(v, limit, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, limit, level + 1) for v in value), default=level + 1)
    return level


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
