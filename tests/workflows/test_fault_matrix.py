"""A fault at every Task state of both workflows (and at the preview Map's ItemReader), enumerated from
their ASL; best-effort status events; two runs on one target group. Whatever happens, the tier ends no
worse than it was, and the preview is never lost silently (issue 12).

Each rolling-restart case runs a small tier (3 instances, 1 at a time), arms one fault, runs the workflow
to its end, lets the safety net and the reconciler follow up, then checks what the ASL promises for that
fault and the invariants of Tier.assert_never_worse, and compares its outcome with docs/fault-matrix.md.
Each preview case previews 51 servers (two batches), a fault inside the Map striking one batch.
"""

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from sandbox.fleet import AutoScalingSpec, GroupSpec
from sandbox.runtime import ExecutionResult, Sandbox
from tests.workflows.conftest import SM, Tier, web_input
from tests.workflows.fault_matrix import (
    DELIVERIES,
    FAULTS,
    OFFSETS,
    SECOND_RUN,
    STATUS_EVENT,
    TaskState,
    case_id,
    check_documented,
    entered,
    failures_at,
    histories,
    inject,
    succeeded,
    task_states,
)

TierFactory = Callable[..., Tier]
PREVIEW = "PatchPreviewStateMachine"
SIZE, BATCH = 3, 1
FLOOR = SIZE - BATCH
RECONCILER = "RunReconcilerFunction"
PREVIEW_FAILED = "the patch preview failed"


@dataclass(frozen=True)
class Scenario:
    """A run that enters some states the plain run does not, and how it ends without a fault."""

    name: str
    fields: dict[str, Any] = field(default_factory=dict, hash=False)
    never_ready: bool = False  # the first instance of the plan never answers after its reboot
    approval: str | None = None  # "approve" or "reject" the emailed link
    ends: tuple[str, str | None] = ("SUCCEEDED", None)
    # Another run the case's run meets: "holds the lock" (it waits for approval, then is rejected once the
    # case's run has ended), "stopped" (stopped mid-restart and cleaned up; the case's run resumes it), or
    # "resumed meanwhile" (as "stopped", and another resume marks it once the case's run has planned).
    other_run: str | None = None
    # Target groups besides web; the case's run restarts them first, then web (targetGroupArns in that order).
    more_groups: tuple[GroupSpec, ...] = ()
    auto_scaling: bool = False  # the tier is an Auto Scaling group (ELB health checks): members go on Standby

    def tier_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"auto_scaling": AutoScalingSpec(min_size=1)} if self.auto_scaling else {}
        if self.more_groups:
            allowed = ",".join(f"{{TargetGroupArn:{g.name}}}" for g in self.more_groups)
            options |= {"more_groups": self.more_groups, "parameters": {"AllowedTargetGroupArns": allowed}}
        return options


# The second and third instances are also in "api", the first is in web only: the run holding the lock restarts
# the first, so it holds web's lock alone; the case's run takes api's lock, then is refused at web's, and
# releases the one it took (the call "Release one lock taken before the refusal" has an effect to lose).
API_BUT_THE_FIRST = (GroupSpec("api", port=9000, members=(1, 2)),)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("plain"),
        Scenario("approved", {"requireApproval": True}, approval="approve"),
        Scenario("rejected", {"requireApproval": True}, approval="reject", ends=("FAILED", "RestartNotApproved")),
        Scenario("an instance never answers", never_ready=True, ends=("FAILED", "InstancesFailedToRestart")),
        Scenario("the command action", {"action": "command"}),
        Scenario("members of an Auto Scaling group", auto_scaling=True),
        Scenario(
            "another run holds the lock",
            other_run="holds the lock",
            ends=("FAILED", "RestartAlreadyRunning"),
            more_groups=API_BUT_THE_FIRST,
        ),
        Scenario("a stopped run resumed", other_run="stopped"),
        Scenario(
            "a run resumed by another meanwhile", other_run="resumed meanwhile", ends=("FAILED", "CannotResumeError")
        ),
    )
}
# The rolling restart's Task states the plain run does not enter: a Choice on the input or on the run's
# progress leads there, which the ASL alone cannot tell. test_every_task_state_is_entered_by_its_scenario
# fails for a state that is neither entered by the plain run nor listed here.
REACHED_BY = {
    "Ask for approval": "approved",
    "Release one lock of the refused run": "rejected",
    "Handle the failed instance": "an instance never answers",
    "Record the instance as skipped": "an instance never answers",
    "Run the command on the instance": "the command action",
    "Wait until the command has finished": "the command action",
    "Put the instance on Standby in its Auto Scaling group": "members of an Auto Scaling group",
    "Put the instance back in service in its Auto Scaling group": "members of an Auto Scaling group",
    "Release one lock taken before the refusal": "another run holds the lock",
    "Mark the earlier run as resumed": "a stopped run resumed",
    "Release one lock of the run that was resumed already": "a run resumed by another meanwhile",
}


