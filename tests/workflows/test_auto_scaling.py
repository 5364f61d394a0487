"""Members of an EC2 Auto Scaling group: on Standby while they restart, so their group neither replaces nor
scales them in; the group restored in every case. End to end in the sandbox, with the standard invariants."""

import copy
import json
from collections.abc import Callable
from typing import Any

from sandbox.fleet import AutoScalingSpec, GroupSpec
from tests.conftest import ROOT
from tests.workflows.conftest import SM, Tier, web_input

TierFactory = Callable[..., Tier]
GROUP = "web-asg"
# ELB health checks, the default 300 s grace period; room to lower the desired capacity by two.
GROUP_OF_SIX = AutoScalingSpec(GROUP, min_size=4, max_size=8)


def lifecycle(given: Tier) -> dict[str, str]:
    found = given.sb.client("autoscaling").describe_auto_scaling_instances()["AutoScalingInstances"]
    return {i["InstanceId"]: i["LifecycleState"] for i in found}


def desired(given: Tier) -> int:
    groups = given.sb.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])
    return int(groups["AutoScalingGroups"][0]["DesiredCapacity"])


def replaced(given: Tier) -> list[str]:
    """Instances the group terminated (its activities)."""
    return [a.instance_id for a in given.sb.fleet.auto_scaling[GROUP].activities if "Terminating" in a.description]


def assert_group_restored(given: Tier, members: list[str]) -> None:
    assert lifecycle(given) == dict.fromkeys(members, "InService"), "every member InService, none replaced"
    assert desired(given) == len(members), "the desired capacity is back where it was"


def _without_standby() -> dict[str, Any]:
    """The workflow as it was before it knew about Auto Scaling groups: no member goes on Standby."""
    definition: dict[str, Any] = json.loads((ROOT / "statemachines" / "rolling_restart.asl.json").read_text())
    definition = copy.deepcopy(definition)
    definition["States"]["Restart the instances a batch at a time"]["ItemSelector"]["autoScalingGroup"] = None
    del definition["States"]["Restart the instances a batch at a time"]["ItemSelector"]["autoScalingGroup.$"]
    return definition


def test_a_naive_reboot_of_a_member_gets_it_replaced_by_its_group(tier: TierFactory) -> None:
    """Taken out of the target group, the member is not reported healthy: the group terminates it at once."""
    given = tier(size=6, auto_scaling=GROUP_OF_SIX, definitions={SM: _without_standby()})

    result = given.run(web_input(batchSize=1), timeout=300)

    assert result.error == "InstancesFailedToRestart"
    gone = replaced(given)
    assert gone, "the group replaced a member the workflow took out"
    outcomes = given.outcomes(result)
    for instance in gone:
        assert instance not in lifecycle(given)
        assert outcomes[instance]["outcome"] == "failed", f"{instance} was taken out by the run, then replaced"


def test_members_restart_on_standby_and_the_group_is_as_before(tier: TierFactory) -> None:
    given = tier(size=6, auto_scaling=GROUP_OF_SIX)
    members = given.instances

    result = given.run(web_input(batchSize=2), timeout=300)

    assert result.status == "SUCCEEDED", result.cause
    assert replaced(given) == [], "the group replaced no member"
    assert all(given.sb.fleet.instances[i].reboots for i in members), "every member rebooted"
    standby = given.sb.bridge.calls_to("auto-scaling", "EnterStandby")
    assert {c.caller for c in standby} == {"InstanceActionFunction"}
    assert sorted(c.params["InstanceIds"][0] for c in standby) == sorted(members)
    assert {c.params["ShouldDecrementDesiredCapacity"] for c in standby} == {True}, "no replacement launched"
    assert len(given.sb.bridge.calls_to("auto-scaling", "ExitStandby")) == 6
    assert_group_restored(given, members)
    given.assert_invariants(result, floor=4)


def test_the_plan_shows_each_instance_s_group_zone_target_groups_and_ports(tier: TierFactory) -> None:
    given = tier(
        size=4,
        zones=2,
        auto_scaling=AutoScalingSpec(GROUP, members=(0, 1, 2), min_size=1),
        more_groups=(GroupSpec("api", port=9000, load_balancer="api", port_overrides=((1, 9001),)),),
        parameters={"AllowedTargetGroupArns": "{TargetGroupArn:api}"},
    )
    first, second, _, outside = given.instances

    result = given.run(web_input(batchSize=1, dryRun=True))

    assert result.status == "SUCCEEDED", result.cause
    where = result.output["where"]
    assert where[first] == "eu-west-1a: web:8080, api:9000; Auto Scaling group web-asg"
    assert where[second] == "eu-west-1a: web:8080, api:9001; Auto Scaling group web-asg"
    assert where[outside].startswith("eu-west-1b: web:8080, api:9000") and "Auto Scaling" not in where[outside]
    plan = result.output["autoScalingGroups"][GROUP]
    assert (plan["desiredCapacity"], plan["minSize"], plan["onStandbyAtMost"]) == (3, 1, 1)
    assert "Auto Scaling group web-asg" in result.output["summary"]
    assert given.mutating_calls() == [] and lifecycle(given) == dict.fromkeys(
        [first, second, given.instances[2]], "InService"
    )


