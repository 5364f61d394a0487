"""Every error name a Retry or Catch matches is one AWS actually emits for that Task.

A name that is never emitted fails silently: the retry never happens, the catch never catches. The
rules, from the Step Functions developer guide:
- Lambda tasks: the function's ``errorType`` (here, the class name of what the code raises) or the
  documented ``Lambda.*`` service errors (bp-lambda-serviceexception).
- AWS SDK integrations: ``ServiceName.ErrorName`` in Pascal case, "always add the Exception suffix"
  (supported-services-awssdk); services without modeled errors (EC2) only raise the generic
  ``<Service>.<Service>Exception``, whatever the error code.
- Optimized DynamoDB tasks: the ``DynamoDB.`` prefix (connect-ddb, "Exception prefix differences"),
  with the same suffix rule.
- ``States.*``: the predefined names of concepts-error-handling.
"""

import re
from typing import Any

import botocore.session
import pytest

from sandbox.authorization import SDK_ERROR_SERVICE_NAMES
from tools.asl import BOTO3_NAMES, definitions, states
from tools.reachable import function_app, reachable_modules

STATES_ERRORS = {
    "States.ALL",
    "States.TaskFailed",
    "States.Timeout",
    "States.HeartbeatTimeout",
    "States.Permissions",
    "States.ResultPathMatchFailure",
    "States.ParameterPathFailure",
    "States.BranchFailed",
    "States.NoChoiceMatched",
    "States.IntrinsicFailure",
    "States.ExceedToleratedFailureThreshold",
    "States.ItemReaderFailed",
    "States.ResultWriterFailed",
    "States.QueryEvaluationError",
}
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
}
# Error codes the services document for throttling; functions that re-raise a service's error under its
# code (opsflow.errors.service_error) can surface these. SSM: ThrottlingException; EC2: RequestLimitExceeded.
SERVICE_CODES = {"ThrottlingException", "RequestLimitExceeded"}
# How Step Functions spells each service in error names: optimized integrations, then SDK integrations.
PREFIXES = {
    "dynamodb": ("dynamodb", "DynamoDB"),
    "sns": ("sns", "SNS"),
    "sqs": ("sqs", "SQS"),
    "states": ("stepfunctions", "StepFunctions"),
}
MODELS = botocore.session.get_session()


def modeled(service: str, prefix: str) -> set[str]:
    shapes = MODELS.get_service_model(service).error_shapes
    suffixed = {s.name if s.name.endswith("Exception") else f"{s.name}Exception" for s in shapes}
    return {f"{prefix}.{name}" for name in suffixed | {f"{prefix}Exception"}}


def raised_by(logical_id: str) -> set[str]:
    """The error class names the function's reachable code raises (or builds for its caller to raise: a pure
    decision returns the error), plus service codes where it passes them on."""
    names: set[str] = set()
    for module in reachable_modules(function_app(logical_id)):
        source = module.read_text(encoding="utf-8")
        names |= set(re.findall(r"raise ([A-Z]\w+)\(", source))
        names |= set(re.findall(r"return ([A-Z]\w+(?:Error|Exception))\(", source))
        if "raise service_error(" in source:
            names |= SERVICE_CODES
        if "idempotent_function(" in source:  # Powertools: a repeat while the first invocation still runs
            names.add("IdempotencyAlreadyInProgressError")
    return names


def emitted(state: dict[str, Any]) -> set[str]:
    """Every name the state can fail with."""
    resource = re.sub(r"\.(waitForTaskToken|sync(:2)?)$", "", state.get("Resource", ""))
    processor = state.get("ItemProcessor", {})
    if state["Type"] == "Map" and processor.get("ProcessorConfig", {}).get("Mode", "INLINE") == "INLINE":
        # An inline Map fails with the error of the iteration that failed (a distributed one does not).
        return STATES_ERRORS.union(*(emitted(inner) for inner in processor["States"].values()))
    if state["Type"] != "Task":
        return STATES_ERRORS
    if resource == "arn:aws:states:::lambda:invoke":
        function = re.fullmatch(r"\$\{(\w+)Arn\}", state["Parameters"]["FunctionName"])
        assert function, "Lambda tasks name their function as ${<LogicalId>Arn}"
        return STATES_ERRORS | LAMBDA_SERVICE_ERRORS | raised_by(function.group(1))
    if resource.startswith("arn:aws:states:::aws-sdk:"):
        service = resource.split(":")[6]
        return STATES_ERRORS | modeled(BOTO3_NAMES.get(service, service), SDK_ERROR_SERVICE_NAMES[service])
    service = resource.removeprefix("arn:aws:states:::").split(":")[0]
    return STATES_ERRORS | modeled(*PREFIXES[service])


CASES = [
    (name, path, state)
    for name, definition in definitions().items()
    for path, state in states(definition)
    if state.get("Retry") or state.get("Catch")
]


@pytest.mark.parametrize(("workflow", "path", "state"), CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_retry_and_catch_match_only_errors_the_task_emits(workflow: str, path: str, state: dict[str, Any]) -> None:
    can_fail_with = emitted(state)
    for clause in state.get("Retry", []) + state.get("Catch", []):
        never = [e for e in clause["ErrorEquals"] if e not in can_fail_with]
        assert never == [], f"{workflow}: '{path}' matches errors it can never get: {never}"


def test_the_rule_rejects_what_the_review_found() -> None:
    """The names that never matched: RequestLimitExceeded without the suffix, and a retry of ThrottlingException
    on a function that raised botocore's ClientError."""
    assert "DynamoDB.RequestLimitExceeded" not in modeled("dynamodb", "DynamoDB")
    assert "DynamoDB.RequestLimitExceededException" in modeled("dynamodb", "DynamoDB")
    assert modeled("ec2", "Ec2") == {"Ec2.Ec2Exception"}, "EC2 has no modeled errors: one generic name"
