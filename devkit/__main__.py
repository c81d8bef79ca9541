"""Command line of the local stack: `python -m devkit run|invoke|check-layer` (the Makefile's run, invoke, build)."""

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from devkit.runtime import DEFAULT_AWS_PORT, ENV_JSON


def _run(args: argparse.Namespace) -> int:
    from devkit.routes_file import check_for_run
    from devkit.stack import STATE_FILE, LocalStack

    # A bad routes file stops the start, naming the file, the route and the field, before anything serves.
    problem = check_for_run(Path(args.env_vars))
    if problem:
        print(f"Cannot start: {problem}", file=sys.stderr)
        return 2

    def log(line: str) -> None:
        print(line, file=sys.stderr if args.quiet else sys.stdout, flush=True)

    stack = LocalStack(
        port=args.port,
        sandbox_port=args.sandbox_port,
        moto_port=args.aws_port,
        visibility_timeout=args.visibility_timeout,
        env_json=Path(args.env_vars),
        log=log,
        concurrency=args.concurrency,
        state_file=STATE_FILE if args.state_file else None,
        console=os.environ.get("LOG_FORMAT", "").lower() != "json",
        persist=os.environ.get("PERSIST", "") not in ("", "0", "false"),
    )
    taken = _taken_port({"PORT": args.port, "SANDBOX_PORT": args.sandbox_port, "AWS_PORT": args.aws_port})
    if taken:
        print(f"Cannot start: {taken} (another `make run`? stop it, or pick another port)", file=sys.stderr)
        return 1
    stopping = threading.Event()
    # Installed explicitly: a shell starts background jobs with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt; `kill -INT` must stop the stack however it was started.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        stack.start()
        print(stack.banner(), flush=True)
        print(f"READY {stack.gateway.url}", flush=True)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"Cannot start the local stack: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    print("Stopping...", flush=True)
    stack.stop()
    print("Stopped.", flush=True)
    return 0


def _taken_port(ports: dict[str, int]) -> str | None:
    """Which of the stack's fixed ports other processes hold, each said with the variable that moves it, and
    one command that moves them all (naming one at a time made the user retry once per port)."""
    import errno
    import socket

    taken: dict[str, int] = {}
    for variable, port in ports.items():
        if not port:
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                taken[variable] = port
    if not taken:
        return None
    which = ", ".join(f"port {port} ({variable})" for variable, port in taken.items())
    move = " ".join(f"{variable}={port + 10}" for variable, port in taken.items())
    return f"{which} {'is' if len(taken) == 1 else 'are'} in use; e.g. {move} make run"


def _invoke(args: argparse.Namespace) -> int:
    from devkit.invoke import invoke

    return invoke(args.function, Path(args.event), Path(args.env_vars))


def _post_eml(args: argparse.Namespace) -> int:
    from devkit.inbound import post_eml

    return post_eml(Path(args.file), Path(args.env_vars), args.dispatch, auth=args.auth)


def _post_sendgrid(args: argparse.Namespace) -> int:
    import json
    from urllib.request import Request, urlopen

    from devkit.signing import sendgrid_headers

    body = Path(args.file).read_bytes()
    request = Request(  # noqa: S310 - the local stack's address (or one the user names)
        f"{args.api.rstrip('/')}/events/sendgrid",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **sendgrid_headers(body)},
    )
    with urlopen(request, timeout=30) as answer:  # noqa: S310 - the local stack
        print(json.dumps(json.loads(answer.read()), ensure_ascii=False))
    return 0