def scenario_of(task: TaskState) -> Scenario:
    return SCENARIOS[REACHED_BY.get(task.name, "plain")]


# -- running a case ----------------------------------------------------------------------------
def answer_approval(given: Tier, arn: str, decision: str) -> None:
    """Click the link of the latest approval email, once one is out (unless the run ended first)."""

    def mails() -> list[dict[str, Any]]:
        return [m for m in given.notifications() if "approve the rolling restart" in m["Subject"]]

    given.sb.run_until(lambda: bool(mails()) or not given.sb.running(arn))
    if mails() and given.sb.running(arn):
        from urllib.parse import urlparse

        link = next(line for line in mails()[-1]["Message"].splitlines() if line.startswith(decision.title() + ":"))
        given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=urlparse(link.split(" ", 1)[1]).query)


def follow_up(given: Tier) -> None:
    """Late status events delivered; then the reconciler as its schedule fires, past the reboot's patience
    to begin and past the startup patience (opsflow.placement), so every follow-up has ended."""
    given.sb.wait_for_status_events()
    for wait in (900, 2400):
        given.sb.run_until(at=given.sb.clock.now() + wait)
        given.sb.fire_schedule(RECONCILER)


def stopped_and_cleaned_up(given: Tier) -> str:
    """A run stopped by an operator after its first reboot; the safety net and the reconciler put back
    what it took out and close its record, as a resume requires (opsflow.restart_plan.earlier_run)."""
    from opsflow.runs import RunTable

    arn = given.sb.start_execution(SM, web_input(batchSize=BATCH))
    given.sb.run_until(lambda: bool(given.reboot_calls()))
    given.sb.stop(arn)
    given.sb.wait(arn)
    table = RunTable(given.sb.stack.physical["RunTable"]["Ref"], given.sb.client("dynamodb"))
    for _ in range(3):
        if (table.get_run(arn) or {}).get("closedAt"):
            # An instance put back passes its health checks before a new run may start (TargetsNotHealthyError).
            given.sb.run_until(at=given.sb.clock.now() + 60)
            return arn
        given.sb.run_until(at=given.sb.clock.now() + 700)  # beyond a reboot's patience to begin (opsflow.placement)
        given.sb.fire_schedule(RECONCILER)
    raise AssertionError(f"the stopped run {arn} is still open after three reconciler passes")


def entered_already(given: Tier, arn: str, state: str) -> bool:
    return any(e.get("stateEnteredEventDetails", {}).get("name") == state for e in given.sb.history(arn))


def mark_resumed_by_another(given: Tier, arn: str, earlier: str) -> None:
    """Once the run has planned (the earlier run not resumed yet), another resume marks the earlier run, as
    one planned at the same instant and first to the lock does: this run must be refused under the lock."""
    from opsflow.runs import RunTable

    given.sb.run_until(lambda: entered_already(given, arn, "Take the target group locks") or not given.sb.running(arn))
    other = given.sb.state_machine_arn(SM).replace(":stateMachine:", ":execution:") + ":another-resume"
    RunTable(given.sb.stack.physical["RunTable"]["Ref"], given.sb.client("dynamodb")).set_run_fields(
        earlier, resumedBy=other
    )


