"""The sandbox enforces IAM as AWS does: a function gets what its role allows, and the service's own refusal otherwise.

CallerFunction (tests/sandbox/fixture) makes the call its event names; its role may publish to the
fixture's topic and nothing else.
"""

import json
from pathlib import Path
from typing import Any

from sandbox.runtime import Sandbox

CALLER = "CallerFunction"


def call(sb: Sandbox, service: str, method: str, **params: Any) -> dict[str, Any]:
    """Invoke CallerFunction as Lambda would; its answer, or the Lambda error payload."""
    event = {"service": service, "method": method, "params": params}
    payload, _, _ = sb.lambdas.invoke(sb.lambdas.by_logical_id(CALLER).function_name, json.dumps(event))
    return dict(json.loads(payload))


def test_what_the_role_allows_goes_through(features: Sandbox) -> None:
    topic = features.stack.physical["Topic"]["Ref"]

    answer = call(features, "sns", "publish", TopicArn=topic, Message="hello")

    assert answer == {"code": None}
    assert features.bridge.denied == []


def test_what_the_role_does_not_allow_is_refused_with_the_service_s_error(features: Sandbox) -> None:
    queue = features.stack.physical["Queue"]["Ref"]

    answer = call(features, "sqs", "send_message", QueueUrl=queue, MessageBody="hello")

    assert (answer["code"], answer["status"]) == ("AccessDenied", 403)
    assert "is not authorized to perform: sqs:SendMessage on resource: arn:aws:sqs:eu-west-1:" in answer["message"]
    assert "because no identity-based policy allows the sqs:SendMessage action" in answer["message"]
    [denial] = features.bridge.denied
    assert (denial.principal, denial.action, denial.code) == (CALLER, "sqs:SendMessage", "AccessDenied")
    assert any("AccessDenied" in line for line in features.lambdas.logs[CALLER]), "the denial is in the function's log"
    messages = features.client("sqs").receive_message(QueueUrl=queue).get("Messages", [])
    assert messages == [], "moto never saw the call"


def test_ec2_refuses_with_unauthorized_operation(features: Sandbox) -> None:
    instance = sorted(features.fleet.instances)[0]

    answer = call(features, "ec2", "reboot_instances", InstanceIds=[instance])

    assert (answer["code"], answer["status"]) == ("UnauthorizedOperation", 403)
    assert answer["message"].startswith("You are not authorized to perform this operation.")
    assert (
        f"ec2:RebootInstances on resource: arn:aws:ec2:eu-west-1:123456789012:instance/{instance}" in answer["message"]
    )


def test_the_harness_itself_is_not_checked(features: Sandbox) -> None:
    queue = features.stack.physical["Queue"]["Ref"]

    features.client("sqs").send_message(QueueUrl=queue, MessageBody="set-up")

    assert features.bridge.denied == []


def test_a_call_the_sandbox_cannot_authorize_fails_the_function_loudly(features: Sandbox) -> None:
    answer = call(features, "sns", "list_topics")

    assert answer["errorType"] == "UnmappedOperation"
    assert "sns:ListTopics" in answer["errorMessage"] and "sandbox/authorization.py" in answer["errorMessage"]
    assert features.bridge.unmapped, "and the sandbox remembers it, so a workflow that caught it still fails"


def test_a_state_machine_task_calls_with_the_state_machine_s_role(features: Sandbox) -> None:
    """FeaturesStateMachine may describe target health (its role) though no function role allows it."""
    result = features.run(
        "FeaturesStateMachine", {"path": "sdk", "targetGroupArn": features.fleet_resources["TargetGroupArn"]}
    )

    assert result.status == "SUCCEEDED"
    assert features.bridge.denied == []
    assert [c.caller for c in features.bridge.calls_to("elastic-load-balancing-v2", "DescribeTargetHealth")] == [None]


def test_a_state_machine_may_invoke_only_the_functions_its_role_names(features: Sandbox, tmp_path: Path) -> None:
    """lambda:InvokeFunction is checked too: FeaturesStateMachine's role names FlakyFunction, not CallerFunction."""
    task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}
    task["Parameters"] = {"FunctionName": "${CallerArn}", "Payload": {"service": "sns", "method": "list_topics"}}
    definition = tmp_path / "intruder.asl.json"
    definition.write_text(json.dumps({"StartAt": "Call", "States": {"Call": task}}), encoding="utf-8")
    caller_arn = {"Fn::GetAtt": ["CallerFunction", "Arn"]}
    features.deploy_definition("Intruder", definition, {"CallerArn": caller_arn}, role_of="FeaturesStateMachine")

    result = features.run("Intruder", {})

    assert result.status == "FAILED"
    assert "is not authorized to perform: lambda:InvokeFunction on resource: arn:aws:lambda:" in (result.cause or "")
    assert [(d.principal, d.action) for d in features.bridge.denied] == [("Intruder", "lambda:InvokeFunction")]
    assert CALLER not in {i.logical_id for i in features.lambdas.invocations}, "the function never ran"