def _post_events(args: argparse.Namespace) -> int:
    """Post a payload file as the ESP would: Braze one postback per request with its secret, Infobip its
    report batch and each tracking notification with the shared secret (mail sent outside the bridge)."""
    import json
    from urllib.error import HTTPError
    from urllib.request import Request, urlopen

    from devkit.runtime import load_env_json

    events_env = load_env_json(Path(args.env_vars)).get("EventsFunction", {})
    data = json.loads(Path(args.file).read_text(encoding="utf-8"))
    if args.provider == "braze":
        posts = data if isinstance(data, list) else [data]
        headers = {"X-Webhook-Token": events_env.get("BRAZE_POSTBACK_SECRET", "").split(",")[0]}
        query = ""
    else:
        posts = ([data["reports"]] if "reports" in data else []) + list(data.get("tracking", []))
        posts = posts or [data]
        headers, query = {}, f"?token={events_env.get('INFOBIP_WEBHOOK_SECRET', '').split(',')[0]}"
    failed = 0
    for post in posts:
        request = Request(  # noqa: S310 - the local stack's address (or one the user names)
            f"{args.api.rstrip('/')}/events/{args.provider}{query}",
            data=json.dumps(post, ensure_ascii=False).encode("utf-8"),
            method="POST",
            headers={"Content-Type": "application/json", **headers},
        )
        try:
            with urlopen(request, timeout=30) as answer:  # noqa: S310 - the local stack
                print(json.dumps(json.loads(answer.read()), ensure_ascii=False))
        except HTTPError as exc:
            failed += 1
            print(exc.read().decode("utf-8", "replace"), file=sys.stderr)
    return 1 if failed else 0


def _post_karte_hook(args: argparse.Namespace) -> int:
    import json
    from urllib.error import HTTPError
    from urllib.request import Request, urlopen

    from devkit.routes_file import OVERLAY_FILE
    from devkit.signing import karte_hook_headers

    # The route's client secret as the local overlay gives it.
    secret = json.loads(OVERLAY_FILE.read_text())["secrets"][f"ssm:/martech-bridge/{{stage}}/routes/{args.secret}"]
    body = Path(args.file).read_bytes()
    request = Request(  # noqa: S310 - the local stack's address (or one the user names)
        f"{args.api.rstrip('/')}/relay/{args.route}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **karte_hook_headers(body, secret)},
    )
    try:
        with urlopen(request, timeout=30) as answer:  # noqa: S310 - the local stack
            print(json.dumps(json.loads(answer.read()), ensure_ascii=False))
    except HTTPError as exc:
        print(exc.read().decode("utf-8", "replace"), file=sys.stderr)
        return 1
    return 0


def _check_layer(args: argparse.Namespace) -> int:
    from devkit.layer import check_layer

    return check_layer(Path(args.build_dir), max_mb=args.max_mb, prune=args.prune)


def _check_config(args: argparse.Namespace) -> int:
    from devkit.routes_file import main_check

    return main_check(args.config, None if args.no_overlay else args.overlay, args.stage)