def start(given: Tier, scenario: Scenario) -> tuple[str, Callable[[], object]]:
    """Start the case's run (after the other run it meets, if any); returns its ARN and what to do once it
    has ended (answer the other run, so that every run has ended before the tier is checked)."""
    fields: dict[str, Any] = dict(scenario.fields)
    holder = None
    if scenario.other_run == "holds the lock":
        # With more groups it restarts only the first instance, which is in web alone: it holds web's lock only.
        only_web = {"instanceIds": [given.instances[0]]} if scenario.more_groups else {}
        holder = given.sb.start_execution(SM, web_input(batchSize=BATCH, requireApproval=True, **only_web))
        given.approval_links()  # it holds the lock and waits for approval
    if scenario.more_groups:
        more = [given.sb.fleet_resources[f"TargetGroupArn:{g.name}"] for g in scenario.more_groups]
        fields["targetGroupArns"] = [*more, given.target_group_arn]
    elif scenario.other_run in ("stopped", "resumed meanwhile"):
        fields["resumeFrom"] = stopped_and_cleaned_up(given)
    if scenario.never_ready:
        given.sb.fleet.inject(sorted(given.instances)[0], "never_ready")
    payload = fields if "resumeFrom" in fields else web_input(batchSize=BATCH, **fields)
    arn = given.sb.start_execution(SM, payload)
    if scenario.approval:
        answer_approval(given, arn, scenario.approval)
    if scenario.other_run == "resumed meanwhile":
        mark_resumed_by_another(given, arn, fields["resumeFrom"])

    def finish() -> None:
        if holder is not None:
            answer_approval(given, holder, "reject")
            given.sb.wait(holder, timeout=300)

    return arn, finish


def run_scenario(given: Tier, scenario: Scenario) -> ExecutionResult:
    arn, finish = start(given, scenario)
    result = given.sb.wait(arn, timeout=300)
    finish()
    return result


def ended(result: ExecutionResult) -> str:
    return f"{result.status} {result.error}" if result.error else result.status


def fates_text(fates: dict[str, str]) -> str:
    counts = Counter(fates.values())
    order = ("restarted", "untouched", "put back", "left out, alerted")
    return ", ".join(f"{counts[f]} {f}" for f in order if counts[f])


# Cases that break an invariant today: real defects, not fixed yet. Each case asserts the defect is still
# there (so fixing one fails its case until its entry goes) and the table shows it.
KNOWN_DEFECTS: dict[tuple[str, str], tuple[str, str]] = {}


def locks_left(given: Tier) -> list[str]:
    """Every target group lock still in the run table (Tier.lock_held looks at the web group's only)."""
    table = given.sb.stack.physical["RunTable"]["Ref"]
    items = given.sb.client("dynamodb").scan(TableName=table)["Items"]
    return [i["pk"]["S"] for i in items if i["sk"]["S"] == "lock"]


def run_fault(tier: TierFactory, task: TaskState, fault: str) -> tuple[Tier, ExecutionResult, str]:
    scenario = scenario_of(task)
    given = tier(size=SIZE, **scenario.tier_options())
    inject(given.sb, task, fault)
    since = given.sb.clock.now()
    result = run_scenario(given, scenario)
    follow_up(given)
    assert locks_left(given) == [], "every lock of every run is released"
    defect = KNOWN_DEFECTS.get((task.name, fault))
    if defect is not None:
        with pytest.raises(AssertionError, match=defect[0]):
            given.assert_never_worse(since, FLOOR)
        return given, result, f"{ended(result)}; {defect[1]}"
    fates = given.assert_never_worse(since, FLOOR)
    return given, result, f"{ended(result)}; {fates_text(fates)}"


