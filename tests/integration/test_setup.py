"""`bridgectl setup STAGE` against embedded AWS: lists every secret the stage reads, creates the missing
ones from the environment, never prints a value, and refuses references its functions could not read."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bridgectl.setup import plan
from devkit.template import REPO_ROOT


def setup(moto_server, samconfig: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # `make setup` in a subprocess, reading the given samconfig.toml, against the moto server.
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from bridgectl import setup; from pathlib import Path; "
            f"sys.exit(setup.run(sys.argv[1], samconfig=Path({str(samconfig)!r}), check_only='--check' in sys.argv))",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env={**os.environ, **moto_server.env(), "AWS_DEFAULT_REGION": "us-east-1", **env},
    )


def test_setup_lists_every_secret_of_the_stage_and_creates_the_missing_ones(moto_server, tmp_path: Path) -> None:
    samconfig = tmp_path / "samconfig.toml"
    shutil.copy(REPO_ROOT / "samconfig.toml", samconfig)
    wanted = plan("prod", samconfig)
    assert not wanted.problems
    names = {s.reference for s in wanted.secrets.values()}
    # The template parameters' secrets and every secret the routes file names, all under /prod/.
    assert "ssm:/martech-bridge/prod/operator/api-keys" in names
    assert "ssm:/martech-bridge/prod/routes/kintone-app-7-token" in names
    assert "ssm:/martech-bridge/prod/sinks/karte-app-token" in names
    assert all(n.startswith("ssm:/martech-bridge/prod/") for n in names)

    values = {s.env_name: f"value-{i}-{s.env_name.lower()}" for i, s in enumerate(wanted.secrets.values())}
    skipped = next(iter(values))
    partial = {k: v for k, v in values.items() if k != skipped}
    first = setup(moto_server, samconfig, partial, "prod")
    assert first.returncode == 1, first.stderr
    assert "MISSING" in first.stdout and skipped in first.stdout
    assert first.stdout.count("created") == len(values) - 1
    assert not any(v in first.stdout + first.stderr for v in values.values())

    ssm = moto_server.client("ssm")
    some = next(s for s in wanted.secrets.values() if s.env_name != skipped)
    stored = ssm.get_parameter(Name=some.name, WithDecryption=True)["Parameter"]
    assert stored["Type"] == "SecureString" and stored["Value"] == values[some.env_name]

    check = setup(moto_server, samconfig, {}, "prod", "--check")
    assert check.returncode == 1 and check.stdout.count("MISSING") == 1

    second = setup(moto_server, samconfig, {**values, some.env_name: "changed"}, "prod")
    assert second.returncode == 0, second.stdout
    assert "created" in second.stdout and second.stdout.count("created") == 1  # existing ones are left alone
    assert ssm.get_parameter(Name=some.name, WithDecryption=True)["Parameter"]["Value"] == values[some.env_name]


def test_setup_refuses_a_secret_its_functions_may_not_read(tmp_path: Path) -> None:
    samconfig = tmp_path / "samconfig.toml"
    text = (REPO_ROOT / "samconfig.toml").read_text()
    # The Events function (anonymous callers) may read webhooks/ only, not the ESP keys' part.
    samconfig.write_text(text.replace("dev/webhooks/sendgrid-webhook-public-keys", "dev/esp/sendgrid-webhook-keys"))
    problems = plan("dev", samconfig).problems
    assert any("SendGridWebhookPublicKeysRef" in p and "webhooks/" in p for p in problems)


def test_before_delete_empties_the_payload_bucket_so_the_stack_can_be_deleted(
    moto_server, tmp_path: Path, monkeypatch
) -> None:
    # `make delete` runs this before `sam delete`: CloudFormation cannot delete a bucket that holds objects.
    samconfig = tmp_path / "samconfig.toml"
    shutil.copy(REPO_ROOT / "samconfig.toml", samconfig)
    for name, value in {**moto_server.env(), "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    stack = plan("dev", samconfig).stack_name
    cfn, s3 = moto_server.client("cloudformation"), moto_server.client("s3")
    cfn.create_stack(StackName=stack, TemplateBody='{"Resources": {"PayloadBucket": {"Type": "AWS::S3::Bucket"}}}')
    bucket = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="PayloadBucket")["StackResourceDetail"][
        "PhysicalResourceId"
    ]
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"payloads/{i}.json", Body=b"{}")

    printed: list[str] = []
    from bridgectl.setup import before_delete

    assert before_delete("dev", samconfig, out=printed.append) == 0
    assert "3 object(s)" in printed[0]
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    cfn.delete_stack(StackName=stack)
    assert bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    # What stays is said: the retained tables by name.
    assert any("MessagesTable" in line for line in printed)


def test_before_delete_empties_the_inbound_mail_bucket_when_the_stack_has_one(
    moto_server, tmp_path: Path, monkeypatch
) -> None:
    samconfig = tmp_path / "samconfig.toml"
    shutil.copy(REPO_ROOT / "samconfig.toml", samconfig)
    for name, value in {**moto_server.env(), "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    stack = plan("dev", samconfig).stack_name
    cfn, s3 = moto_server.client("cloudformation"), moto_server.client("s3")
    body = '{"Resources": {"PayloadBucket": {"Type": "AWS::S3::Bucket"}, "InboundMailBucket": {"Type": "AWS::S3::Bucket"}}}'
    cfn.create_stack(StackName=stack, TemplateBody=body)
    inbound = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="InboundMailBucket")[
        "StackResourceDetail"
    ]["PhysicalResourceId"]
    s3.put_object(Bucket=inbound, Key="inbound/abc", Body=b"From: a@example.com\r\n\r\nhi")
    printed: list[str] = []
    from bridgectl.setup import before_delete

    assert before_delete("dev", samconfig, out=printed.append) == 0
    assert any("inbound mail bucket" in line and "1 received" in line for line in printed)
    assert s3.list_objects_v2(Bucket=inbound).get("KeyCount", 0) == 0
    cfn.delete_stack(StackName=stack)


def test_before_delete_says_when_the_stack_is_not_there(moto_server, tmp_path: Path, monkeypatch) -> None:
    samconfig = tmp_path / "samconfig.toml"
    shutil.copy(REPO_ROOT / "samconfig.toml", samconfig)
    for name, value in {**moto_server.env(), "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    printed: list[str] = []
    from bridgectl.setup import before_delete

    assert before_delete("prod", samconfig, out=printed.append) == 1
    assert plan("prod", samconfig).stack_name in printed[0]


def test_what_delete_keeps_names_every_retained_resource() -> None:
    from bridgectl.setup import KEPT_ON_DELETE
    from devkit.template import Template

    retained = [
        name
        for name, resource in Template().resources.items()
        if resource.get("DeletionPolicy") == "Retain" or resource.get("UpdateReplacePolicy") == "Retain"
    ]
    assert retained
    kept = " ".join(KEPT_ON_DELETE)
    assert [name for name in retained if name not in kept] == []
