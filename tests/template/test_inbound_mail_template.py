"""The replies path (EnableInboundMail) is optional: with it off nothing of it is deployed, with it on the
template still lints (cfn-lint, `sam validate --lint`) and SES may write only through this stack's rule."""

import re
from pathlib import Path

import pytest

from devkit.template import REPO_ROOT, Resolver, Template
from tests.template.test_template import run, tool

pytestmark = pytest.mark.template
INBOUND = (
    "InboundMailBucket",
    "InboundMailBucketPolicy",
    "InboundReceiptRuleSet",
    "InboundReceiptRule",
    "InboundMailFunction",
    "InboundMailDLQ",
    "InboundMailDLQAlarm",
)


def with_inbound_on(tmp_path: Path) -> Path:
    """The template with the condition's parameters defaulting to on (linters read the defaults)."""
    text = (REPO_ROOT / "template.yaml").read_text(encoding="utf-8")
    text = re.sub(r'(  EnableInboundMail:\n(?:    .*\n)*?    Default: )"false"', r'\1"true"', text, count=1)
    text = re.sub(r'(  InboundMailDomain:\n(?:    .*\n)*?    Default: )""', r'\1"reply.example.com"', text, count=1)
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_inbound_resource_is_behind_the_condition_which_is_off_by_default() -> None:
    t = Template()
    assert t.parameters["EnableInboundMail"]["Default"] == "false"
    assert all(t.resources[r].get("Condition") == "InboundMail" for r in INBOUND)
    assert Resolver(t).condition("InboundMail") is False
    assert Resolver(t, {"EnableInboundMail": "true", "InboundMailDomain": "reply.example.com"}).condition("InboundMail")
    # on, but without a domain, it stays off: a receipt rule for no recipient would take every domain's mail
    assert Resolver(t, {"EnableInboundMail": "true"}).condition("InboundMail") is False


def test_the_template_lints_with_the_inbound_path_on(tmp_path: Path) -> None:
    # Off (the defaults) is what test_template.py lints.
    path = with_inbound_on(tmp_path)
    assert Resolver(Template(path)).condition("InboundMail")
    linted = run(tool("cfn-lint"), str(path))
    assert linted.returncode == 0, linted.stdout + linted.stderr
    validated = run(tool("sam"), "validate", "--lint", "--template-file", str(path))
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_ses_may_write_only_through_this_stacks_receipt_rule() -> None:
    t = Template()
    (_, allow) = t.resources["InboundMailBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "ses.amazonaws.com"} and allow["Action"] == "s3:PutObject"
    assert "aws:SourceAccount" in allow["Condition"]["StringEquals"]
    rule = t.resources["InboundReceiptRule"]["Properties"]["Rule"]
    arn = allow["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert arn.endswith(f":receipt-rule/{rule['Name']['Fn::Sub']}")
    assert rule["Actions"][0]["S3Action"]["ObjectKeyPrefix"] == "inbound/"