def assert_as_the_asl_says(sb: Sandbox, result: ExecutionResult, task: TaskState, fault: str, ends: Any) -> None:
    """What the ASL promises for the fault: a stop aborts; a retried error leaves the run's end as without
    the fault; an error not retried goes where the state's Catch sends it, or fails the execution."""
    assert entered(sb, result, task.name) or fault == "stop", f"the run never entered {task.name!r}"
    if fault == "stop":
        assert result.status == "ABORTED", "the run stopped on entering the state"
        return
    failures = [f for h in histories(sb, result) for f in failures_at(h, task.name)]
    assert failures, f"the injected {fault} error reached {task.name!r}"
    first, next_state = failures[0]
    if fault == "lost response" and not task.retried(first) and task.catcher(first) == next_state:
        # The call failed on its own (a conditional delete of a lock another run holds): nothing took effect,
        # so there was no response to lose; the state's Catch takes the error and the run ends as without it.
        assert (result.status, result.error) == ends, f"{first} was caught: the run ends as it would without it"
        return
    if fault in ("transient", "lost response"):
        error = failures[0][0]  # the injected one; a retry after a lost response may meet the change it made
        assert task.retried(error), f"{task.name!r} does not retry {error}: a transient error must not end the run"
        assert (result.status, result.error) == ends, f"{error} was retried: the run ends as it would without it"
        return
    error, next_state = failures[-1]
    catcher = task.catcher(error)
    if catcher is not None:
        assert next_state == catcher, f"{error} at {task.name!r} goes to {catcher!r} (its Catch), not {next_state!r}"
    elif not task.in_map:
        assert (result.status, result.error) == ("FAILED", error), "nothing catches it: the execution fails"


RESTART_TASKS = task_states(SM)
PREVIEW_TASKS = task_states(PREVIEW)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("task", RESTART_TASKS, ids=lambda t: t.name)
def test_a_fault_at_a_rolling_restart_state_leaves_the_tier_no_worse(
    tier: TierFactory, task: TaskState, fault: str
) -> None:
    given, result, outcome = run_fault(tier, task, fault)

    assert_as_the_asl_says(given.sb, result, task, fault, scenario_of(task).ends)
    check_documented(case_id(SM, task.name, fault), outcome)


def test_every_task_state_is_entered_by_its_scenario(tier: TierFactory) -> None:
    """Each scenario, without a fault, ends as declared and enters the states it is chosen for, so every
    Task state of the rolling restart has its fault cases (a new state the plain run skips fails here)."""
    for scenario in SCENARIOS.values():
        given = tier(size=SIZE, **scenario.tier_options())
        result = run_scenario(given, scenario)
        assert (result.status, result.error) == scenario.ends, scenario.name
        chosen = [t.name for t in RESTART_TASKS if scenario_of(t) == scenario]
        missing = [name for name in chosen if not entered(given.sb, result, name)]
        # A lost response needs a call that takes effect: each state's call succeeds at least once.
        no_effect = [name for name in chosen if not succeeded(given.sb, result, name)]
        given.sb.close()  # one sandbox at a time: they share moto's backends
        assert missing == [], f"the {scenario.name!r} run never enters {missing}: list them in REACHED_BY"
        assert no_effect == [], f"in the {scenario.name!r} run, no call of {no_effect} takes effect"
    assert set(REACHED_BY) <= {t.name for t in RESTART_TASKS}, "REACHED_BY names only Task states of the ASL"


# -- the run's status-change event: late, twice, or never (the reconciler catches up) ------------------
STOPPED_AT = "Wait until the reboot has begun"  # an instance is out and rebooting: the most to clean up


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_a_stopped_run_whose_status_event_is_late_twice_or_lost_leaves_the_tier_no_worse(
    tier: TierFactory, delivery: str
) -> None:
    given = tier(size=SIZE)
    given.sb.status_events = delivery
    given.sb.stop_when_entering(STOPPED_AT)
    since = given.sb.clock.now()

    result = run_scenario(given, SCENARIOS["plain"])
    follow_up(given)

    assert result.status == "ABORTED"
    fates = given.assert_never_worse(since, FLOOR)
    check_documented(case_id(SM, STATUS_EVENT, delivery), f"{ended(result)}; {fates_text(fates)}")


# -- two runs on one target group ------------------------------------------------------------------
def when_first_state_done(given: Tier, arn: str) -> None:
    """The first run is planning: its first Task has answered (validated and planned)."""
    first = RESTART_TASKS[0].name
    given.sb.run_until(
        lambda: any(e.get("stateExitedEventDetails", {}).get("name") == first for e in given.sb.history(arn))
    )


