"""`make run`'s console: each function's JSON log line as one readable line (time, level, function, message,
the request id the response's apigw-requestid header carries, a few keys); metric blobs left out."""

import io
import json
import sys
from typing import Any, TextIO

# Keys every Powertools line carries that say nothing about this request.
_SKIP = {
    "timestamp",
    "level",
    "location",
    "service",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "xray_trace_id",
    "sampling_rate",
    "correlation_id",
    "message",
    "exception",
    "exception_name",
    "stack_trace",
}
_MAX_VALUE = 60


def format_line(function: str, line: str) -> str | None:
    """The console form of one line a function printed; None to leave it out (EMF metric blobs)."""
    text = line.rstrip("\n")
    if not text.startswith("{"):
        return f"         {function:<22} {text}" if text.strip() else None
    try:
        data = json.loads(text)
    except ValueError:
        return f"         {function:<22} {text}"
    if not isinstance(data, dict):
        return f"         {function:<22} {text}"
    if "_aws" in data:
        return None  # CloudWatch metrics in EMF; LOG_FORMAT=json shows them
    clock = str(data.get("timestamp", ""))[11:19] or "        "
    level = str(data.get("level", "INFO")).replace("WARNING", "WARN")[:5]
    request = data.get("correlation_id") or data.get("function_request_id") or ""
    extras = " ".join(f"{k}={_short(v)}" for k, v in data.items() if k not in _SKIP)
    parts = [clock, f"{level:<5}", f"{function:<22}", str(data.get("message", ""))]
    if extras:
        parts.append(extras)
    if request:
        parts.append(f"[{request}]")
    out = " ".join(parts)
    if data.get("exception"):
        # The exception's last line says what happened; the full trace stays in LOG_FORMAT=json.
        last = str(data["exception"]).strip().splitlines()[-1:]
        out += f"\n         {'':<22}   {last[0] if last else ''}"
    return out


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


class ConsoleStream(io.TextIOBase):
    """A text stream for a function's sys.stdout/sys.stderr: writes whole lines, reformatted, to `out`."""

    def __init__(self, function: str, out: TextIO) -> None:
        self.function = function
        self.out = out
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            shown = format_line(self.function, line)
            if shown is not None:
                self.out.write(shown + "\n")
                self.out.flush()
        return len(text)

    def flush(self) -> None:
        self.out.flush()


def install(function: str) -> None:
    """Route this process's Python-level output through the console format (called in a function's process
    before its handler is imported, so Powertools' handlers bind to it)."""
    import warnings

    # Powertools warns on every invocation that emits no metric; noise on a console.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    out = sys.__stdout__ or sys.stdout
    stream = ConsoleStream(function, out)
    sys.stdout = stream  # type: ignore[assignment]
    sys.stderr = stream  # type: ignore[assignment]
