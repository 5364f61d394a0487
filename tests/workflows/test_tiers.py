"""Real web tiers: instances in several target groups and on port overrides, one zone at a time, one
stack for several tiers. End to end in the sandbox, with the standard invariants."""

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from sandbox.fleet import GroupSpec
from tests.workflows.conftest import Tier, web_input

TierFactory = Callable[..., Tier]

# A second load balancer ("api") whose target group has every instance: two ways in to each instance.
API_EVERYWHERE = (GroupSpec("api", port=9000, load_balancer="api", share=0.5),)
BOTH_GROUPS = {"AllowedTargetGroupArns": "{TargetGroupArn:api}"}


def group_arn(given: Tier, name: str) -> str:
    return given.sb.fleet_resources[f"TargetGroupArn:{name}"]


def assert_every_registration_as_before(given: Tier, before: dict[str, dict[tuple[str, int], str]]) -> None:
    for instance_id, was in before.items():
        now = given.registrations(instance_id)
        in_service = {k for k, state in now.items() if state in ("healthy", "initial")}
        assert in_service == set(was), f"{instance_id}: registered as {sorted(in_service)}, was {sorted(was)}"


def floors_held(given: Tier, result: Any, floors: dict[str, int]) -> None:
    start, end = result.events[0]["timestamp"].timestamp(), result.events[-1]["timestamp"].timestamp()
    timeline = given.sb.fleet.timeline(start, end)
    for group, floor in floors.items():
        assert timeline.min_serving_in(group) >= floor, f"{group} fell to {timeline.min_serving_in(group)} < {floor}"


def test_an_instance_in_two_target_groups_is_drained_from_both_before_its_reboot(tier: TierFactory) -> None:
    given = tier(size=4, more_groups=API_EVERYWHERE, parameters=BOTH_GROUPS)
    before = {i: given.registrations(i) for i in given.instances}

    result = given.run(web_input(batchSize=1))  # the stack's default tier: the web target group only

    assert result.status == "SUCCEEDED", result.cause
    deregistered = {(c.params["TargetGroupArn"], c.params["Targets"][0]["Id"]) for c in _calls(given, "Deregister")}
    api = group_arn(given, "api")
    assert {(api, i) for i in given.instances} <= deregistered, "drained from the other load balancer's group too"
    given.assert_invariants(result, floor=3)  # no request dropped, by either load balancer
    floors_held(given, result, {"web": 3, "api": 3})
    assert_every_registration_as_before(given, before)
    assert result.output["restarted"] == 4


def test_a_single_target_group_drain_drops_the_other_load_balancer_s_requests(tier: TierFactory) -> None:
    """What a tool that drains only the target group it was given does to an instance in two."""
    given = tier(size=4, more_groups=API_EVERYWHERE, parameters=BOTH_GROUPS)
    sb, victim = given.sb, given.instances[0]
    start = sb.clock.now()
    sb.client("elbv2").deregister_targets(TargetGroupArn=given.target_group_arn, Targets=[{"Id": victim}])
    sb.run_until(at=start + 70)  # drained from web (60 s deregistration delay at most)
    sb.client("ec2").reboot_instances(InstanceIds=[victim])
    sb.run_until(at=start + 300)

    assert sb.fleet.timeline(start, start + 300).dropped_requests > 1, "the api load balancer still sent it requests"


def test_a_port_override_target_is_deregistered_and_registered_again_on_its_own_port(tier: TierFactory) -> None:
    api = (GroupSpec("api", port=9000, members=(0, 1, 2, 3), port_overrides=((1, 9001),), share=0.5),)
    given = tier(size=4, more_groups=api, parameters=BOTH_GROUPS)
    overridden = given.instances[1]
    before = {i: given.registrations(i) for i in given.instances}
    assert ("api", 9001) in before[overridden]

    result = given.run(web_input(batchSize=1, targetGroupArns=[given.target_group_arn, group_arn(given, "api")]))

    assert result.status == "SUCCEEDED", result.cause
    targets = [
        c.params["Targets"][0] for c in _calls(given, "Deregister") if c.params["Targets"][0]["Id"] == overridden
    ]
    assert {"Id": overridden, "Port": 9001} in targets, "deregistered naming its port, as ELB requires"
    given.assert_invariants(result, floor=3)
    assert_every_registration_as_before(given, before)
    assert given.registrations(overridden).get(("api", 9000), "unused") == "unused", "not registered on another port"
    assert result.output["restarted"] == 4


