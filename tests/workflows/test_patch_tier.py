"""The patch workflow end to end: plan, preview of exactly the tier, approval, rolling install, compliance report."""

import json
import re
from collections.abc import Callable

from tests.workflows.conftest import SM, Tier, web_input

TierFactory = Callable[..., Tier]
PATCH_SM = "PatchTierStateMachine"


def pending_patches(given: Tier) -> dict[str, set[str]]:
    """Each instance's Missing and Failed patches (titles): what the preview must name, per instance."""
    data = given.sb.bridge.patches.data  # type: ignore[union-attr]
    return {i: {p["Title"] for p in data[i].patches if p["State"] in ("Missing", "Failed")} for i in given.instances}


def named_per_instance(mail: str, names: dict[str, str]) -> dict[str, set[str]]:
    """Which patches the preview in ``mail`` names for each instance (by its name in the patch's server list)."""
    preview = mail.split("Patches\n-------\n", 1)[1]
    found: dict[str, set[str]] = {i: set() for i in names}
    title = ""
    for line in preview.splitlines():
        if line.startswith("["):
            title = line.split("] ", 1)[1].rsplit("  (", 1)[0]
        elif line.startswith("  ") and ": " in line and title:
            servers = {s.strip() for s in line.split(": ", 1)[1].split(",")}
            for instance_id, name in names.items():
                if name in servers:
                    found[instance_id].add(title)
    return found


def test_one_mail_carries_the_preview_and_its_links_and_approving_installs_and_reports(tier: TierFactory) -> None:
    given = tier(size=3)
    before = pending_patches(given)
    arn = given.sb.start_execution(PATCH_SM, web_input(batchSize=1))

    links = given.approval_links()
    [mail] = given.notifications()  # the person in charge gets one mail: the preview with its links
    assert mail["Subject"].startswith("opsflow: approve patching web?") and len(mail["Subject"]) <= 99
    assert "3 servers checked" in mail["Message"], "the preview covers exactly the tier's instances"
    assert "AWS-RunPatchBaseline" in mail["Message"]
    assert named_per_instance(mail["Message"], given.sb.fleet.names) == before, "every pending patch, per instance"
    assert given.mutating_calls() == [] and given.sb.bridge.calls_to("ssm", "SendCommand") == []
    answer = given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=links["approve"])
    assert answer["statusCode"] == 200, answer
    result = given.sb.wait(arn, timeout=300)

    assert result.status == "SUCCEEDED", result.cause
    assert result.output["compliant"] == 3 and result.output["instances"] == 3
    report = next(n for n in given.notifications() if n["Subject"].startswith("opsflow patching"))
    assert report["Subject"] == "opsflow patching: 3 of 3 instances compliant"
    assert all(i in report["Message"] for i in given.instances)
    bucket, key = result.output["report"]["bucket"], result.output["report"]["key"]
    stored = json.loads(given.sb.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert {r["instanceId"]: r["missing"] for r in stored["instances"]} == dict.fromkeys(given.instances, 0)
    assert given.sb.bridge.patches.data[given.instances[0]].operation == "Install"  # type: ignore[union-attr]
    assert not [n for n in given.notifications() if n["Subject"].startswith("Patch preview")], "not mailed twice"
    assert not given.lock_held() and given.sb.monitoring_state() == given.before
    assert "unhealthy" not in given.target_states().values()


def test_an_instance_that_joins_the_tier_after_the_preview_is_named_in_the_approval_mail_and_not_patched(
    tier: TierFactory,
) -> None:
    """What is approved is what was previewed: the install is pinned to the planned instances."""
    given = tier(size=4)
    sb, newcomer = given.sb, given.instances[3]
    start = sb.clock.now()
    sb.client("elbv2").deregister_targets(TargetGroupArn=given.target_group_arn, Targets=[{"Id": newcomer}])
    sb.run_until(at=start + 120)  # drained and out of the tier (60 s deregistration delay)
    arn = sb.start_execution(PATCH_SM, web_input(batchSize=1))
    assert sb.run_until(lambda: "Preview the patches of the tier" in sb.result(arn).states_entered())
    # The preview takes a while (here: SSM throttles it), long enough for a new instance to pass a health check.
    sb.inject_api_error("ssm", "DescribeInstancePatchStates", "ThrottlingException", count=3)
    sb.client("elbv2").register_targets(TargetGroupArn=given.target_group_arn, Targets=[{"Id": newcomer}])

    links = given.approval_links()
    [mail] = given.notifications()
    assert "3 servers checked" in mail["Message"], "the preview was made before it joined"
    assert "Run a command on 3 of 4 targets" in mail["Message"], "it is in the tier, healthy, when the install plans"
    assert f"Not patched, as they joined the tier after the preview was made: {newcomer};" in mail["Message"]
    sb.invoke_url("ApprovalVerifierFunction", "POST", body=links["approve"])
    result = sb.wait(arn, timeout=300)

    assert result.status == "SUCCEEDED", result.cause
    commanded = {i for c in sb.bridge.calls_to("ssm", "SendCommand") for i in c.params["InstanceIds"]}
    assert commanded == set(given.instances[:3]), "exactly the previewed instances are patched"
    assert sb.bridge.patches.data[newcomer].operation != "Install"  # type: ignore[union-attr]
    assert result.output["instances"] == 3 and result.output["compliant"] == 3
    assert given.target_states()[newcomer] == "healthy", "left serving, untouched"


def test_a_preview_too_long_for_a_mail_is_summed_up_with_where_the_rest_is_and_the_links_stay(
    tier: TierFactory,
) -> None:
    """A long preview gives the mail its summary and where the full report is; the links come first."""
    given = tier(size=2)
    data = given.sb.bridge.patches.data  # type: ignore[union-attr]
    for n, instance_id in enumerate(given.instances):
        for k in range(1200):  # a long list of patches, each with a long title
            data[instance_id].patches.append(
                {
                    **data[instance_id].patches[0],
                    "Title": f"{'x' * 200} {n}-{k}",
                    "KBId": f"KB{n}{k:05}",
                    "State": "Missing",
                }
            )
    arn = given.sb.start_execution(PATCH_SM, web_input(batchSize=1))

    links = given.approval_links()
    [mail] = given.notifications()
    assert len(mail["Message"].encode()) <= 262_144 and len(mail["Subject"]) <= 99
    assert mail["Message"].index("Reject: ") < mail["Message"].index("Patch preview\n")
    full = mail["Message"].split("The full report (", 1)[1].split(" is at s3://", 1)[1].split(" ", 1)[0]
    bucket, key = full.split("/", 1)
    assert b"x 1-1199" in given.sb.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=links["reject"])
    assert given.sb.wait(arn).error == "PatchingNotApproved"


