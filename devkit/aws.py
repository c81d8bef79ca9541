"""Embedded AWS: a moto server on loopback, and the tables, queues and bucket of template.yaml created in it
from the template's own definitions (never a second copy)."""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import boto3

from devkit.template import REGION, Resolver, Template, local_physical_name

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - moto's conventional dummy credentials
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """moto in server mode on 127.0.0.1: the functions reach it over HTTP like the real AWS."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        from moto.server import ThreadedMotoServer

        from devkit import moto_fidelity

        moto_fidelity.install()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.port = port or free_port()
        # host 0.0.0.0 (AWS_HOST) only for `sam local invoke` on Linux, whose containers reach the host's
        # host.docker.internal address, not its loopback.
        self._server = ThreadedMotoServer(ip_address=host, port=self.port, verbose=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MotoServer":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def env(self) -> dict[str, str]:
        """What a process needs to use this server through plain boto3."""
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def session(self) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
            region_name=REGION,
        )

    def client(self, service: str) -> Any:
        return self.session().client(service, endpoint_url=self.endpoint)  # type: ignore[call-overload]


class MotoProcess(MotoServer):
    """moto in a process of its own (benchmarks: in the measuring process it would compete for the GIL)."""

    # How the server is started (after the interpreter), before its host and port arguments.
    server_args: tuple[str, ...] = ("-m", "devkit.moto_fidelity")

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: str | None = None

    def start(self) -> "MotoProcess":
        # moto's request recorder (bench/write_keys.py) writes request bodies to a file: a private one, not
        # "moto_recording" in whatever directory the server was started from.
        self._workdir = tempfile.mkdtemp(prefix="moto-")
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            [sys.executable, *self.server_args, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "MOTO_RECORDER_FILEPATH": os.path.join(self._workdir, "recording.jsonl")},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        """Terminate, and kill a server too busy to stop in time (so the run's own error shows)."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


def create_resources(
    template: Template, resolver: Resolver, server: MotoServer, visibility_timeout: int | None = None
) -> dict[str, str]:
    """Create every DynamoDB table, SQS queue and S3 bucket of the template; returns logical id -> name.

    `visibility_timeout` overrides the queues' own (a local knob so retries do not take minutes)."""
    created: dict[str, str] = {}
    ddb = server.client("dynamodb")
    for logical_id, res in template.of_type("AWS::DynamoDB::Table").items():
        props = resolver.resolve(res["Properties"])
        name = local_physical_name(logical_id, res["Type"])
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if props.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        ddb.create_table(**args)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
            )
        created[logical_id] = name

    sqs = server.client("sqs")
    queues = template.of_type("AWS::SQS::Queue")
    # Dead-letter queues first: the others' redrive policies name them.
    order = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q]["Properties"])
    for logical_id in order:
        props = resolver.resolve(queues[logical_id]["Properties"])
        name = local_physical_name(logical_id, "AWS::SQS::Queue")
        attributes: dict[str, str] = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
            if key in props:
                attributes[key] = str(props[key])
        if visibility_timeout is not None:
            attributes["VisibilityTimeout"] = str(visibility_timeout)
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        sqs.create_queue(QueueName=name, Attributes=attributes)
        created[logical_id] = name

    s3 = server.client("s3")
    for logical_id, res in template.of_type("AWS::S3::Bucket").items():
        name = local_physical_name(logical_id, res["Type"])
        s3.create_bucket(Bucket=name)
        created[logical_id] = name
    return created
