"""`setup STAGE`: lists every secret a stage's deployment reads, checks each lies where its functions may read
it, and creates the missing ones from the environment or by asking (SSM SecureString / Secrets Manager)."""

import getpass
import os
import re
import shlex
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMCONFIG = REPO_ROOT / "samconfig.toml"
LAYER_ROOT = REPO_ROOT / "layers" / "common"

# Which part of /<SecretsPath>/<Stage>/ each template parameter's secret must sit in: template.yaml lets each
# function read only its own parts (operator: Send, Query; esp: Send; webhooks: Events, and Send for the
# Infobip secret it signs notifyUrl with; routes: Relay, DeliveryWorker; sinks: EventWorker, DeliveryWorker).
PARAMETER_SCOPES = {
    "ApiKeysRef": "operator/",
    "SendGridApiKeyRef": "esp/",
    "BrazeApiKeyRef": "esp/",
    "InfobipApiKeyRef": "esp/",
    "SendGridWebhookPublicKeysRef": "webhooks/",
    "BrazePostbackSecretRef": "webhooks/",
    "InfobipWebhookSecretRef": "webhooks/infobip-webhook-secret",
}
# What is kept when the stack is deleted, and why (template.yaml's DeletionPolicy and what lives outside it).
KEPT_ON_DELETE = (
    "MessagesTable, DeliveriesTable, SubscriptionsTable (DeletionPolicy: Retain: message logs, deliveries and "
    "unsubscribes are records you may need; delete them in the DynamoDB console when you are sure)",
    "your secrets in SSM / Secrets Manager (the stack never created them; `aws ssm delete-parameters`)",
    "the functions' log groups /aws/lambda/martech-bridge-*-<stage> (Lambda creates them, not the stack)",
    "the deployment artifacts bucket that `resolve_s3` made (aws-sam-cli-managed-default), shared by stacks",
)


@dataclass
class Secret:
    reference: str
    used_by: list[str] = field(default_factory=list)
    scope: str = ""  # the part of the secrets path the functions that read it may read

    @property
    def store(self) -> str:
        return "ssm" if self.reference.startswith("ssm:") else "secretsmanager"

    @property
    def name(self) -> str:
        return self.reference.split(":", 1)[1]

    @property
    def env_name(self) -> str:
        """The environment variable `setup` takes this secret's value from (BRIDGE_SECRET_KINTONE_APP_7_TOKEN)."""
        return "BRIDGE_SECRET_" + re.sub(r"[^A-Z0-9]+", "_", self.name.rsplit("/", 1)[-1].upper()).strip("_")


@dataclass
class Plan:
    config_env: str
    stage: str
    stack_name: str
    region: str | None
    secrets_path: str
    secrets: dict[str, Secret]
    problems: list[str]


def _parameters(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(text or "") if "=" in item)


def plan(config_env: str, samconfig: Path = SAMCONFIG, routes_file: Path | None = None) -> Plan:
    """Every secret the stage reads: the template parameters samconfig.toml sets, and the routes file's."""
    sys.path.insert(0, str(LAYER_ROOT))
    from martech_bridge.config import config_secret_references, read_bridge_config
    from martech_bridge.errors import ConfigurationError

    sections = tomllib.loads(samconfig.read_text(encoding="utf-8")).get(config_env)
    if not sections:
        raise SystemExit(f"samconfig.toml has no [{config_env}.*] sections (ENV=dev or ENV=prod?)")
    deploy = sections.get("deploy", {}).get("parameters", {})
    glob = sections.get("global", {}).get("parameters", {})
    overrides = _parameters(deploy.get("parameter_overrides", ""))
    stage = overrides.get("Stage", "dev")
    secrets_path = overrides.get("SecretsPath", "martech-bridge").strip("/")
    region = deploy.get("region") or glob.get("region")
    problems: list[str] = []
    found: dict[str, Secret] = {}
    for parameter, scope in PARAMETER_SCOPES.items():
        if overrides.get(parameter):
            found.setdefault(overrides[parameter], Secret(overrides[parameter], scope=scope)).used_by.append(
                f"parameter {parameter}"
            )
    config_file = routes_file or LAYER_ROOT / overrides.get("BridgeConfigFile", "config/bridge.json")
    try:
        config = read_bridge_config(config_file, None, stage=stage)
        for ref, places in config_secret_references(config).items():
            scope = "routes/" if any(p.startswith("route ") for p in places) else "sinks/"
            if any(p.startswith("route ") for p in places) and any(p.startswith("sink ") for p in places):
                problems.append(f"{ref}: used by a route and a sink; give each its own secret")
            found.setdefault(ref, Secret(ref, scope=scope)).used_by.extend(places)
    except ConfigurationError as exc:
        problems.append(str(exc))
    for secret in found.values():
        if not secret.reference.startswith(("ssm:/", "secretsmanager:")):
            problems.append(f"{', '.join(secret.used_by)}: not a reference (ssm:/... or secretsmanager:...)")
            continue
        expected = f"{secret_prefix(secret.store, secrets_path, stage)}{secret.scope}"
        if not secret.name.startswith(expected.split(":", 1)[1]):
            problems.append(
                f"{', '.join(secret.used_by)}: {secret.reference} is outside {expected}, "
                f"where the functions that read it are allowed to read"
            )
    stack_name = glob.get("stack_name") or deploy.get("stack_name") or f"martech-bridge-{stage}"
    return Plan(config_env, stage, stack_name, region, secrets_path, found, problems)


