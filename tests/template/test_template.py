"""template.yaml stays deployable: linted by cfn-lint and `sam validate --lint`, built by `sam build` for
arm64 with nothing x86_64 inside, and consistent with env.json, the settings model and the contract."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from martech_bridge.config import Settings

from devkit.layer import check_layer, compiled_extensions
from devkit.runtime import load_env_json
from devkit.template import REPO_ROOT, Resolver, Template

pytestmark = pytest.mark.template

CONTRACT_ROUTES = {
    "POST /relay/{route}",
    "GET /relay/{route}",
    "POST /mail/send",
    "POST /events/{provider}",
    "GET /messages/{dispatch_id}",
    "GET /messages",
    "GET /reports",
    "GET /deliveries/{delivery_id}",
    "POST /deliveries/{delivery_id}/retry",
    "GET /subscriptions/{email}",
    "PUT /subscriptions/{email}",
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH; `make test` installs it into .venv-tools")
    return path


def run(*command: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def test_cfn_lint_reports_nothing() -> None:
    result = run(tool("cfn-lint"), "template.yaml")
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_sam_validate_lint_reports_nothing() -> None:
    result = run(tool("sam"), "validate", "--lint", "--template-file", "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def python312_available() -> bool:
    exe = shutil.which("python3.12")
    return (
        bool(exe)
        and subprocess.run(
            [exe, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"], capture_output=True
        ).returncode
        == 0
    )


def test_sam_build_for_arm64_has_no_x86_extension_and_a_small_layer(tmp_path: Path) -> None:
    if not python312_available():
        pytest.skip("sam build needs python3.12 on PATH (the Lambda runtime's version); none runs on this machine")
    build = tmp_path / "build"
    result = run(tool("sam"), "build", "--parallel", "--build-dir", str(build), "--template-file", "template.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    extensions = compiled_extensions(build)
    assert any("msgspec" in str(e.path) for e in extensions), "msgspec's extension should be in the layer"
    assert not (build / "CommonLayer/python/pydantic").exists(), "pydantic checks at build time; no function loads it"
    # Bytecode ships in the layer (Lambda cannot write it there), and is used whatever the zip's file times.
    compiled = build / "CommonLayer/python/martech_bridge/__pycache__/config.cpython-312.pyc"
    assert compiled.is_file() and int.from_bytes(compiled.read_bytes()[4:8], "little") == 0b01
    assert check_layer(build, max_mb=30, prune=True) == 0
    for logical_id in Template().functions():
        assert (build / logical_id / "handler.py").is_file()
        assert not (build / logical_id / "martech_bridge").exists(), "the package belongs in the layer only"


def test_the_build_check_uses_the_pydantic_the_project_pins() -> None:
    # The layer's Makefile installs pydantic for its check only; a pin drifting from pyproject.toml's would
    # check the routes file with another schema than `make run` and the tests use.
    makefile = (REPO_ROOT / "layers/common/Makefile").read_text()
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    pin = re.search(r"pydantic==[0-9.]+", makefile)
    assert pin and f'"{pin.group(0)}"' in pyproject


def test_sam_build_refuses_a_broken_routes_file_naming_file_route_and_field(tmp_path: Path) -> None:
    # The layer's Makefile is what `sam build` runs for CommonLayer; it checks before installing anything.
    source = tmp_path / "common"
    shutil.copytree(REPO_ROOT / "layers/common", source, ignore=shutil.ignore_patterns("__pycache__"))
    config = source / "config/bridge.json"
    data = json.loads(config.read_text())
    name, route = next(iter(data["routes"].items()))
    route["target"]["app"] = "seven"
    config.write_text(json.dumps(data))
    artifacts = tmp_path / "artifacts"
    result = subprocess.run(
        ["make", "--no-print-directory", "build-CommonLayer", f"ARTIFACTS_DIR={artifacts}"],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "layers/common/config/bridge.json" in result.stderr
    assert f"route {name}, field target" in result.stderr and "app" in result.stderr
    assert not (artifacts / "python").exists(), "nothing is installed from a broken config"


# ------------------------------------------------------------------ consistency
@pytest.fixture(scope="module")
def t() -> Template:
    return Template()


def declared(t: Template) -> dict[str, set[str]]:
    return {fid: set(spec.environment) for fid, spec in t.functions().items()}


def test_env_json_only_sets_declared_variables(t: Template) -> None:
    env_json = load_env_json()
    everywhere = set.intersection(*declared(t).values())
    assert set(env_json["Parameters"]) <= everywhere
    for fid, values in env_json.items():
        if fid != "Parameters":
            assert fid in declared(t), f"env.json names {fid}, which the template does not define"
            assert set(values) <= declared(t)[fid], f"{fid}: {set(values) - declared(t)[fid]} not declared"


def test_env_json_points_at_the_resources_the_local_stack_creates(t: Template) -> None:
    resolver, env_json = Resolver(t), load_env_json()
    for fid, spec in t.functions().items():
        for key, value in spec.environment.items():
            if isinstance(value, dict) and value.get("Ref") in t.resources:
                assert env_json[fid][key] == resolver.resolve(value), f"{fid}.{key}"


def test_every_secret_setting_has_a_local_value(t: Template) -> None:
    env_json = load_env_json()
    for fid, spec in t.functions().items():
        for key, value in spec.environment.items():
            if isinstance(value, dict) and str(value.get("Ref", "")).endswith("Ref"):
                assert env_json[fid].get(key), f"{fid}.{key} needs a local value in env.json"


def test_every_setting_is_declared_and_every_declared_variable_is_a_setting(t: Template) -> None:
    variables = set.union(*declared(t).values())
    fields = {name.upper() for name in Settings.field_names()}
    # AWS_ENDPOINT_URL is boto3's own (sam local invoke), not a setting of the bridge.
    assert {v for v in variables if not v.startswith("POWERTOOLS_")} - {"AWS_ENDPOINT_URL"} == fields


def test_sam_local_invoke_reaches_the_embedded_aws_from_a_container(t: Template) -> None:
    from devkit.runtime import DEFAULT_AWS_PORT

    env_json = load_env_json()
    # SAM drops what a function does not declare: every function declares it, empty when deployed...
    for fid, names in declared(t).items():
        assert "AWS_ENDPOINT_URL" in names, fid
    assert t.doc["Globals"]["Function"]["Environment"]["Variables"]["AWS_ENDPOINT_URL"] == ""
    # ...and env.json names the host as a container sees it, on the port `make run` fixes for it.
    assert env_json["Parameters"]["AWS_ENDPOINT_URL"] == f"http://host.docker.internal:{DEFAULT_AWS_PORT}"
    assert not any("AWS_ENDPOINT_URL" in v for k, v in env_json.items() if k != "Parameters")


def test_each_function_has_its_own_code_uri(t: Template) -> None:
    uris = [spec.code_uri for spec in t.functions().values()]
    assert len(set(uris)) == len(uris)
    for spec in t.functions().values():
        assert spec.code_uri.parent == REPO_ROOT / "functions" and spec.handler_file.is_file()


def test_layer_is_built_by_sam_for_arm64(t: Template) -> None:
    layer = t.resources["CommonLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    globals_fn = t.doc["Globals"]["Function"]
    assert (globals_fn["Runtime"], globals_fn["Architectures"], globals_fn["Tracing"]) == (
        "python3.12",
        ["arm64"],
        "Active",
    )


def test_every_contract_route_is_wired(t: Template) -> None:
    assert CONTRACT_ROUTES <= {r.route_key for r in t.http_routes()}


def refs(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0])
            else:
                found |= refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= refs(inner)
    return found


def test_policies_grant_only_the_tables_and_queues_a_function_uses(t: Template) -> None:
    stateful = (
        set(t.of_type("AWS::DynamoDB::Table")) | set(t.of_type("AWS::SQS::Queue")) | set(t.of_type("AWS::S3::Bucket"))
    )
    for fid, res in t.of_type("AWS::Serverless::Function").items():
        props = res["Properties"]
        used = refs(props.get("Environment")) & stateful
        sources = {s.queue for s in t.functions()[fid].queue_sources}
        granted = refs(props.get("Policies")) & stateful
        assert granted == used | (sources & granted), f"{fid}: granted {granted}, uses {used}"
        assert used <= granted | sources, f"{fid} uses {used - granted} without a policy"


def test_queues_have_dlqs_and_workers_report_partial_failures(t: Template) -> None:
    queues = t.of_type("AWS::SQS::Queue")
    for name, queue in queues.items():
        if not name.endswith("DLQ"):
            assert queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] in queues
    for spec in t.functions().values():
        for source in spec.queue_sources:
            assert source.report_batch_item_failures and source.maximum_concurrency


def test_tables_are_on_demand_with_ttl_and_point_in_time_recovery(t: Template) -> None:
    for name, table in t.of_type("AWS::DynamoDB::Table").items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", name
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}, name
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name


def test_secrets_are_references_never_values(t: Template) -> None:
    for name, param in t.parameters.items():
        if name.endswith("Ref"):
            assert param["Default"] == "" and re.search("ssm:", param["AllowedPattern"]), name


def test_static_egress_ip_is_optional_and_exposed(t: Template) -> None:
    assert t.parameters["EnableStaticEgressIp"]["Default"] == "false"
    assert t.doc["Outputs"]["StaticEgressIp"]["Condition"] == "StaticEgressIp"
    assert all(t.resources[r].get("Condition") == "StaticEgressIp" for r in ("NatGateway", "EgressIp", "EgressVpc"))


def emitted_metric_names() -> set[str]:
    """Every application metric the code can emit: literal names, plus the per-type families."""
    from martech_bridge.models.events import EventType

    names: set[str] = set()
    for path in (REPO_ROOT / "layers/common/martech_bridge").rglob("*.py"):
        names |= set(re.findall(r'(?:add_metric\(name=|_metric\(|count\()"(\w+)"', path.read_text()))
    names |= {f"Events{t.value.capitalize()}" for t in EventType}
    names |= {f"Sends{o.capitalize()}" for o in ("accepted", "failed", "unknown")}
    return names


def test_dashboard_and_alarms_chart_only_metrics_the_code_emits(t: Template) -> None:
    import json

    body = t.resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "X", body))
    charted: set[str] = set()
    for widget in dashboard["widgets"]:
        for row in widget["properties"]["metrics"]:
            if row and row[0] in ("X", ".") and isinstance(row[1], str):
                charted.add(row[1])
    for res in t.of_type("AWS::CloudWatch::Alarm").values():
        for metric in res["Properties"].get("Metrics", []):
            stat = metric.get("MetricStat", {}).get("Metric", {})
            if "MartechBridge" in json.dumps(stat.get("Namespace")):
                charted.add(stat["MetricName"])
    assert len(charted) > 15
    assert charted <= emitted_metric_names(), charted - emitted_metric_names()


def test_every_dlq_has_an_alarm(t: Template) -> None:
    alarmed = {
        r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for r in t.of_type("AWS::CloudWatch::Alarm").values()
        if r["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    assert alarmed == {q for q in t.of_type("AWS::SQS::Queue") if q.endswith("DLQ")}


def _secret_parts(policies: Any) -> set[str]:
    """The parts of /SecretsPath/Stage/ a function's policies let it read, SSM and Secrets Manager alike."""
    parts: set[str] = set()
    text = repr(policies)
    for found in re.findall(r"\$\{SecretsPath\}(/[^'\"]*)", text):
        assert found.startswith("/${Stage}/"), f"secret access outside the stage: {found}"
        parts.add(found[len("/${Stage}/") :])
    return parts