def test_a_load_balancer_arn_restarts_the_instances_of_every_target_group_it_forwards_to(tier: TierFactory) -> None:
    second_listener = (GroupSpec("admin", port=9100, members=(0, 1, 2), share=0.2),)  # on the web load balancer
    given = tier(size=4, more_groups=second_listener, parameters={"AllowedTargetGroupArns": "{TargetGroupArn:admin}"})
    before = {i: given.registrations(i) for i in given.instances}

    result = given.run(web_input(batchSize=1, loadBalancerArn=given.sb.fleet_resources["LoadBalancerArn"]))

    assert result.status == "SUCCEEDED", result.cause
    given.assert_invariants(result, floor=3)
    floors_held(given, result, {"web": 3, "admin": 2})
    assert_every_registration_as_before(given, before)


def test_the_floor_holds_in_each_target_group(tier: TierFactory) -> None:
    small = (GroupSpec("api", port=9000, members=(0, 1, 2), share=0.5),)  # 3 of the 6 instances
    given = tier(size=6, more_groups=small, parameters=BOTH_GROUPS)

    plan = given.run(web_input(batchSize=2, dryRun=True)).output
    result = given.run(web_input(batchSize=2))

    floors = {g["targetGroupArn"]: g["floor"] for g in plan["targetGroups"]}
    assert floors == {given.target_group_arn: 4, group_arn(given, "api"): 1}
    assert result.status == "SUCCEEDED", result.cause
    given.assert_invariants(result, floor=4)
    floors_held(given, result, {"web": 4, "api": 1})


def test_a_batch_that_would_empty_a_small_target_group_is_refused(tier: TierFactory) -> None:
    small = (GroupSpec("api", port=9000, members=(0, 1), share=0.5),)
    given = tier(size=6, more_groups=small, parameters=BOTH_GROUPS)

    result = given.run(web_input(batchSize=2))

    given.assert_refused(result, "UnsafeBatchSizeError", group_arn(given, "api"))


def test_a_target_group_outside_the_stack_s_list_is_refused_with_nothing_changed(tier: TierFactory) -> None:
    given = tier(size=4, more_groups=API_EVERYWHERE)  # the stack may change its TargetGroupArn (web) only
    api = group_arn(given, "api")

    asked = given.run(web_input(targetGroupArns=[given.target_group_arn, api]))
    implied = given.run(web_input())  # web only, but every instance is also in api

    given.assert_refused(asked, "TargetGroupNotAllowedError", "AllowedTargetGroupArns")
    given.assert_refused(implied, "TargetGroupNotAllowedError", f"also registered in {api}")


def test_one_zone_at_a_time_never_mixes_zones_and_keeps_each_zone_s_floor(tier: TierFactory) -> None:
    given = tier(size=6, zones=2, spread=0.3)

    plan = given.run(web_input(batchSize=2, oneZoneAtATime=True, dryRun=True)).output
    result = given.run(web_input(batchSize=2, oneZoneAtATime=True))

    assert result.status == "SUCCEEDED", result.cause
    zone = {i: where.split(":")[0] for i, where in plan["where"].items()}
    assert all(len({zone[i] for i in batch}) == 1 for batch in plan["batches"]), plan["batches"]
    assert plan["zoneFloors"] == dict.fromkeys(plan["zones"], 1)
    out = _out_of_service(given, result)
    for a, (a_from, a_to) in out.items():
        for b, (b_from, b_to) in out.items():
            if zone[a] != zone[b]:
                assert a_to <= b_from or b_to <= a_from, f"{a} ({zone[a]}) and {b} ({zone[b]}) were out together"
    for z in plan["zones"]:
        members = [i for i in zone if zone[i] == z]
        for t in range(math.floor(min(f for f, _ in out.values())), math.ceil(max(u for _, u in out.values()))):
            assert sum(1 for i in members if not out[i][0] <= t < out[i][1]) >= 1, f"{z} lost its floor at {t}"
    given.assert_invariants(result, floor=4)


def test_without_the_option_batches_take_instances_in_order_across_zones(tier: TierFactory) -> None:
    given = tier(size=4, zones=2)

    plan = given.run(web_input(batchSize=2, dryRun=True)).output

    assert plan["oneZoneAtATime"] is False and plan["zoneFloors"] == {}
    assert sorted(plan["zones"].values()) == [2, 2]