SECOND_RUN_STARTS: dict[str, tuple[dict[str, Any], Callable[[Tier, str], object]]] = {
    "same instant": ({}, lambda given, arn: None),
    "during the plan": ({}, when_first_state_done),
    "during the approval wait": (
        {"requireApproval": True},
        lambda given, arn: given.sb.run_until(
            lambda: any("approve the rolling restart" in m["Subject"] for m in given.notifications())
        ),
    ),
    "during the restart": ({}, lambda given, arn: given.sb.run_until(lambda: bool(given.reboot_calls()))),
}


@pytest.mark.parametrize("offset", OFFSETS)
def test_two_runs_on_one_target_group_one_restarts_the_other_is_refused(tier: TierFactory, offset: str) -> None:
    given = tier(size=SIZE)
    fields, until = SECOND_RUN_STARTS[offset]
    since = given.sb.clock.now()
    first = given.sb.start_execution(SM, web_input(batchSize=BATCH, **fields))
    until(given, first)
    second = given.sb.start_execution(SM, web_input(batchSize=BATCH))
    if fields.get("requireApproval"):
        answer_approval(given, first, "approve")
    results = [given.sb.wait(arn, timeout=300) for arn in (first, second)]
    follow_up(given)

    refused = [r for r in results if r.error == "RestartAlreadyRunning"]
    assert len(refused) == 1 and [r.status for r in results if r not in refused] == ["SUCCEEDED"], [
        ended(r) for r in results
    ]
    fates = given.assert_never_worse(since, FLOOR)
    outcome = f"first {ended(results[0])}, second {ended(results[1])}; {fates_text(fates)}"
    check_documented(case_id(SM, SECOND_RUN, offset), outcome)


# -- the patch preview: the same faults at each of its Task states and at its Map's ItemReader -------------
# What a preview promises (docs/operator-guide.md, sections 4 and 5): a failing server, or a whole batch of
# them, never loses the preview: it goes out naming them unreadable; any failure of the preview itself mails
# exactly one "the patch preview failed" naming the error; a stopped preview mails nothing of its own (the
# ExecutionsEndedBadlyAlarm reports every aborted execution), so nothing goes out half-done.
DENIED_ERROR = "Lambda.AccessDeniedException"  # what a permanent fault at a Lambda task fails with
# Two batches of the listing Map (opsflow.patch_selection.LISTING_BATCH is 50): a fault inside the Map strikes
# the batch of one server only (its child execution), so the case shows one failing server among the rest.
PREVIEW_SIZE, FAILING_ITEM = 51, 1


def upstream_of(task: TaskState) -> TaskState | None:
    """The first Task state whose Catch leads to ``task``: failing it is how a run gets there (an alert
    state, say); None when the plain run enters ``task`` itself."""
    return next((t for t in PREVIEW_TASKS if t is not task and t.catcher(DENIED_ERROR) == task.name), None)


def published(sb: Sandbox) -> list[dict[str, Any]]:
    """What went out on the topic (a publish answered with an error published nothing)."""
    return [c.params for c in sb.bridge.calls_to("sns", "Publish") if not c.failed]


def preview_mails(sb: Sandbox) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The previews and the "preview failed" alerts that were published."""
    mails = published(sb)
    failed = [m for m in mails if PREVIEW_FAILED in m["Subject"]]
    return [m for m in mails if m not in failed], failed


def unreadable_named(preview: dict[str, Any]) -> dict[str, str]:
    """Instance id -> error, as the preview's UNREADABLE section names each server it could not read."""
    section = (
        preview["Message"].split("UNREADABLE", 1)[1].split("\n\n", 1)[0] if "UNREADABLE" in preview["Message"] else ""
    )
    return dict(re.findall(r"\((i-[0-9a-f]+)\): (\S+)", section))


