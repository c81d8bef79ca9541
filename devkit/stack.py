"""The whole local stack: moto, the template's resources, the provider sandbox, one process pool per
function, the HTTP API gateway and the queue pollers; started and stopped as one."""

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.request import urlopen

from devkit.aws import MotoServer, create_resources
from devkit.gateway import Gateway
from devkit.queues import QueuePoller, Scheduler
from devkit.runtime import (
    CONSOLE,
    DEFAULT_API_ADDRESS,
    DEFAULT_SANDBOX_ADDRESS,
    ENV_JSON,
    LocalFunction,
    function_environment,
    load_env_json,
    runtime_environment,
)
from devkit.sandbox.callbacks import EventCallbacks
from devkit.sandbox.server import DEFAULT_CREDENTIALS, Sandbox
from devkit.signing import sendgrid_headers
from devkit.template import REPO_ROOT, Resolver, Template

STATE_FILE = REPO_ROOT / ".local-stack.json"

# kintone apps the shipped routes write to locally (through config/bridge.local.json).
DEMO_KINTONE_APPS: dict[str, dict[str, Any]] = {
    "7": {  # marketo-email-opened: update by e-mail
        "fields": {
            "email": {"type": "SINGLE_LINE_TEXT", "unique": True},
            "mail_status": {"type": "DROP_DOWN"},
            "last_campaign": {"type": "SINGLE_LINE_TEXT"},
            "marketo_lead_id": {"type": "NUMBER"},
            "last_opened_at": {"type": "DATETIME"},
            "name": {"type": "SINGLE_LINE_TEXT"},
        },
        "records": [
            {"email": {"value": "taro@example.com"}, "name": {"value": "山田 太郎"}},
            {"email": {"value": "taro.yamada@example.com"}, "name": {"value": "山田 太郎"}},
        ],
    },
    "8": {  # marketo-lead-upsert: upsert by e-mail
        "fields": {
            "email": {"type": "SINGLE_LINE_TEXT", "unique": True},
            "name": {"type": "SINGLE_LINE_TEXT"},
            "company": {"type": "SINGLE_LINE_TEXT"},
            "marketo_lead_id": {"type": "NUMBER"},
            "lead_source": {"type": "SINGLE_LINE_TEXT"},
        },
    },
    "10": {  # the kintone-mail-status sink: upsert by message id
        "fields": {
            "message_id": {"type": "SINGLE_LINE_TEXT", "unique": True},
            "email": {"type": "SINGLE_LINE_TEXT"},
            "last_event": {"type": "SINGLE_LINE_TEXT"},
            "last_event_at": {"type": "DATETIME"},
            "provider": {"type": "SINGLE_LINE_TEXT"},
        },
    },
    "11": {  # the kintone-sent-mail sink: one record per recipient, upserted by message id
        "fields": {
            "message_id": {"type": "SINGLE_LINE_TEXT", "unique": True},
            "email": {"type": "SINGLE_LINE_TEXT"},
            "subject": {"type": "SINGLE_LINE_TEXT"},
            "body_text": {"type": "MULTI_LINE_TEXT"},
            "body_html": {"type": "RICH_TEXT"},
            "provider": {"type": "SINGLE_LINE_TEXT"},
            "dispatch_id": {"type": "SINGLE_LINE_TEXT"},
            "provider_message_id": {"type": "SINGLE_LINE_TEXT"},
            "sent_at": {"type": "DATETIME"},
            "send_status": {"type": "SINGLE_LINE_TEXT"},
        },
    },
    "12": {  # the kintone-replies sink: one record per reply, upserted by reply id, linked by message_id
        "fields": {
            "reply_id": {"type": "SINGLE_LINE_TEXT", "unique": True},
            "message_id": {"type": "SINGLE_LINE_TEXT"},
            "dispatch_id": {"type": "SINGLE_LINE_TEXT"},
            "matched_by": {"type": "SINGLE_LINE_TEXT"},
            "from_email": {"type": "SINGLE_LINE_TEXT"},
            "subject": {"type": "SINGLE_LINE_TEXT"},
            "body_text": {"type": "MULTI_LINE_TEXT"},
            "full_text": {"type": "MULTI_LINE_TEXT"},
            "attachments": {"type": "MULTI_LINE_TEXT"},
            "received_at": {"type": "DATETIME"},
            "problems": {"type": "MULTI_LINE_TEXT"},
            "claimed_dispatch_id": {"type": "SINGLE_LINE_TEXT"},
            "unmatched_reason": {"type": "MULTI_LINE_TEXT"},
            "flagged": {"type": "SINGLE_LINE_TEXT"},  # SES's spam / virus verdict FAIL
        },
    },
    "9": {  # karte-cart-abandon: add
        "fields": {
            "karte_user_id": {"type": "SINGLE_LINE_TEXT", "required": True},
            "email": {"type": "SINGLE_LINE_TEXT"},
            "event": {"type": "SINGLE_LINE_TEXT"},
            "campaign": {"type": "SINGLE_LINE_TEXT"},
        },
    },
}