def test_a_failed_install_still_reports_compliance_naming_the_instance_left_unpatched(tier: TierFactory) -> None:
    given = tier(size=3)
    broken = min(given.instances)
    given.sb.commands.inject(broken, "command_fails")
    arn = given.sb.start_execution(PATCH_SM, web_input(batchSize=1))
    given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=given.approval_links()["approve"])

    result = given.sb.wait(arn, timeout=300)

    assert result.status == "FAILED" and result.error == "PatchingFailed"
    report = next(n for n in given.notifications() if n["Subject"].startswith("opsflow patching"))
    assert report["Subject"] == "opsflow patching: 0 of 3 instances compliant"
    line = next(x for x in report["Message"].splitlines() if x.startswith(broken))
    assert line.endswith("not compliant"), "the failed package is counted as failed"


def test_a_resumed_patch_run_installs_on_what_the_failed_install_left(tier: TierFactory) -> None:
    """resumeFrom names the failed install: its record fixes the instances, so the install is not pinned again."""
    given = tier(size=3)
    sb, broken = given.sb, max(given.instances)  # the last one the plan takes (by id)
    sb.commands.inject(broken, "command_fails")
    failed = sb.start_execution(PATCH_SM, web_input(batchSize=1))
    sb.invoke_url("ApprovalVerifierFunction", "POST", body=given.approval_links()["approve"])
    assert sb.wait(failed, timeout=300).error == "PatchingFailed"
    installs = sb.client("stepfunctions").list_executions(
        stateMachineArn=sb.state_machine_arn(SM), statusFilter="FAILED"
    )["executions"]
    [install] = [e["executionArn"] for e in installs]
    sb.commands.faults.pop(broken)  # fixed
    sb.run_until(at=sb.clock.now() + 60)  # it was put back: healthy again after a health check
    sent_before = len(sb.bridge.calls_to("ssm", "SendCommand"))
    mails_before = len(given.notifications())

    resumed = sb.start_execution(PATCH_SM, web_input(batchSize=1, resumeFrom=install))
    assert sb.run_until(lambda: len(given.notifications()) > mails_before), "no approval mail for the resumed run"
    mail = given.notifications()[mails_before]["Message"]
    assert "which finished 2 instances. Run a command on 1 of 3 targets" in mail, "the plan: what is left"
    assert "Not patched" not in mail, "the instances it finished are not newcomers"
    approve = re.search(r"^Approve: \S+?\?(\S+)$", mail, re.MULTILINE)
    assert approve, mail
    sb.invoke_url("ApprovalVerifierFunction", "POST", body=approve.group(1))
    result = sb.wait(resumed, timeout=300)

    assert result.status == "SUCCEEDED", result.cause
    sent = [c.params["InstanceIds"] for c in sb.bridge.calls_to("ssm", "SendCommand")[sent_before:]]
    assert sent == [[broken]], "only the instance the failed install left"
    assert result.output["instances"] == 1 and result.output["compliant"] == 1