def batch_servers(sb: Sandbox, result: ExecutionResult, item: int) -> list[str]:
    """The servers of the listing Map's item ``item``, as the preview wrote its batches to the bucket."""
    bucket = sb.stack.physical["DataBucket"]["Ref"]
    key = f"patch-preview/{result.arn.rsplit(':', 1)[1]}/batches.json"
    batches = json.loads(sb.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    return list(batches[item]["instanceIds"])


def error_named(alert: dict[str, Any]) -> str:
    """The error a "preview failed" alert names."""
    found = re.search(r"Error: (\S+?)\. Cause:", alert["Message"])
    assert found, f"the alert names the error: {alert['Message']!r}"
    return found.group(1)


def preview_outcome(result: ExecutionResult, previews: list[dict[str, Any]], failed: list[dict[str, Any]]) -> str:
    """The table's cell: how the run ended, what it mailed, the servers named unreadable, the error named."""
    mailed = f"{len(previews)} preview mailed"
    unreadable = Counter(e for p in previews[:1] for e in unreadable_named(p).values())
    if unreadable:
        mailed += (
            " (" + ", ".join(f"{n} server{'s' * (n != 1)} unreadable: {e}" for e, n in sorted(unreadable.items())) + ")"
        )
    alerts = f"{len(failed)} 'preview failed' mailed"
    if failed:
        alerts += f" (naming {error_named(failed[0])})"
    return f"{ended(result)}; {mailed}, {alerts}"


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("task", PREVIEW_TASKS, ids=lambda t: t.label)
def test_a_fault_at_a_patch_preview_state_never_loses_the_preview_silently(
    tier: TierFactory, task: TaskState, fault: str
) -> None:
    given = tier(size=PREVIEW_SIZE)
    upstream = upstream_of(task)
    if upstream is not None:
        inject(given.sb, upstream, "permanent")
    inject(given.sb, task, fault, item=FAILING_ITEM if task.in_map else None)

    result = given.sb.wait(given.sb.start_execution(PREVIEW, {}), timeout=300)

    ends = ("FAILED", "PatchPreviewFailed") if upstream is not None else ("SUCCEEDED", None)
    assert_as_the_asl_says(given.sb, result, task, fault, ends)
    previews, failed = preview_mails(given.sb)
    # A publish whose answer was lost after it went out is published again by the retry: SNS standard topics
    # have no idempotent publish, so that mail may arrive twice (an alert sent twice beats one never sent).
    copies = (1, 2) if fault == "lost response" and task.service == "sns" else (1,)
    if fault == "stop":
        assert published(given.sb) == [], "a stopped preview mails nothing of its own: nothing goes out half-done"
    elif upstream is not None:
        assert previews == [], "the preview had failed before the fault"
        assert len(failed) in ((0,) if fault == "permanent" else copies), "one alert, unless its own publish is denied"
        assert all(error_named(alert) == DENIED_ERROR for alert in failed), "the alert names the preview's failure"
    elif fault == "permanent" and task.in_map:
        [preview] = previews  # a batch that fails loses its own servers, never the preview
        assert failed == []
        failing = batch_servers(given.sb, result, FAILING_ITEM)
        assert unreadable_named(preview) == dict.fromkeys(failing, DENIED_ERROR), "each of its servers named"
        assert (result.output["checked"], result.output["unreadable"]) == (PREVIEW_SIZE, len(failing))
    elif fault == "permanent":
        [alert] = failed
        assert previews == [], "nothing half-done: the preview is mailed whole or not at all"
        caught = [f for h in histories(given.sb, result) for f in failures_at(h, task.name)][-1][0]
        assert error_named(alert) == caught, "the alert names the error that failed the preview"
    else:
        assert len(previews) in copies and failed == [], "a transient error or a lost answer loses nothing"
        assert all(p == previews[0] for p in previews), "a second copy is the same preview"
        assert (result.output["checked"], result.output["unreadable"]) == (PREVIEW_SIZE, 0), "the preview is complete"
    check_documented(case_id(PREVIEW, task.label, fault), preview_outcome(result, previews, failed))


def test_every_patch_preview_task_state_is_entered_by_its_scenario(tier: TierFactory) -> None:
    for task in PREVIEW_TASKS:
        given = tier(size=PREVIEW_SIZE)
        upstream = upstream_of(task)
        if upstream is not None:
            inject(given.sb, upstream, "permanent")
        result = given.sb.wait(given.sb.start_execution(PREVIEW, {}), timeout=300)
        reached = entered(given.sb, result, task.name)
        items = len(given.sb.child_histories())
        given.sb.close()  # one sandbox at a time: they share moto's backends
        assert reached, f"no run enters {task.name!r}: give it a scenario"
        if upstream is None:
            assert items > FAILING_ITEM, f"the listing Map has an item {FAILING_ITEM} to fail"