def secret_prefix(store: str, secrets_path: str, stage: str) -> str:
    return f"ssm:/{secrets_path}/{stage}/" if store == "ssm" else f"secretsmanager:{secrets_path}/{stage}/"


def _client(service: str, region: str | None) -> Any:
    import boto3

    return boto3.client(service, region_name=region) if region else boto3.client(service)


def exists(secret: Secret, region: str | None) -> bool:
    from botocore.exceptions import ClientError

    try:
        if secret.store == "ssm":
            _client("ssm", region).get_parameter(Name=secret.name)
        else:
            _client("secretsmanager", region).describe_secret(SecretId=secret.name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ParameterNotFound", "ResourceNotFoundException"):
            return False
        raise
    return True


def create(secret: Secret, value: str, region: str | None) -> None:
    if secret.store == "ssm":
        _client("ssm", region).put_parameter(
            Name=secret.name,
            Value=value,
            Type="SecureString",
            Description=f"Martech Bridge: {', '.join(secret.used_by)}"[:1024],
        )
    else:
        _client("secretsmanager", region).create_secret(Name=secret.name, SecretString=value)


def run(
    config_env: str,
    *,
    check_only: bool = False,
    samconfig: Path = SAMCONFIG,
    ask: Callable[[str], str] | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """List the stage's secrets; create the missing ones (unless check_only). 0 when all exist."""
    p = plan(config_env, samconfig)
    region = p.region or _session_region()
    if not region:
        out("No region: set `region` in samconfig.toml or AWS_REGION / your profile's region.")
        return 2
    for problem in p.problems:
        out(f"PROBLEM  {problem}")
    if p.problems:
        return 2
    if ask is None and sys.stdin.isatty():
        ask = getpass.getpass
    missing = 0
    out(f"Stage {p.stage} (samconfig env {config_env}, stack {p.stack_name}, region {region}):")
    for secret in sorted(p.secrets.values(), key=lambda s: s.reference):
        if exists(secret, region):
            out(f"  ok       {secret.reference}  ({', '.join(secret.used_by)})")
            continue
        value = "" if check_only else os.environ.get(secret.env_name, "")
        if not value and not check_only and ask is not None:
            value = ask(f"  Value for {secret.reference} ({', '.join(secret.used_by)}), empty to skip: ")
        if value:
            create(secret, value, region)
            out(f"  created  {secret.reference}  ({', '.join(secret.used_by)})")
        else:
            missing += 1
            out(f"  MISSING  {secret.reference}  ({', '.join(secret.used_by)}; or set {secret.env_name})")
    if missing:
        out(f"{missing} secret(s) missing: `make setup ENV={config_env}` creates them (asks, or reads the variables).")
        return 1
    return 0


def _session_region() -> str | None:
    import boto3

    return boto3.session.Session().region_name


def before_delete(config_env: str, samconfig: Path = SAMCONFIG, out: Callable[[str], None] = print) -> int:
    """Empty the payload bucket (CloudFormation cannot delete a bucket with objects) and say what stays."""
    p = plan(config_env, samconfig)
    region = p.region or _session_region()
    from botocore.exceptions import ClientError

    try:
        bucket = _client("cloudformation", region).describe_stack_resource(
            StackName=p.stack_name, LogicalResourceId="PayloadBucket"
        )["StackResourceDetail"]["PhysicalResourceId"]
    except ClientError as exc:
        out(f"Stack {p.stack_name} in {region}: {exc.response['Error']['Message']}")
        return 1
    s3 = _client("s3", region)
    emptied = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
            emptied += len(keys)
    out(f"Emptied the payload bucket {bucket} ({emptied} object(s); payloads are kept 7 days at most anyway).")
    try:  # only with EnableInboundMail: received mail (the replies' records stay in MessagesTable)
        inbound = _client("cloudformation", region).describe_stack_resource(
            StackName=p.stack_name, LogicalResourceId="InboundMailBucket"
        )["StackResourceDetail"]["PhysicalResourceId"]
    except ClientError:
        inbound = None
    if inbound:
        emptied = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=inbound):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=inbound, Delete={"Objects": keys})
                emptied += len(keys)
        out(f"Emptied the inbound mail bucket {inbound} ({emptied} received message(s); replies stay in the table).")
    out(f"Deleting {p.stack_name} in {region} keeps:")
    for item in KEPT_ON_DELETE:
        out(f"  - {item}")
    return 0