def _reset(args: argparse.Namespace) -> int:
    from devkit.persist import TABLES_FILE, reset

    print(f"Forgot {TABLES_FILE.name}" if reset() else "Nothing kept (PERSIST=1 make run keeps state)")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from devkit.routes_file import main_schema

    return main_schema(args.write)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the local stack (make run)")
    run.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", "3000")), help="HTTP API port (PORT; default 3000)"
    )
    run.add_argument(
        "--sandbox-port",
        type=int,
        default=int(os.environ.get("SANDBOX_PORT", "3100")),
        help="provider sandbox port (SANDBOX_PORT; default 3100)",
    )
    run.add_argument(
        "--aws-port",
        type=int,
        default=int(os.environ.get("AWS_PORT", str(DEFAULT_AWS_PORT))),
        help="moto server port (AWS_PORT; default %(default)s, which env.json's AWS_ENDPOINT_URL names)",
    )
    run.add_argument(
        "--visibility-timeout",
        type=int,
        default=None,
        help="override the queues' visibility timeout, in seconds, so retries come sooner",
    )
    run.add_argument("--concurrency", type=int, default=2, help="warm instances per function")
    run.add_argument("--env-vars", "-n", default=str(ENV_JSON), help="settings per function (default env.json)")
    run.add_argument(
        "--no-state-file", dest="state_file", action="store_false", help="do not advertise this stack to `make invoke`"
    )
    run.add_argument("--quiet", action="store_true", help="request log lines to stderr")
    run.set_defaults(func=_run)

    inv = sub.add_parser("invoke", help="invoke one function once (make invoke)")
    inv.add_argument("function", help="logical id in template.yaml, e.g. QueryFunction")
    inv.add_argument("--event", "-e", required=True)
    inv.add_argument("--env-vars", "-n", default=str(ENV_JSON))
    inv.set_defaults(func=_invoke)

    eml = sub.add_parser("post-eml", help="a received .eml through InboundMailFunction, as SES + S3 deliver it")
    eml.add_argument("file", help="the message, raw RFC 5322 (.eml)")
    eml.add_argument("--dispatch", help="address the reply to reply+<this dispatch id>@ (a send of yours)")
    eml.add_argument(
        "--auth",
        choices=("pass", "fail", "none"),
        default="pass",
        help="SIMULATED SES Authentication-Results to prepend (nothing is checked): pass (default) or fail for"
        " the From domain; none stores the file unchanged (one saved from a real SES bucket has SES's own)",
    )
    eml.add_argument("--env-vars", "-n", default=str(ENV_JSON))
    eml.set_defaults(func=_post_eml)

    post = sub.add_parser("post-sendgrid", help="post a SendGrid event batch, signed with the local key")
    post.add_argument("file", help="a JSON array of SendGrid events")
    post.add_argument("--api", default=f"http://127.0.0.1:{os.environ.get('PORT', '3000')}")
    post.set_defaults(func=_post_sendgrid)

    events = sub.add_parser("post-events", help="post a Braze or Infobip payload file with the local secrets")
    events.add_argument("provider", choices=["braze", "infobip"])
    events.add_argument("file", help="events/payloads/braze-postbacks.json or infobip-notifications.json")
    events.add_argument("--api", default=f"http://127.0.0.1:{os.environ.get('PORT', '3000')}")
    events.add_argument("--env-vars", "-n", default=str(ENV_JSON))
    events.set_defaults(func=_post_events)

    karte = sub.add_parser("post-karte-hook", help="post a KARTE Hook v2 body to a relay route, HMAC-signed")
    karte.add_argument("file", help="the JSON body KARTE would send")
    karte.add_argument("--route", default="karte-hook-message")
    karte.add_argument("--secret", default="karte-client-secret", help="the overlay's secret name (routes/...)")
    karte.add_argument("--api", default=f"http://127.0.0.1:{os.environ.get('PORT', '3000')}")
    karte.set_defaults(func=_post_karte_hook)

    layer = sub.add_parser("check-layer", help="prune and check the built layer (make build)")
    layer.add_argument("--build-dir", default=".aws-sam/build")
    layer.add_argument("--max-mb", type=float, default=30.0)
    layer.add_argument("--no-prune", dest="prune", action="store_false")
    layer.set_defaults(func=_check_layer)

    chk = sub.add_parser("check-config", help="validate the routes file for a stage (make run, make build)")
    chk.add_argument("--config", help="routes file (default layers/common/config/bridge.json)")
    chk.add_argument("--overlay", default="config/bridge.local.json", help="local overlay (default: %(default)s)")
    chk.add_argument("--no-overlay", action="store_true", help="check the file as deployed (references only)")
    chk.add_argument("--stage", default="local")
    chk.set_defaults(func=_check_config)

    rst = sub.add_parser("reset", help="forget the state PERSIST=1 kept (make reset)")
    rst.set_defaults(func=_reset)

    sch = sub.add_parser("schema", help="print (or --write) the routes file's JSON Schema")
    sch.add_argument("--write", action="store_true", help="write config/bridge.schema.json")
    sch.set_defaults(func=_schema)

    args = parser.parse_args()
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
