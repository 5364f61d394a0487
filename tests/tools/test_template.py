"""Properties of template.yaml that a reviewer would otherwise check by hand."""

import json
from typing import Any

import pytest

from template_model import ROOT, Stack, load_template


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in load_template()["Resources"].items() if v["Type"] == kind}


def test_every_asynchronously_invoked_function_has_a_dead_letter_queue() -> None:
    asynchronous = {
        name
        for name, fn in resources("AWS::Serverless::Function").items()
        if any(
            e["Type"] in ("EventBridgeRule", "CloudWatchEvent", "SNS", "S3")
            for e in fn["Properties"].get("Events", {}).values()
        )
    }
    assert asynchronous == {"RestoreSafetyNetFunction"}
    for name in asynchronous:
        assert "DeadLetterQueue" in resources("AWS::Serverless::Function")[name]["Properties"]


def test_data_at_rest_is_encrypted_with_the_stack_key() -> None:
    key = {"Ref": "EncryptionKey"}
    assert all(q["Properties"]["KmsMasterKeyId"] == key for q in resources("AWS::SQS::Queue").values())
    assert all(t["Properties"]["KmsMasterKeyId"] == key for t in resources("AWS::SNS::Topic").values())
    assert resources("AWS::DynamoDB::Table")["RunTable"]["Properties"]["SSESpecification"]["KMSMasterKeyId"] == key
    bucket = resources("AWS::S3::Bucket")["DataBucket"]["Properties"]
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert rule["KMSMasterKeyID"] == key
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 30


def test_the_bucket_refuses_requests_without_tls() -> None:
    [statement] = resources("AWS::S3::BucketPolicy")["DataBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_every_state_machine_logs_errors_with_data_and_is_traced() -> None:
    for machine in resources("AWS::Serverless::StateMachine").values():
        props = machine["Properties"]
        assert props["Logging"]["Level"] in ("ERROR", "ALL")
        assert props["Logging"]["IncludeExecutionData"] is True
        assert props["Tracing"] == {"Enabled": True}


# -- as deployed: the template after SAM's transform ----------------------------------------------------
# Properties that set a physical name, per resource type: a fixed value is shared by every stack of the
# account and region, so a second stack (another tier, prod beside test) fails with "already exists".
NAME_PROPERTIES = {
    "AWS::Scheduler::Schedule": "Name",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::Events::Rule": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::IAM::Role": "RoleName",
    "AWS::EC2::SecurityGroup": "GroupName",
    "AWS::KMS::Alias": "AliasName",
}


@pytest.fixture(scope="module")
def deployed() -> dict[str, Any]:
    path = ROOT / "build" / "template.transformed.json"
    assert path.exists(), "build it with `make build/template.transformed.json` (make unit does)"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_two_stacks_can_live_side_by_side_in_one_account(deployed: dict[str, Any]) -> None:
    fixed = []
    for logical_id, resource in deployed["Resources"].items():
        name = resource.get("Properties", {}).get(NAME_PROPERTIES.get(resource["Type"], ""))
        if name is not None and "AWS::StackName" not in json.dumps(name):
            fixed.append(f"{logical_id}: {name}")
    assert fixed == [], "names shared by every stack of the account"
    schedules = [r for r in deployed["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert len(schedules) == 4 and all("Name" not in s["Properties"] for s in schedules)


def test_no_concurrency_is_reserved_unless_asked(deployed: dict[str, Any]) -> None:
    """Lambda keeps 100 unreserved: accounts with a small quota could not deploy a reservation."""
    stack = Stack(deployed, {})
    props = stack.resources("AWS::Lambda::Function")["ApprovalVerifierFunction"]["Properties"]
    assert stack.resolve(props.get("ReservedConcurrentExecutions")) in (None, "")
    capped = Stack(deployed, {"ApprovalReservedConcurrency": "5"})
    assert capped.resolve(props["ReservedConcurrentExecutions"]) == "5"


def test_every_function_logs_to_the_stack_s_encrypted_expiring_log_group(deployed: dict[str, Any]) -> None:
    functions = {k: r for k, r in deployed["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    assert functions and all(
        f["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": "FunctionsLogGroup"} for f in functions.values()
    )
    group = deployed["Resources"]["FunctionsLogGroup"]["Properties"]
    assert group["KmsKeyId"] == {"Fn::GetAtt": ["EncryptionKey", "Arn"]} and group["RetentionInDays"] > 0


def test_an_approval_request_that_cannot_be_mailed_goes_to_a_dead_letter_queue() -> None:
    queue = resources("AWS::SQS::Queue")["ApprovalQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["ApprovalDeadLetterQueue", "Arn"]}
    mailer = resources("AWS::Serverless::Function")["ApprovalMailerFunction"]["Properties"]
    source = mailer["Events"]["ApprovalRequested"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert queue["VisibilityTimeout"] >= 6 * 30, "Lambda recommends 6 x the function timeout"


def test_the_alarm_toggler_protects_exactly_the_stack_s_own_alarm_and_safety_net_rule() -> None:
    """The names the toggler never mutes are the names template.yaml gives those resources."""
    functions = resources("AWS::Serverless::Function")
    planner = functions["RestartPlannerFunction"]["Properties"]["Environment"]["Variables"]
    env = functions["AlarmTogglerFunction"]["Properties"]["Environment"]["Variables"]
    assert {k: planner[k] for k in ("NEVER_MUTE_ALARM_NAMES", "NEVER_MUTE_RULE_NAMES")} == {
        k: env[k] for k in ("NEVER_MUTE_ALARM_NAMES", "NEVER_MUTE_RULE_NAMES")
    }, "the plan reports what the toggler protects"
    alarm = resources("AWS::CloudWatch::Alarm")["ExecutionsEndedBadlyAlarm"]["Properties"]
    [rule] = [
        e["Properties"]
        for e in functions["RestoreSafetyNetFunction"]["Properties"]["Events"].values()
        if e["Type"] == "EventBridgeRule"
    ]
    own_alarm, own_rule = "${AWS::StackName}-executions-ended-badly", "${AWS::StackName}-safety-net"
    assert env["NEVER_MUTE_ALARM_NAMES"] == alarm["AlarmName"] == {"Fn::Sub": own_alarm}
    assert env["NEVER_MUTE_RULE_NAMES"] == rule["RuleName"] == {"Fn::Sub": own_rule}


def test_the_open_runs_index_is_the_one_the_code_queries_and_holds_only_run_records() -> None:
    from opsflow.runs import OPEN_RUNS_INDEX, RUN_SK

    table = resources("AWS::DynamoDB::Table")["RunTable"]["Properties"]
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == OPEN_RUNS_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": "sk", "KeyType": "HASH"},  # the code queries sk = RUN_SK
        {"AttributeName": "openSince", "KeyType": "RANGE"},  # only open run records carry it: sparse
    ]
    assert RUN_SK == "run"


def test_the_reconciler_runs_on_a_schedule_that_two_stacks_can_share_an_account_with() -> None:
    [event] = resources("AWS::Serverless::Function")["RunReconcilerFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["ScheduleExpression"] == {"Ref": "ReconcileSchedule"}
    assert event["Properties"]["OmitName"] is True and "Name" not in event["Properties"]
    assert load_template()["Parameters"]["ReconcileSchedule"]["Default"] == "rate(5 minutes)"