def test_each_function_may_read_only_the_secrets_it_references(t: Template) -> None:
    from bridgectl.setup import PARAMETER_SCOPES

    read_by = {
        fid: _secret_parts(res["Properties"].get("Policies"))
        for fid, res in t.of_type("AWS::Serverless::Function").items()
    }
    for fid, res in t.of_type("AWS::Serverless::Function").items():
        env = res["Properties"].get("Environment", {}).get("Variables", {})
        # Each template secret parameter a function is given must sit in a part it may read...
        refs_given = [v["Ref"] for v in env.values() if isinstance(v, dict) and v.get("Ref") in PARAMETER_SCOPES]
        needed = {PARAMETER_SCOPES[r] for r in refs_given}
        for scope in needed:
            assert any(scope.startswith(p.rstrip("*")) for p in read_by[fid]), f"{fid} cannot read {scope}"
        # ...and it may read nothing beyond those and its routes' or sinks' parts.
        extra = {p for p in read_by[fid] if not any(s.startswith(p.rstrip("*")) for s in needed)}
        assert extra <= {"routes/*", "sinks/*"}, f"{fid} may read {extra}"
    # The function anonymous callers reach reads only what verifies webhooks: no ESP keys, no target tokens.
    assert read_by["EventsFunction"] == {"webhooks/*"}
    assert read_by["RelayFunction"] == {"routes/*"} and read_by["EventWorkerFunction"] == {"sinks/*"}
    assert not read_by["SweeperFunction"]


