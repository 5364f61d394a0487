"""What would break the first run on a real account, and the sandbox refusing it as AWS would.

Each test here is about a behaviour of AWS that the sandbox now enforces: where the probing functions
run (network), the port the security group opens, and reboots that EC2 only queues.
"""

import copy
import json
from collections.abc import Callable
from typing import Any

from sandbox.fleet import Spread
from sandbox.runtime import Sandbox
from tests.conftest import ROOT
from tests.workflows.conftest import SM, Tier, web_input

TierFactory = Callable[..., Tier]
NO_VPC = {"VpcId": "", "HealthCheckSubnetIds": "", "InstanceSecurityGroupId": ""}


def invoke(sb: Sandbox, logical_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Invoke a deployed function as Step Functions would; the Lambda error payload if it raised."""
    out, _, _ = sb.lambdas.invoke(sb.lambdas.by_logical_id(logical_id).function_name, json.dumps(payload))
    return dict(json.loads(out))


def startup_check(given: Tier, port: int = 8080) -> dict[str, Any]:
    return invoke(
        given.sb,
        "StartupCheckFunction",
        {"instanceId": given.instances[0], "health": {"port": port, "path": "/health"}},
    )


# -- the network: where the functions run, and what the security groups open --------------------------------
def test_a_function_outside_the_vpc_cannot_reach_an_instance_s_private_address(tier: TierFactory) -> None:
    given = tier(size=2, parameters=NO_VPC)

    answer = startup_check(given)

    assert answer["errorType"] == "InstanceNotYetStartedException"
    assert "timed out" in answer["errorMessage"] and "outside any VPC" in answer["errorMessage"]


def test_in_the_vpc_only_the_port_the_security_group_opens_is_reachable(tier: TierFactory) -> None:
    given = tier(size=2, parameters={"HealthPort": "80"})  # the stack opens port 80; the application is on 8080

    answer = startup_check(given, port=8080)

    assert answer["errorType"] == "InstanceNotYetStartedException"
    assert "timed out" in answer["errorMessage"] and "on port 8080" in answer["errorMessage"]


def test_the_stack_s_own_security_group_rule_lets_the_startup_check_in(tier: TierFactory) -> None:
    given = tier(size=2)

    assert startup_check(given)["statusCode"] == 200


def test_a_stack_without_vpc_settings_refuses_the_restart_naming_the_parameters(tier: TierFactory) -> None:
    given = tier(size=3, parameters=NO_VPC)

    result = given.run(web_input(batchSize=1))

    given.assert_refused(result, "HealthUrlUnreachableError", "VpcId, HealthCheckSubnetIds")
    assert "InstanceSecurityGroupId" in (result.cause or "")


def test_an_instance_outside_the_probed_security_group_is_refused(tier: TierFactory) -> None:
    given = tier(size=3)
    ec2 = given.sb.client("ec2")
    other = ec2.create_security_group(GroupName="other", Description="x", VpcId=given.sb.fleet_resources["VpcId"])
    ec2.modify_instance_attribute(InstanceId=given.instances[1], Groups=[other["GroupId"]])

    result = given.run(web_input(batchSize=1))

    given.assert_refused(result, "HealthUrlUnreachableError", f"{given.instances[1]} is not in the security group")


# -- preflight: the dry run proves the run can succeed ---------------------------------------------------
def test_the_dry_run_says_the_preflight_passed(tier: TierFactory) -> None:
    given = tier(size=4)

    result = given.run(web_input(batchSize=2, dryRun=True))

    assert result.status == "SUCCEEDED", result.cause
    assert result.output["preflight"]["verdict"] == "ok" and result.output["preflight"]["checked"] == 4
    assert given.mutating_calls() == [] and given.reboot_calls() == []
    dry_runs = given.sb.bridge.calls_to("ec2", "RebootInstances", dry_runs=True)
    assert dry_runs and all(c.params["DryRun"] is True for c in dry_runs)


def test_the_dry_run_says_which_of_the_stack_s_own_alarms_and_rules_it_will_never_mute(tier: TierFactory) -> None:
    given = tier(size=3)

    result = given.run(web_input(dryRun=True, alarms={"namePrefixes": ["opsflow"]}, rules={"namePrefixes": ["op"]}))

    assert result.output["neverMuted"] == {
        "alarms": ["opsflow-executions-ended-badly"],
        "rules": ["opsflow-safety-net"],
    }


def test_a_health_url_that_does_not_answer_ready_fails_the_preflight_naming_instance_and_fix(
    tier: TierFactory,
) -> None:
    given = tier(size=3)

    result = given.run(web_input(batchSize=1, health={"port": 8080, "path": "/healthz"}))

    given.assert_refused(result, "PreflightFailedError", f"{given.instances[0]}: health URL")
    assert "/healthz answered 404, expected 200" in (result.cause or "")
    assert "nothing was changed" in (result.cause or "")


# -- reboots are asynchronous --------------------------------------------------------------------------
SLOW_SHUTDOWN = {"shutdown": Spread(150.0)}  # a clean shutdown that takes 2.5 min: the old process answers meanwhile


def test_an_instance_is_registered_again_only_after_its_reboot_happened(tier: TierFactory) -> None:
    given = tier(size=4, **SLOW_SHUTDOWN)

    result = given.run(web_input(batchSize=1, expectedBootSeconds=0), timeout=180)

    assert result.status == "SUCCEEDED", result.cause
    for instance_id in given.instances:
        [(down, _, app_up)] = given.sb.fleet.instances[instance_id].reboots
        registered = given.sb.fleet.registrations[instance_id][-1].registered_at
        assert down < app_up <= registered, f"{instance_id} was registered before it had rebooted"
    given.assert_invariants(result, floor=3)


def _without_the_wait_for_the_reboot() -> dict[str, Any]:
    """The workflow as it was: the startup check right after the reboot call."""
    definition: dict[str, Any] = json.loads((ROOT / "statemachines" / "rolling_restart.asl.json").read_text())
    states = copy.deepcopy(definition)["States"]["Restart the instances a batch at a time"]["ItemProcessor"]["States"]
    states["Reboot the instance"]["Next"] = "Wait for the expected boot time"
    del states["Wait until the reboot has begun"]
    del states["Record the instance as restarted"]["Parameters"]["Item"]["times"]["M"]["down"]
    definition["States"]["Restart the instances a batch at a time"]["ItemProcessor"]["States"] = states
    return definition


def test_the_sandbox_catches_a_workflow_that_trusts_the_old_process(tier: TierFactory) -> None:
    """Without the wait for the reboot, the old process passes the check and the instance reboots in service."""
    given = tier(size=3, definitions={SM: _without_the_wait_for_the_reboot()}, **SLOW_SHUTDOWN)

    result = given.run(web_input(batchSize=1, expectedBootSeconds=0), timeout=180)

    start, end = result.events[0]["timestamp"].timestamp(), result.events[-1]["timestamp"].timestamp()
    # The harm comes after the run: the instance it put back goes down when its slow shutdown ends.
    later = end + SLOW_SHUTDOWN["shutdown"].mean + 60
    assert given.sb.fleet.timeline(start, later).dropped_requests > 0, "requests were routed to a rebooting instance"


def test_a_reboot_that_never_happens_fails_that_instance_clearly(tier: TierFactory) -> None:
    given = tier(size=3)
    stuck = given.instances[0]
    given.sb.fleet.inject(stuck, "no_reboot")

    result = given.run(web_input(batchSize=1), timeout=240)

    assert result.error == "InstancesFailedToRestart"
    outcome = given.outcomes(result)[stuck]
    assert outcome["step"] == "Wait until the reboot has begun"
    assert outcome["error"] == "InstanceNotYetDownException" and "still answers 200" in outcome["cause"]
    assert given.target_states()[stuck] in ("healthy", "initial"), "it still answers, so it was put back"
    given.assert_invariants(result, floor=2)