def test_a_stop_mid_run_puts_every_registration_back(tier: TierFactory) -> None:
    api = (GroupSpec("api", port=9000, load_balancer="api", port_overrides=((0, 9001),), share=0.5),)
    given = tier(size=4, more_groups=api, parameters=BOTH_GROUPS)
    before = {i: given.registrations(i) for i in given.instances}
    given.sb.stop_when_entering("Wait until the reboot has begun")  # taken out of both groups, just rebooted

    result = given.run(web_input(batchSize=2))

    assert result.status == "ABORTED"
    assert given.reboot_calls(), "stopped after a reboot"
    assert not given.lock_held()
    table = given.sb.stack.physical["RunTable"]["Ref"]
    key = {"pk": {"S": f"lock#{group_arn(given, 'api')}"}, "sk": {"S": "lock"}}
    assert "Item" not in given.sb.client("dynamodb").get_item(TableName=table, Key=key), "every group's lock released"
    # Beyond the reboot's patience to begin: what answers now is the rebooted instance, which the reconciler puts back.
    given.sb.run_until(at=given.sb.clock.now() + 700)
    given.sb.fire_schedule("RunReconcilerFunction")
    assert_every_registration_as_before(given, before)
    assert given.sb.monitoring_state() == given.before


def _calls(given: Tier, verb: str) -> list[Any]:
    return [c for c in given.sb.bridge.calls_to("elastic-load-balancing-v2", f"{verb}Targets") if not c.failed]


def _out_of_service(given: Tier, result: Any) -> dict[str, tuple[float, float]]:
    """Instance -> (deregistered, healthy again) from the run's records."""

    def at(iso: str) -> float:
        return dt.datetime.fromisoformat(iso).timestamp()

    return {
        i: (at(o["times"]["deregistered"]), at(o["times"]["healthy"]))
        for i, o in given.outcomes(result).items()
        if o["outcome"] == "restarted"
    }


def test_the_plan_shows_each_instance_s_zone_target_groups_and_ports(tier: TierFactory) -> None:
    api = (GroupSpec("api", port=9000, members=(0, 1), port_overrides=((1, 9001),), share=0.5),)
    given = tier(size=4, zones=2, more_groups=api, parameters=BOTH_GROUPS)

    result = given.run(web_input(batchSize=1, dryRun=True))

    first, second = given.instances[:2]
    where = result.output["where"]
    assert where[first].endswith("web:8080, api:9000") and where[second].endswith("web:8080, api:9001")
    assert "eu-west-1a" in where[first]
    assert "Also drained from api" in result.output["summary"]
    assert given.mutating_calls() == []


def test_an_instance_that_fails_between_its_two_drains_is_put_back_where_it_was_taken_out(tier: TierFactory) -> None:
    given = tier(size=3, more_groups=API_EVERYWHERE, parameters=BOTH_GROUPS)
    before = {i: given.registrations(i) for i in given.instances}
    api = group_arn(given, "api")
    # Deregistering from api keeps failing for the first instance: it is already out of web by then.
    first = given.instances[0]
    given.sb.inject_api_error(
        "elastic-load-balancing-v2",
        "DeregisterTargets",
        "AccessDenied",
        count=6,
        match={"TargetGroupArn": api, "Targets": [{"Id": first, "Port": 9000}]},
    )

    result = given.run(web_input(batchSize=1, errorBudget=2))

    failed = given.outcomes(result)[first]
    assert (
        failed["outcome"] == "failed"
        and failed["step"] == "Deregister the instance and wait until it has drained from every target group"
    )
    assert "registered again" in failed["placement"], failed["placement"]
    assert not given.sb.fleet.instances[first].reboots, "never rebooted while api still sent it requests"
    given.assert_invariants(result, floor=2)
    assert_every_registration_as_before(given, before)


def test_a_missing_load_balancer_is_refused_with_nothing_changed(tier: TierFactory) -> None:
    given = tier(size=3)
    missing = given.sb.fleet_resources["LoadBalancerArn"][:-4] + "0000"

    nowhere = given.run(web_input(loadBalancerArn=missing))

    given.assert_refused(nowhere, "TargetGroupNotFoundError", f"load balancer {missing} does not exist")
