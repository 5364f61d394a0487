"""Read template.yaml as CloudFormation would: short-form tags, Parameters, Conditions, intrinsics.

The sandbox, the tools and the tests use this to wire the real resources (functions, state machines and their
DefinitionSubstitutions, topics, tables...) without a second copy of the wiring.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"

_SHORT_TAGS = (
    "Ref",
    "Sub",
    "GetAtt",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Join",
    "Select",
    "Split",
    "FindInMap",
    "Base64",
    "ImportValue",
    "GetAZs",
    "Condition",
    "Cidr",
    "ToJsonString",
)


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that turns ``!Ref x`` into ``{"Ref": "x"}`` and so on."""


def _tag_constructor(tag: str) -> Callable[[yaml.SafeLoader, yaml.Node], Any]:
    key = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    return construct


for _tag in _SHORT_TAGS:
    _CfnLoader.add_constructor(f"!{_tag}", _tag_constructor(_tag))


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        doc = yaml.load(fh, Loader=_CfnLoader)
    if not isinstance(doc, dict) or "Resources" not in doc:
        raise ValueError(f"{path}: not a CloudFormation template (no Resources)")
    return doc


class TemplateError(Exception):
    """The template uses something the resolver cannot evaluate (named in the message)."""


@dataclass
class Stack:
    """A template with parameter values, able to resolve intrinsics to the sandbox's physical ids."""

    template: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    region: str = "eu-west-1"
    account: str = "123456789012"
    name: str = "opsflow"
    # Logical id -> {"Ref": ..., "Arn": ..., other attributes}; filled in as resources are created.
    physical: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        declared = self.template.get("Parameters", {})
        unknown = set(self.parameters) - set(declared)
        if unknown:
            raise TemplateError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
        values = {k: str(v.get("Default", "")) for k, v in declared.items() if "Default" in v}
        values.update(self.parameters)
        missing = set(declared) - set(values)
        if missing:
            raise TemplateError(f"template parameter(s) without a value: {', '.join(sorted(missing))}")
        self.parameters = values
        self._conditions: dict[str, bool] = {}

    # -- resources -------------------------------------------------------------------------
    def resources(self, type_: str | None = None) -> dict[str, dict[str, Any]]:
        """Resources (of ``type_``) whose Condition holds, with Globals merged into functions."""
        out = {}
        for logical_id, res in self.template["Resources"].items():
            if type_ is not None and res.get("Type") != type_:
                continue
            if "Condition" in res and not self.condition(res["Condition"]):
                continue
            out[logical_id] = self.with_globals(res)
        return out

    def with_globals(self, res: dict[str, Any]) -> dict[str, Any]:
        """``res`` with the template's Globals for its type merged under its own Properties."""
        kind = {"AWS::Serverless::Function": "Function", "AWS::Serverless::StateMachine": "StateMachine"}
        section = self.template.get("Globals", {}).get(kind.get(res.get("Type", ""), ""), {})
        if not section:
            return res
        props = _deep_merge(section, res.get("Properties", {}))
        return {**res, "Properties": props}

    # -- intrinsics ------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            try:
                expr = self.template["Conditions"][name]
            except KeyError:
                raise TemplateError(f"unknown condition {name!r}") from None
            self._conditions[name] = bool(self.resolve(expr))
        return self._conditions[name]

    def pseudo(self, name: str) -> str:
        values = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::StackName": self.name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.name}/sandbox",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": "",
        }
        if name not in values:
            raise TemplateError(f"unknown pseudo parameter {name}")
        return values[name]

    def ref(self, name: str) -> Any:
        if name in self.parameters:
            kind = self.template.get("Parameters", {}).get(name, {}).get("Type", "String")
            if kind == "CommaDelimitedList" or kind.startswith("List<"):
                return [v.strip() for v in self.parameters[name].split(",") if v.strip()]
            return self.parameters[name]
        if name.startswith("AWS::"):
            return self.pseudo(name)
        try:
            return self.physical[name]["Ref"]
        except KeyError:
            raise TemplateError(f"Ref to {name}, which the sandbox has not created") from None

    def get_att(self, logical_id: str, attribute: str) -> str:
        try:
            return self.physical[logical_id][attribute]
        except KeyError:
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: not known in the sandbox") from None

    def resolve(self, value: Any) -> Any:
        """Evaluate intrinsic functions in ``value`` (recursively)."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value if not _is_no_value(v)]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, arg)
        return {k: self.resolve(v) for k, v in value.items() if not _is_no_value(v)}

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}
        out, i = [], 0
        while i < len(text):
            start = text.find("${", i)
            if start < 0:
                out.append(text[i:])
                break
            out.append(text[i:start])
            end = text.index("}", start)
            name = text[start + 2 : end]
            if name.startswith("!"):
                out.append("${" + name[1:] + "}")
            elif name in variables:
                out.append(str(variables[name]))
            elif "." in name:
                logical_id, attribute = name.split(".", 1)
                out.append(self.get_att(logical_id, attribute))
            else:
                out.append(str(self.ref(name)))
            i = end + 1
        return "".join(out)


def _is_no_value(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("Ref") == "AWS::NoValue" and len(value) == 1


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _fn_if(stack: Stack, arg: list[Any]) -> Any:
    name, when_true, when_false = arg
    return stack.resolve(when_true if stack.condition(name) else when_false)


def _fn_select(stack: Stack, arg: list[Any]) -> Any:
    index, items = stack.resolve(arg[0]), stack.resolve(arg[1])
    return items[int(index)]


_INTRINSICS: dict[str, Callable[[Stack, Any], Any]] = {
    "Ref": lambda s, a: s.ref(a),
    "Fn::GetAtt": lambda s, a: s.get_att(*(a if isinstance(a, list) else a.split(".", 1))),
    "Fn::Sub": lambda s, a: s.sub(a),
    "Fn::If": _fn_if,
    "Fn::Equals": lambda s, a: str(s.resolve(a[0])) == str(s.resolve(a[1])),
    "Fn::Not": lambda s, a: not s.resolve(a[0]),
    "Fn::And": lambda s, a: all(s.resolve(v) for v in a),
    "Fn::Or": lambda s, a: any(s.resolve(v) for v in a),
    "Condition": lambda s, a: s.condition(a),
    "Fn::Join": lambda s, a: str(a[0]).join(str(v) for v in s.resolve(a[1])),
    "Fn::Select": _fn_select,
    "Fn::Split": lambda s, a: str(s.resolve(a[1])).split(a[0]),
    "Fn::ToJsonString": lambda s, a: __import__("json").dumps(s.resolve(a)),
}