def seed_demo_apps(sandbox: Sandbox) -> None:
    kintone = sandbox.provider("kintone")
    for app_id, spec in DEMO_KINTONE_APPS.items():
        kintone.control("PUT", f"/apps/{app_id}", json.loads(json.dumps(spec)))


def advertised_stack(state_file: Path) -> dict[str, Any] | None:
    """The stack the state file names, if its sandbox still answers; None for no file or a stale one."""
    try:
        state = json.loads(state_file.read_text())
        with urlopen(f"{state['sandbox']}/_sandbox/health", timeout=1):  # noqa: S310 - loopback only
            return state if isinstance(state, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


class LocalStack:
    def __init__(
        self,
        *,
        port: int = 3000,
        sandbox_port: int = 3100,
        moto_port: int = 0,
        visibility_timeout: int | None = None,
        env_json: Path = ENV_JSON,
        shell: Mapping[str, str] | None = None,
        log: Callable[[str], None] = print,
        concurrency: int = 1,
        state_file: Path | None = None,
        console: bool = False,
        persist: bool = False,
    ) -> None:
        self.port, self.sandbox_port, self.moto_port = port, sandbox_port, moto_port
        self.visibility_timeout = visibility_timeout
        self.env_json = env_json
        self.shell = dict(os.environ if shell is None else shell)
        self.log = log
        self.concurrency = concurrency
        self.state_file = state_file
        self.console = console  # function log lines as readable one-liners (make run) instead of JSON
        self._wrote_state = False
        self.persist = persist  # PERSIST=1: tables saved on stop, loaded on start (devkit/persist.py)
        self.template = Template()
        self.resolver = Resolver(self.template)
        self.functions: dict[str, LocalFunction] = {}
        self.pollers: list[QueuePoller | Scheduler] = []
        self.environments: dict[str, dict[str, str]] = {}

    def start(self) -> "LocalStack":
        self.moto = MotoServer(self.moto_port, host=self.shell.get("AWS_HOST") or "127.0.0.1").start()
        create_resources(self.template, self.resolver, self.moto, visibility_timeout=self.visibility_timeout)
        if self.persist:
            from devkit import persist

            loaded = persist.load(self.moto.client("dynamodb"))
            self.log(f"PERSIST=1: loaded {loaded} item(s) from {persist.tables_file()} (make reset forgets them)")
        specs = self.template.functions()
        env_json = load_env_json(self.env_json)
        self.sandbox = Sandbox(port=self.sandbox_port, credentials=self._sandbox_credentials(specs, env_json))
        self.sandbox.start()
        seed_demo_apps(self.sandbox)
        self.gateway = Gateway(
            self.template.http_routes(),
            self.functions,
            port=self.port,
            log=self.log,
            sandbox_url=self.sandbox.url,
        )
        # The sandboxed ESPs post accepted mail's events back: SendGrid's signed with the key env.json trusts,
        # Braze's with the postback secret the Events function is given, Infobip's to the send's notifyUrl.
        events_env = function_environment(specs["EventsFunction"], self.resolver, env_json=env_json, shell=self.shell)
        self.sandbox.callbacks = EventCallbacks(
            {"sendgrid": f"{self.gateway.url}/events/sendgrid", "braze": f"{self.gateway.url}/events/braze"},
            sign=sendgrid_headers,
            braze_secret=events_env.get("BRAZE_POSTBACK_SECRET", "").split(",")[0].strip(),
        )
        addresses = {DEFAULT_API_ADDRESS: self.gateway.url, DEFAULT_SANDBOX_ADDRESS: self.sandbox.url}
        for logical_id, spec in specs.items():
            env = function_environment(spec, self.resolver, env_json=env_json, shell=self.shell, addresses=addresses)
            self.environments[logical_id] = env
            self.functions[logical_id] = LocalFunction(
                spec,
                {**runtime_environment(spec, self.moto.env()), **env},
                concurrency=self.concurrency,
                log_file=CONSOLE if self.console else None,
            )
        self._warm_all()
        sqs = self.moto.client("sqs")
        for spec in specs.values():
            for source in spec.queue_sources:
                self.pollers.append(QueuePoller(source, self.functions[spec.logical_id], sqs, log=self.log).start())
            for expression in spec.schedules:
                interval = float(self.shell.get("SWEEP_INTERVAL") or 10)
                self.pollers.append(
                    Scheduler(self.functions[spec.logical_id], expression, interval, log=self.log).start()
                )
        self.gateway.api_keys = tuple(k.strip() for k in self._api_keys().split(",") if k.strip())
        self.gateway.start()
        self._advertise()
        return self

    def _advertise(self) -> None:
        """Name this stack in the state file, for `make invoke` and `make post-eml`, unless the file names
        another stack that still answers: a second `make run` on other ports must not take those commands
        away from the first, nor delete the first one's file when it stops."""
        if not self.state_file:
            return
        other = advertised_stack(self.state_file)
        if other is not None:
            self.log(f"make invoke and make post-eml keep using the stack at {other['api']} (pid {other['pid']})")
            return
        self._wrote_state = True
        self.state_file.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "api": self.gateway.url,
                    "sandbox": self.sandbox.url,
                    "aws_endpoint": self.moto.endpoint,
                }
            )
        )

    def _warm_all(self) -> None:
        errors: list[str] = []

        def warm(fn: LocalFunction) -> None:
            try:
                fn.warm()
            except Exception as exc:  # noqa: BLE001 - reported below, all at once
                errors.append(f"{fn.spec.logical_id}: {exc}")

        threads = [threading.Thread(target=warm, args=(f,)) for f in self.functions.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for error in errors:
            self.log(f"warning: {error}")

    def _sandbox_credentials(
        self, specs: Mapping[str, Any], env_json: dict[str, dict[str, str]]
    ) -> dict[str, list[str]]:
        """Let the sandbox accept whatever literal keys the functions were configured with."""
        creds = {k: list(v) for k, v in DEFAULT_CREDENTIALS.items()}
        wanted = {"SENDGRID_API_KEY": "sendgrid", "BRAZE_API_KEY": "braze", "INFOBIP_API_KEY": "infobip"}
        for spec in specs.values():
            env = function_environment(spec, self.resolver, env_json=env_json, shell=self.shell)
            for key, provider in wanted.items():
                value = env.get(key, "")
                if value and not value.startswith(("ssm:", "secretsmanager:")) and value not in creds[provider]:
                    creds[provider].append(value)
        return creds

    def stop(self) -> None:
        # Every poller and every function is asked at once, then waited on: one at a time, Ctrl-C waited a
        # long poll per queue and a process exit per warm instance (7-10 s in all).
        for poller in self.pollers:
            poller.request_stop()
        for poller in self.pollers:
            poller.stop()
        if hasattr(self, "gateway"):
            self.gateway.stop()
        closing = [threading.Thread(target=fn.close, daemon=True) for fn in self.functions.values()]
        for t in closing:
            t.start()
        for t in closing:
            t.join()
        if self.persist and hasattr(self, "gateway") and hasattr(self, "moto"):
            from devkit import persist

            # Saved after the functions stopped, so nothing writes while the tables are read.
            saved = persist.save(self.moto.client("dynamodb"))
            self.log(f"PERSIST=1: saved {saved} item(s) to {persist.tables_file()}")
        if hasattr(self, "sandbox"):
            self.sandbox.stop()
        if hasattr(self, "moto"):
            self.moto.stop()
        # Only the state file this stack wrote: a second `make run` that failed to start must not remove
        # the running stack's.
        if self.state_file and self._wrote_state and self.state_file.exists():
            self.state_file.unlink()

    def banner(self) -> str:
        return "\n".join(
            self.story_header()
            + ["", "The story, in order (paste each line; every one answers 2xx):"]
            + [f"  {line}" for line in self.story()]
            + ["", "Ctrl-C stops everything."]
        )

    def story_header(self) -> list[str]:
        return [
            "Martech Bridge local stack",
            f"  HTTP API       {self.gateway.url}",
            f"  Sandbox        {self.sandbox.url}  (kintone, sendgrid, braze, infobip, karte; /_sandbox/health)",
            f"  Embedded AWS   {self.moto.endpoint}  (AWS_ENDPOINT_URL={self.moto.endpoint} aws dynamodb list-tables)",
            f"  Functions      {', '.join(self.functions)}",
            f"  Console        {self.gateway.url}/console  (a browser page; API key "
            f"{self._first_api_key() or 'from env.json'})",
        ]

    def story(self) -> list[str]:
        """Shell lines that run as printed, in this order, in one shell: comments, and commands that each
        answer 2xx. tests/e2e/test_local_stack.py runs them."""
        api, box, key = self.gateway.url, self.sandbox.url, self._first_api_key()
        auth = f"-H 'X-Api-Key: {key}' " if key else ""
        json_ct = "-H 'Content-Type: application/json'"
        pick = "python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])'"
        return [
            "# 1. Is it up? (no credentials, no secrets)",
            f"curl -sS {api}/health",
            "# 2. Relay: Marketo 'email opened' -> kintone app 7, the record found by e-mail (updateKey)",
            f"curl -sS -X POST -H 'X-Webhook-Token: local-marketo-token' {json_ct} -H 'Idempotency-Key: open-1' "
            f'-d \'{{"email": "taro@example.com", "campaign": "SPRING24", "lead_id": 1234567}}\' '
            f"{api}/relay/marketo-email-opened",
            "# ...and what kintone (the sandbox) holds now",
            f"curl -sS {box}/_sandbox/kintone/apps/7",
            "# ...a KARTE Hook v2 message, HMAC-signed with the local client secret -> PATCH your API (the sandbox's)",
            f".venv/bin/python -m devkit post-karte-hook events/payloads/karte-hook-message.json --api {api}",
            "# 3. Relay: a Marketo form-encoded lead -> kintone app 8, created or updated by e-mail",
            f"curl -sS -X POST -H 'X-Webhook-Token: local-marketo-token' "
            f"--data-urlencode email=hanako@example.com --data-urlencode lead_id=42 "
            f"--data-urlencode last_name=佐藤 --data-urlencode first_name=花子 {api}/relay/marketo-lead-upsert",
            "# 4. Relay: a KARTE Craft action (no Content-Type) is queued, then the worker adds it to kintone app 9",
            f"DELIVERY=$(curl -sS -X POST -H 'X-Webhook-Token: local-craft-token' -H 'Content-Type:' "
            f'-d \'{{"user_id": "user_8842", "event": "cart_abandon"}}\' {api}/relay/karte-cart-abandon '
            f"| tee /dev/stderr | {pick} delivery_id)",
            f"sleep 2; curl -sS {auth}{api}/deliveries/$DELIVERY",
            "# 5. Send mail through the sandboxed SendGrid; it posts signed `delivered` and `open` events back",
            f"DISPATCH=$(curl -sS -X POST {auth}{json_ct} "
            f'-d \'{{"to": [{{"email": "hanako@example.com", "user_id": "user_8842"}}], '
            f'"subject": "hello", "text": "hi"}}\' '
            f"{api}/mail/send | tee /dev/stderr | {pick} dispatch_id)",
            "# ...a few seconds later the recipient shows `delivered`, with both events in its history",
            f"sleep 5; curl -sS {auth}{api}/messages/$DISPATCH",
            "# 6. Final delivery reports, and the event sinks: KARTE (the sandbox, by user_id) and kintone app 10",
            f"curl -sS {auth}{api}/reports",
            f"curl -sS {box}/_sandbox/karte/events",
            f"curl -sS {box}/_sandbox/kintone/apps/10",
            "# 7. Subscriptions: taro unsubscribes; any address works with ?email= (a send to taro is now not_sent)",
            f"curl -sS -X PUT {auth}{json_ct} "
            f'-d \'{{"subscribed": false, "suppression": "unsubscribe", "reason": "clicked unsubscribe"}}\' '
            f"'{api}/subscriptions?email=taro@example.com'",
            f"curl -sS {auth}'{api}/subscriptions?email=taro@example.com'",
        ]

    def _first_api_key(self) -> str:
        return self._api_keys().split(",")[0].strip()

    def _api_keys(self) -> str:
        """The operator API keys as the Query function is given them (none when they are secret references)."""
        value = self.environments.get("QueryFunction", {}).get("API_KEYS", "")
        return "" if value.startswith(("ssm:", "secretsmanager:")) else value