def test_a_batch_that_would_take_the_group_below_its_minimum_is_refused(tier: TierFactory) -> None:
    given = tier(size=6, auto_scaling=AutoScalingSpec(GROUP, min_size=5))

    result = given.run(web_input(batchSize=2))

    given.assert_refused(result, "UnsafeBatchSizeError", "use a batch size of at most 1")
    assert "minimum size 5" in (result.cause or "")


def test_a_member_already_on_standby_is_refused(tier: TierFactory) -> None:
    given = tier(size=4, auto_scaling=AutoScalingSpec(GROUP, min_size=1))
    on_standby = given.instances[2]
    given.sb.client("autoscaling").enter_standby(
        AutoScalingGroupName=GROUP, InstanceIds=[on_standby], ShouldDecrementDesiredCapacity=True
    )
    given.sb.bridge.calls.clear()

    result = given.run(web_input(batchSize=1, instanceIds=[given.instances[0], on_standby]))

    assert result.error == "InstanceNotRestartableError"
    assert f"{on_standby} is on Standby in Auto Scaling group {GROUP}" in (result.cause or "")
    assert given.mutating_calls() == []
    assert given.sb.bridge.calls_to("auto-scaling", "ExitStandby") == [], "someone else's Standby: left alone"


def test_scale_in_during_the_run_keeps_the_floor_and_strands_no_member(tier: TierFactory) -> None:
    """The group drops two members mid-run: they are not restarted, none is left on Standby, and the run
    never takes an instance out below the floor the load balancer still has."""
    given = tier(size=6, auto_scaling=AutoScalingSpec(GROUP, min_size=2, max_size=8))
    arn = given.sb.start_execution(SM, web_input(batchSize=1))
    assert given.sb.run_until(lambda: len(given.sb.bridge.calls_to("auto-scaling", "ExitStandby")) == 1, timeout=300)
    given.sb.client("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=desired(given) - 2)
    scaled_in = replaced(given)
    assert len(scaled_in) == 2

    result = given.sb.wait(arn, timeout=600)

    survivors = [i for i in given.instances if i not in scaled_in]
    assert lifecycle(given) == dict.fromkeys(survivors, "InService"), "nobody stranded on Standby"
    assert desired(given) == 4, "the scale-in stands: ExitStandby gave back only what EnterStandby took"
    assert all(given.sb.fleet.instances[i].reboots for i in survivors), "every survivor restarted"
    outcomes = given.outcomes(result)
    assert {outcomes[i]["outcome"] for i in scaled_in} <= {"skipped", "failed"}
    assert replaced(given) == scaled_in, "no member replaced by a health check"
    # The floor the run keeps is what the load balancer has left after the scale-in, less one.
    given.assert_invariants(result, floor=3)


def test_a_stopped_run_leaves_no_member_on_standby(tier: TierFactory) -> None:
    given = tier(size=6, auto_scaling=GROUP_OF_SIX)
    arn = given.sb.start_execution(SM, web_input(batchSize=2))
    assert given.sb.run_until(lambda: len(given.sb.bridge.calls_to("ec2", "RebootInstances")) == 2, timeout=300)
    on_standby = [i for i, s in lifecycle(given).items() if s == "Standby"]
    assert len(on_standby) == 2 and desired(given) == 4

    given.sb.stop(arn)
    result = given.sb.wait(arn)
    given.sb.wait_for_status_events()
    given.sb.run_until(at=given.sb.clock.now() + 900)  # they come up; the reconciler follows them up
    given.sb.fire_schedule("RunReconcilerFunction")
    given.sb.run_until(at=given.sb.clock.now() + 30)  # their health checks since the group registered them

    assert_group_restored(given, given.instances)
    assert replaced(given) == []
    exits = [c.params["InstanceIds"][0] for c in given.sb.bridge.calls_to("auto-scaling", "ExitStandby")]
    assert sorted(exits) == sorted(on_standby), "each put back in service exactly once"
    since = result.events[0]["timestamp"].timestamp()
    fates = given.assert_never_worse(since, floor=4)
    assert {fates[i] for i in on_standby} == {"restarted"}


def test_a_member_that_fails_stays_on_standby_and_is_alerted_once(tier: TierFactory) -> None:
    """Its application never answers: not put back in service (its group would replace it), one alert."""
    given = tier(size=6, auto_scaling=GROUP_OF_SIX)
    broken = given.instances[1]
    given.sb.fleet.inject(broken, "never_ready")

    result = given.run(web_input(batchSize=1, errorBudget=2), timeout=600)

    assert result.error == "InstancesFailedToRestart"
    assert lifecycle(given)[broken] == "Standby", "out of service, and out of the group's health checks"
    assert desired(given) == 5
    assert replaced(given) == []
    others = [i for i in given.instances if i != broken]
    assert all(lifecycle(given)[i] == "InService" for i in others)
    [alert] = [a for a in given.alerts() if broken in a["Subject"]]
    assert "failed to restart" in alert["Subject"]
    given.assert_invariants(result, floor=4)
