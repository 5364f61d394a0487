"""The fleet model: target lifecycle, draining, boot and readiness, dropped requests."""

import pytest

from sandbox.fleet import Fleet, FleetSpec, Spread

T0 = 1_000_000.0


@pytest.fixture
def fleet() -> Fleet:
    spec = FleetSpec(
        size=4,
        boot=Spread(40),
        readiness=Spread(20),
        deregistration_delay=60,
        health_check_interval=10,
        healthy_threshold=3,
        unhealthy_threshold=2,
        requests_per_second=40,
        request_seconds=0.5,
        drain=Spread(5, 0.6),
        shutdown=Spread(0),  # the reboot begins at the call (asynchronous reboots: their own test)
    )
    model = Fleet(spec, T0)
    for n in range(4):
        model.add_instance(f"i-{n}", f"10.0.0.{n}")
    return model


def test_registered_instances_start_healthy_and_serving(fleet: Fleet) -> None:
    assert {fleet.target_state(i, T0) for i in fleet.instances} == {"healthy"}
    assert fleet.serving(T0) == 4


def test_a_deregistered_target_drains_until_its_requests_finish_then_is_unused(fleet: Fleet) -> None:
    fleet.deregister("i-0", T0)
    drain_end = fleet.registrations["i-0"][-1].drain_end
    assert T0 < drain_end <= T0 + 8  # early: well before the 60 s delay
    assert fleet.target_state("i-0", T0 + 0.1) == "draining"
    assert fleet.target_state("i-0", drain_end) == "unused"
    assert "i-0" not in fleet.registered_targets(drain_end)


def test_draining_never_outlasts_the_deregistration_delay() -> None:
    model = Fleet(FleetSpec(size=1, deregistration_delay=3, drain=Spread(30)), T0)
    model.add_instance("i-0", "10.0.0.1")
    model.deregister("i-0", T0)
    assert model.registrations["i-0"][-1].drain_end == T0 + 3


def test_a_reboot_takes_boot_then_readiness_time(fleet: Fleet) -> None:
    fleet.deregister("i-0", T0)
    fleet.reboot("i-0", T0 + 10)
    assert fleet.health_endpoint("i-0", T0 + 49) is None  # booting: connection refused
    assert fleet.health_endpoint("i-0", T0 + 51) == 503  # OS up, application starting
    assert fleet.health_endpoint("i-0", T0 + 71) == 200
    assert not fleet.status_checks_ok("i-0", T0 + 49) and fleet.status_checks_ok("i-0", T0 + 51)


def test_a_reboot_is_only_queued_the_old_process_answers_until_the_shutdown_ends() -> None:
    """EC2: RebootInstances "only queues a request to reboot"; a clean shutdown can take minutes."""
    model = Fleet(FleetSpec(size=1, shutdown=Spread(120), boot=Spread(40), readiness=Spread(20)), T0)
    model.add_instance("i-0", "10.0.0.1")
    model.reboot("i-0", T0)
    assert model.health_endpoint("i-0", T0 + 119) == 200 and model.status_checks_ok("i-0", T0 + 119)
    assert model.health_endpoint("i-0", T0 + 121) is None
    assert model.health_endpoint("i-0", T0 + 181) == 200


def test_a_reboot_that_never_happens_leaves_the_old_process_answering() -> None:
    model = Fleet(FleetSpec(size=1), T0)
    model.add_instance("i-0", "10.0.0.1")
    model.inject("i-0", "no_reboot")
    model.reboot("i-0", T0)
    assert all(model.health_endpoint("i-0", T0 + t) == 200 for t in (0, 10, 600, 3600))


def test_a_newly_registered_target_is_healthy_after_one_passing_check(fleet: Fleet) -> None:
    """ALB guide: "After your target is registered, it must pass one health check to be considered healthy"."""
    fleet.deregister("i-0", T0)
    fleet.reboot("i-0", T0 + 10)
    fleet.register("i-0", T0 + 80)  # application up since T0 + 70; the first check one interval later
    assert fleet.target_state("i-0", T0 + 81) == "initial"
    assert fleet.health_checks_done("i-0", T0 + 89.9) == 0
    assert fleet.target_state("i-0", T0 + 89.9) == "initial"
    assert fleet.target_state("i-0", T0 + 90) == "healthy"  # not 3 x 10 s: the threshold is for unhealthy targets


def test_an_unhealthy_target_needs_the_healthy_threshold_of_consecutive_passes(fleet: Fleet) -> None:
    fleet.deregister("i-0", T0)
    fleet.reboot("i-0", T0 + 10)  # application down until T0 + 70
    fleet.register("i-0", T0 + 20)  # checks at T0 + 30, 40, ...: two failures make it unhealthy
    assert fleet.target_state("i-0", T0 + 39) == "initial"
    assert fleet.target_state("i-0", T0 + 40) == "unhealthy"
    # Passing from T0 + 70: healthy at the third consecutive pass (HealthyThresholdCount 3), not the first.
    assert fleet.target_state("i-0", T0 + 89) == "unhealthy"
    assert fleet.target_state("i-0", T0 + 90) == "healthy"