def test_access_logs_name_the_route_never_the_path(t: Template) -> None:
    fmt = t.resources["HttpApi"]["Properties"]["AccessLogSettings"]["Format"]
    assert "$context.routeKey" in fmt and "$context.path" not in fmt and "$context.resourcePath" not in fmt


def test_cloudwatch_may_publish_to_the_alarm_topic(t: Template) -> None:
    topic = t.resources["AlarmTopic"]["Properties"]
    key_id = topic.get("KmsMasterKeyId")
    if key_id is not None:
        # An AWS-managed key (alias/aws/sns) cannot grant CloudWatch; it must be the stack's own key.
        key = t.resources[key_id["Ref"]]["Properties"]["KeyPolicy"]["Statement"]
        grants = [s for s in key if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
        assert grants and {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(grants[0]["Action"])
    for alarm in t.of_type("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_layer_ships_no_local_configuration() -> None:
    shipped = REPO_ROOT / "layers/common/config"
    assert not list(shipped.glob("*local*"))
    for path in shipped.glob("*.json"):
        text = path.read_text()
        assert "127.0.0.1" not in text and "local-" not in text, path.name


def test_every_checkov_skip_says_why(t: Template) -> None:
    skips = [
        (name, skip)
        for name, res in t.resources.items()
        for skip in (res.get("Metadata", {}).get("checkov", {}).get("skip") or [])
    ]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]) and len(skip.get("comment", "")) > 20, (name, skip)


def test_checkov_reports_no_finding() -> None:
    checkov = REPO_ROOT / ".venv-scan" / "bin" / "checkov"
    if not checkov.exists():
        pytest.skip("checkov is installed by `make lint` (.venv-scan)")
    result = run(
        str(checkov),
        "--quiet",
        "--compact",
        "--skip-download",
        "--framework",
        "cloudformation",
        "--file",
        "template.yaml",
        "-o",
        "json",
    )
    import json

    report = json.loads(result.stdout)
    summary = (report[0] if isinstance(report, list) else report)["summary"]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0, result.stdout[-2000:]
