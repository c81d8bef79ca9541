"""The API functions' resolver: routes, middlewares, exception handlers and answers in payload format 2.0."""

from typing import Any

import pytest
from martech_bridge.api import Response, Router

from devkit.gateway import build_event
from devkit.template import HttpRoute


def event(method: str, path: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> dict[str, Any]:
    return build_event(
        method=method,
        target=path,
        headers=headers or [],
        body=body,
        route=HttpRoute(method, path, "F"),
        path_parameters={},
    )


def test_static_routes_win_over_segments_and_segments_reach_the_handler() -> None:
    app = Router()

    @app.get("/items/<item_id>")
    def one(item_id: str) -> Response:
        return Response(200, "text/plain", f"item {item_id}")

    @app.get("/items/latest")
    def latest() -> Response:
        return Response(200, "text/plain", "latest")

    assert app.resolve(event("GET", "/items/latest"), None)["body"] == "latest"
    assert app.resolve(event("GET", "/items/a%40b.c"), None)["body"] == "item a@b.c"  # API Gateway decodes


def test_a_segment_never_spans_a_slash_and_unknown_paths_reach_the_not_found_handler() -> None:
    app = Router()
    app.get("/items/<item_id>")(lambda item_id: Response(200, body="x"))
    app.not_found(lambda _exc: Response(404, "application/json", '{"error":"nf"}'))
    answer = app.resolve(event("GET", "/items/a/b"), None)
    assert (answer["statusCode"], answer["body"]) == (404, '{"error":"nf"}')
    assert app.resolve(event("POST", "/items/a"), None)["statusCode"] == 404  # another method


def test_middlewares_run_global_first_then_the_routes_and_may_answer_early() -> None:
    app = Router()
    seen: list[str] = []

    def outer(router: Router, nxt: Any) -> Any:
        seen.append("global")
        return nxt(router)

    def guard(router: Router, nxt: Any) -> Any:
        seen.append("route")
        if router.current_event.headers.get("X-Key") != "k":
            return Response(401, body="no")
        return nxt(router)

    app.use([outer])
    app.post("/x", middlewares=[guard])(lambda: Response(200, body="ok"))
    assert app.resolve(event("POST", "/x"), None)["statusCode"] == 401
    assert app.resolve(event("POST", "/x", [("x-key", "k")]), None)["body"] == "ok"
    assert seen == ["global", "route", "global", "route"]


def test_exceptions_reach_the_handler_registered_for_their_nearest_class() -> None:
    app = Router()
    app.exception_handler(Exception)(lambda exc: Response(500, body="bug"))
    app.exception_handler(LookupError)(lambda exc: Response(404, body=type(exc).__name__))

    def fail(kind: type[Exception]) -> Any:
        raise kind()

    app.get("/key")(lambda: fail(KeyError))
    app.get("/boom")(lambda: fail(RuntimeError))
    assert app.resolve(event("GET", "/key"), None)["body"] == "KeyError"
    assert app.resolve(event("GET", "/boom"), None)["body"] == "bug"


def test_an_exception_without_a_handler_propagates() -> None:
    app = Router()

    def fail() -> Response:
        raise ValueError("x")

    app.get("/x")(fail)
    with pytest.raises(ValueError):
        app.resolve(event("GET", "/x"), None)


def test_answers_are_payload_format_2_with_bytes_base64_encoded() -> None:
    app = Router()
    app.get("/bin")(lambda: Response(200, "application/octet-stream", b"\x00\x01", {"X-Many": ["a", "b"]}))
    answer = app.resolve(event("GET", "/bin"), None)
    assert answer == {
        "statusCode": 200,
        "body": "AAE=",
        "isBase64Encoded": True,
        "headers": {"X-Many": "a, b", "Content-Type": "application/octet-stream"},
        "cookies": [],
    }