def test_a_new_target_that_failed_fewer_checks_than_the_threshold_needs_one_pass(fleet: Fleet) -> None:
    fleet.deregister("i-0", T0)
    fleet.reboot("i-0", T0 + 10)  # application down until T0 + 70
    fleet.register("i-0", T0 + 55)  # the check at T0 + 65 fails (1 < UnhealthyThresholdCount 2), T0 + 75 passes
    assert fleet.target_state("i-0", T0 + 74) == "initial"
    assert fleet.target_state("i-0", T0 + 75) == "healthy"


def test_a_healthy_target_turns_unhealthy_after_the_unhealthy_threshold_of_failures(fleet: Fleet) -> None:
    fleet.reboot("i-0", T0)  # registered long ago: checks at T0, T0 + 10, ...; down from T0
    assert fleet.target_state("i-0", T0 + 9.9) == "healthy"  # one failure
    assert fleet.target_state("i-0", T0 + 10) == "unhealthy"  # the second


def test_a_target_registered_while_down_turns_unhealthy(fleet: Fleet) -> None:
    fleet.inject("i-0", "never_ready")
    fleet.deregister("i-0", T0)
    fleet.reboot("i-0", T0 + 10)
    fleet.register("i-0", T0 + 20)
    assert fleet.target_state("i-0", T0 + 25) == "initial"
    assert fleet.target_state("i-0", T0 + 60) == "unhealthy"
    assert fleet.serving(T0 + 60) == 3


def test_rebooting_after_the_drain_drops_no_request(fleet: Fleet) -> None:
    fleet.deregister("i-0", T0)
    fleet.reboot("i-0", fleet.registrations["i-0"][-1].drain_end)
    assert fleet.timeline(T0 - 10, T0 + 200).dropped_requests == 0


def test_rebooting_a_serving_instance_drops_its_requests_and_those_routed_to_it(fleet: Fleet) -> None:
    fleet.reboot("i-0", T0)  # no deregistration: the original design's failure mode
    timeline = fleet.timeline(T0 - 10, T0 + 200)
    in_flight = 40 * 0.5 / 4
    # The ALB needs 2 failing checks, 10 s apart; the first falls the instant the instance goes down.
    routed_until_unhealthy = 40 / 4 * 10
    assert timeline.dropped_requests == pytest.approx(in_flight + routed_until_unhealthy, rel=0.1)
    assert timeline.min_serving == 3


def test_rebooting_while_draining_drops_the_requests_still_in_flight(fleet: Fleet) -> None:
    fleet.deregister("i-0", T0)
    fleet.reboot("i-0", T0 + 0.01)
    assert 0 < fleet.dropped_requests < 40 * 0.5 / 3


def test_with_no_healthy_target_the_load_balancer_fails_open(fleet: Fleet) -> None:
    for instance_id in fleet.instances:
        fleet.inject(instance_id, "never_ready")
        fleet.reboot(instance_id, T0)
    assert fleet.target_state("i-0", T0 + 30) == "unhealthy"
    assert fleet._routable(T0 + 30) == list(fleet.instances)


def test_throttled_reboot_calls_are_used_up_one_call_at_a_time(fleet: Fleet) -> None:
    fleet.inject("i-1", "throttle_reboot", count=2)
    assert fleet.reboot_is_throttled("i-1", T0)
    assert fleet.reboot_is_throttled("i-1", T0)
    assert not fleet.reboot_is_throttled("i-1", T0)


def test_the_same_seed_gives_the_same_fleet() -> None:
    def drains(seed: int) -> list[float]:
        model = Fleet(FleetSpec(size=3, seed=seed, boot=Spread(40, 0.5)), T0)
        for n in range(3):
            model.add_instance(f"i-{n}", f"10.0.0.{n}")
            model.deregister(f"i-{n}", T0)
            model.reboot(f"i-{n}", T0 + 10)
        return [model.registrations[f"i-{n}"][-1].drain_end for n in range(3)] + [
            model.instances[f"i-{n}"].reboots[0][1] for n in range(3)
        ]

    assert drains(5) == drains(5)
    assert drains(5) != drains(6)


def test_the_timeline_samples_what_the_load_balancer_answers_at_every_second(fleet: Fleet) -> None:
    """The timeline skips recomputing a target until its state can change; it must equal asking
    target_state and the application at every sample: drains, reboots, a never-ready instance, a
    re-registration while down, health checks failing and passing, no healthy target (fail open)."""
    fleet.deregister("i-0", T0)
    fleet.reboot("i-0", T0 + 6)
    fleet.register("i-0", T0 + 70.5)
    fleet.inject("i-1", "never_ready")
    fleet.reboot("i-1", T0 + 3)  # still registered: fails its checks
    fleet.deregister("i-1", T0 + 40)
    fleet.register("i-1", T0 + 90)
    fleet.reboot("i-2", T0 + 100.25)
    fleet.reboot("i-3", T0 + 100.25)
    fleet.reboot("i-0", T0 + 105)  # every target unhealthy for a while: the ALB routes to all of them

    timeline = fleet.timeline(T0 - 5, T0 + 250)

    expected_in_service, expected_serving = [], []
    for t in timeline.times:
        routable = fleet._routable(t)
        expected_in_service.append(len(routable))
        expected_serving.append(sum(1 for i in routable if fleet.instances[i].app_up(t)))
    assert timeline.in_service == expected_in_service
    assert timeline.serving == expected_serving
    assert min(timeline.serving) == 0 and len(set(timeline.in_service)) > 2  # the history above was varied