def test_a_rejected_approval_touches_nothing(tier: TierFactory) -> None:
    given = tier(size=3)
    arn = given.sb.start_execution(PATCH_SM, web_input(batchSize=1))

    given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=given.approval_links()["reject"])
    result = given.sb.wait(arn)

    assert result.status == "FAILED" and result.error == "PatchingNotApproved"
    assert len(given.notifications()) == 1, "the one mail, the preview with its links; nothing after"
    assert given.mutating_calls() == []
    assert given.sb.bridge.calls_to("ssm", "SendCommand") == []
    assert not given.lock_held() and given.sb.monitoring_state() == given.before
    assert set(given.target_states().values()) == {"healthy"}
    assert not [n for n in given.notifications() if n["Subject"].startswith("opsflow patching")]


def test_an_input_the_rolling_restart_refuses_refuses_the_patch_run_before_the_preview(tier: TierFactory) -> None:
    given = tier(size=2)

    result = given.sb.run(PATCH_SM, web_input(batchSize=5))

    assert result.status == "FAILED" and result.error == "PatchRunRefused"
    assert "UnsafeBatchSizeError" in (result.cause or "")
    assert given.notifications() == [], "no preview, no approval request"


def test_a_patch_run_stopped_mid_install_stops_the_install_and_the_tier_is_restored(tier: TierFactory) -> None:
    """Stopping the patch workflow stops its nested rolling restart (Step Functions stops a .sync child),
    whose safety net restores the tier; the instance whose command still runs is put back only once the
    command has ended and its application answers."""
    given = tier(size=3)
    since = given.sb.clock.now()
    arn = given.sb.start_execution(PATCH_SM, web_input(batchSize=1))
    given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=given.approval_links()["approve"])
    assert given.sb.run_until(lambda: bool(given.sb.bridge.calls_to("ssm", "SendCommand")), timeout=120)
    sfn = given.sb.client("stepfunctions")
    restart_machine = given.sb.state_machine_arn("RollingRestartStateMachine")
    [install] = sfn.list_executions(stateMachineArn=restart_machine, statusFilter="RUNNING")["executions"]

    given.sb.stop(arn)
    result = given.sb.wait(arn)
    given.sb.run_until(lambda: not given.sb.running(install["executionArn"]), timeout=60)
    given.sb.wait_for_status_events()

    assert result.status == "ABORTED"
    assert sfn.describe_execution(executionArn=install["executionArn"])["status"] == "ABORTED"
    [patching] = [i for c in given.sb.bridge.calls_to("ssm", "SendCommand") for i in c.params["InstanceIds"]]
    assert given.sb.monitoring_state() == given.before and not given.lock_held(), "the safety net restored the tier"
    assert given.target_states().get(patching, "unused") in ("draining", "unused"), "not put back mid-command"
    [invocation] = given.sb.commands.invocations.values()
    given.sb.run_until(at=invocation.end_at + 120)
    given.sb.fire_schedule("RunReconcilerFunction")
    given.sb.run_until(at=given.sb.clock.now() + 120)  # its health checks

    fates = given.assert_never_worse(since, floor=2)
    assert fates[patching] == "restarted", "patched, back in service once the command ended and it answered"
    assert given.sb.bridge.calls_to("ssm", "SendCommand")[0].params["InstanceIds"] == [patching]
    assert not [n for n in given.notifications() if n["Subject"].startswith("opsflow patching")], "no report"


def test_a_patch_run_stopped_while_an_instance_never_comes_back_names_it_in_one_alert(tier: TierFactory) -> None:
    """The follow-up waits for the command, then for the application, and gives up after their patience."""
    given = tier(size=3)
    broken = min(given.instances)  # the plan takes instances in id order: this one is patched first
    given.sb.fleet.inject(broken, "never_ready")
    arn = given.sb.start_execution(PATCH_SM, web_input(batchSize=1))
    given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=given.approval_links()["approve"])
    assert given.sb.run_until(lambda: bool(given.sb.bridge.calls_to("ssm", "SendCommand")), timeout=120)

    given.sb.stop(arn)
    result = given.sb.wait(arn)
    for _ in range(12):  # the reconciler's schedule, past the command's and the application's patience
        given.sb.run_until(at=given.sb.clock.now() + 900, timeout=120)
        given.sb.fire_schedule("RunReconcilerFunction")

    assert result.status == "ABORTED"
    given.assert_invariants(result, floor=2)
    [gave_up] = [n for n in given.notifications() if n["Subject"].startswith("opsflow reconciler")]
    assert broken in gave_up["Message"].split("left OUT")[1], "named once, when the follow-up gave up"
    assert set(given.target_states()) == set(given.instances) - {broken}, "the others were never taken out"
    assert set(given.target_states().values()) == {"healthy"}


def test_an_instance_ssm_cannot_reach_refuses_the_patch_run_before_any_mail(tier: TierFactory) -> None:
    given = tier(size=3)
    offline = given.instances[1]
    given.sb.commands.inject(offline, "agent_offline")

    result = given.sb.run(PATCH_SM, web_input(batchSize=1))

    given.assert_refused(result, "PatchRunRefused", f"{offline}: SSM cannot run a command on it")
    assert given.notifications() == [], "no preview, no approval request"
    assert given.sb.bridge.calls_to("ssm", "SendCommand") == []
