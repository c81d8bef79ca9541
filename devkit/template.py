"""Reads template.yaml - the one definition of functions, routes, queues and tables - and resolves the
intrinsic functions the local stack needs (Ref, GetAtt, Sub, If, Equals, Not, Join, Select)."""

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short-form tags into their long form: !Ref x -> {"Ref": x}."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@dataclass(frozen=True)
class HttpRoute:
    method: str  # upper case, or ANY
    path: str  # API Gateway form: /subscriptions/{email}, or $default
    function: str

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        if self.path == "$default":
            return None
        parts = re.split(r"(\{[^}]+\})", self.path)
        regex = ""
        for part in parts:
            if part.startswith("{") and part.endswith("+}"):
                regex += f"(?P<{part[1:-2]}>.+)"
            elif part.startswith("{"):
                regex += f"(?P<{part[1:-1]}>[^/]+)"
            else:
                regex += re.escape(part)
        return re.compile(f"^{regex}$")

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class QueueSource:
    function: str
    queue: str  # logical id of the queue
    batch_size: int
    report_batch_item_failures: bool
    maximum_concurrency: int | None


@dataclass
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    timeout: int
    memory_size: int
    environment: dict[str, Any]  # unresolved values
    http_routes: list[HttpRoute] = field(default_factory=list)
    queue_sources: list[QueueSource] = field(default_factory=list)
    schedules: list[str] = field(default_factory=list)  # schedule expressions (run locally on an interval)

    @property
    def handler_file(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.code_uri / (module.replace(".", "/") + ".py")


class Template:
    def __init__(self, path: Path = TEMPLATE_PATH) -> None:
        self.path = path
        self.doc: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506
        self.resources: dict[str, dict[str, Any]] = self.doc["Resources"]
        self.parameters: dict[str, dict[str, Any]] = self.doc.get("Parameters", {})

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}

    def functions(self) -> dict[str, FunctionSpec]:
        globals_fn = self.doc.get("Globals", {}).get("Function", {})
        out: dict[str, FunctionSpec] = {}
        for logical_id, res in self.of_type("AWS::Serverless::Function").items():
            props = {**globals_fn, **res["Properties"]}
            env = {
                **globals_fn.get("Environment", {}).get("Variables", {}),
                **res["Properties"].get("Environment", {}).get("Variables", {}),
            }
            spec = FunctionSpec(
                logical_id=logical_id,
                code_uri=(self.path.parent / props["CodeUri"]).resolve(),
                handler=props["Handler"],
                timeout=int(props.get("Timeout", 3)),
                memory_size=int(props.get("MemorySize", 128)),
                environment=env,
            )
            for event in res["Properties"].get("Events", {}).values():
                ev_props = event.get("Properties", {})
                if event["Type"] == "HttpApi":
                    spec.http_routes.append(HttpRoute(ev_props["Method"].upper(), ev_props["Path"], logical_id))
                elif event["Type"] in ("Schedule", "ScheduleV2"):
                    spec.schedules.append(ev_props.get("ScheduleExpression") or ev_props["Schedule"])
                elif event["Type"] == "SQS":
                    queue = ev_props["Queue"]
                    queue_id = queue["Fn::GetAtt"][0] if isinstance(queue, dict) else queue
                    spec.queue_sources.append(
                        QueueSource(
                            function=logical_id,
                            queue=queue_id,
                            batch_size=int(ev_props.get("BatchSize", 10)),
                            report_batch_item_failures="ReportBatchItemFailures"
                            in ev_props.get("FunctionResponseTypes", []),
                            maximum_concurrency=ev_props.get("ScalingConfig", {}).get("MaximumConcurrency"),
                        )
                    )
            out[logical_id] = spec
        return out

    def http_routes(self) -> list[HttpRoute]:
        """Every route, most specific first: literal paths before parameterised ones, $default last."""
        routes = [r for spec in self.functions().values() for r in spec.http_routes]

        def specificity(route: HttpRoute) -> tuple[int, int, int]:
            if route.path == "$default":
                return (2, 0, 0)
            return (0, route.path.count("{"), -len(route.path))

        return sorted(routes, key=specificity)


def local_physical_name(logical_id: str, cfn_type: str) -> str:
    """The name a resource gets in the local stack (and in env.json): buckets must be lower case."""
    if cfn_type == "AWS::S3::Bucket":
        return f"martech-bridge-local-{logical_id.lower()}"
    return logical_id


def local_queue_url(name: str) -> str:
    return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"


class Resolver:
    """Evaluates intrinsics the way CloudFormation would for the local stack's resources."""

    def __init__(self, template: Template, parameter_overrides: dict[str, str] | None = None) -> None:
        self.template = template
        self.parameters = {name: str(p.get("Default", "")) for name, p in template.parameters.items()} | (
            parameter_overrides or {}
        )
        self.parameters |= {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "martech-bridge-local",
        }

    def ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        res = self.template.resources.get(name)
        if res is None:
            raise KeyError(f"Ref to unknown name {name}")
        physical = local_physical_name(name, res["Type"])
        if res["Type"] == "AWS::SQS::Queue":
            return local_queue_url(physical)
        return physical

    def get_att(self, name: str, attribute: str) -> str:
        res = self.template.resources[name]
        physical = local_physical_name(name, res["Type"])
        if attribute == "Arn":
            service = {"AWS::SQS::Queue": "sqs", "AWS::DynamoDB::Table": "dynamodb", "AWS::S3::Bucket": "s3"}
            svc = service.get(res["Type"], "unknown")
            if svc == "s3":
                return f"arn:aws:s3:::{physical}"
            if svc == "dynamodb":
                return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{physical}"
            return f"arn:aws:{svc}:{REGION}:{ACCOUNT_ID}:{physical}"
        if attribute == "QueueName":
            return physical
        if attribute == "QueueUrl":
            return local_queue_url(physical)
        raise KeyError(f"GetAtt {name}.{attribute} is not known locally")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.doc.get("Conditions", {})[name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::GetAtt":
            return self.get_att(*arg)
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::If":
            cond, then, otherwise = arg
            return self.resolve(then if self.condition(cond) else otherwise)
        if key == "Fn::Equals":
            a, b = (self.resolve(x) for x in arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(x) for x in arg)
        if key == "Fn::Or":
            return any(self.resolve(x) for x in arg)
        if key == "Fn::Join":
            sep, items = arg
            return sep.join(str(self.resolve(i)) for i in items)
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Condition":
            return self.condition(arg)
        return {key: self.resolve(arg)}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr in variables:
                return str(self.resolve(variables[expr]))
            if "." in expr and expr.split(".", 1)[0] in self.template.resources:
                return self.get_att(*expr.split(".", 1))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)
