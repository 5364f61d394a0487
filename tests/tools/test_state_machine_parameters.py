"""Every parameter an SDK or optimized integration passes names a real member of the API's input.

A typo (`TargetGroupARN`) would otherwise fail only in production, when that branch first runs.
"""

from typing import Any

import botocore.session
import pytest

from tools.asl import definitions, tasks

MODELS = botocore.session.get_session()
ALL_TASKS = [(name, task) for name, definition in definitions().items() for task in tasks(definition)]


def unknown_members(value: Any, shape: Any, where: str, pascal: bool = False) -> list[str]:
    """``pascal``: the integration spells the API's camelCase members in PascalCase (Step Functions'
    optimized startExecution takes StateMachineArn, Input: "Call Step Functions from a workflow")."""
    problems = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, inner in value.items():
            member = key.removesuffix(".$")
            if pascal:
                member = member[:1].lower() + member[1:]
            if member not in shape.members:
                problems.append(f"{where}.{member}")
            elif not key.endswith(".$"):
                problems += unknown_members(inner, shape.members[member], f"{where}.{member}")
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            problems += unknown_members(item, shape.member, f"{where}[{i}]")
    return problems


@pytest.mark.parametrize(("machine", "task"), ALL_TASKS, ids=[f"{m}: {t.path}" for m, t in ALL_TASKS])
def test_every_parameter_is_a_member_of_the_api_input(machine: str, task: Any) -> None:
    model = MODELS.get_service_model(task.service).operation_model(task.operation)
    parameters = task.state.get("Parameters", {})
    pascal = task.service == "stepfunctions" and not task.state["Resource"].startswith("arn:aws:states:::aws-sdk:")
    assert unknown_members(parameters, model.input_shape, task.operation, pascal) == []
    required = set(model.input_shape.required_members)
    given = {key.removesuffix(".$") for key in parameters}
    given |= {k[:1].lower() + k[1:] for k in given} if pascal else set()
    assert required <= given, f"{task.path}: missing required {sorted(required - given)}"


def test_a_misspelt_parameter_is_found() -> None:
    shape = MODELS.get_service_model("elbv2").operation_model("DeregisterTargets").input_shape
    problems = unknown_members({"TargetGroupARN.$": "$.arn", "Targets": [{"Id.$": "$.id", "Zone": "x"}]}, shape, "Op")
    assert problems == ["Op.TargetGroupARN", "Op.Targets[0].Zone"]
