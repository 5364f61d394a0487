"""A large batch restarts within the account's ELB API budget, which it shares with other callers.

ELB throttles each account's requests per Region with token buckets: Describe* may burst to 40 and
then gets 10 a second; Register/DeregisterTargets 20, then 4 a second (ELB user guide, "Request
throttling for the ELB API"; sandbox/elb_throttling.py). Every instance in flight waits for its
drain and for its health on DescribeTargetHealth: 50 at a time, each asking every second, asked five
times what the bucket refills, and 36 of 50 instances failed on "Throttling: Rate exceeded". The
instances waiting on a group now share one answer per poll (target gate, shared_listing).
"""

from collections.abc import Callable

from opsflow import polling
from tests.workflows.conftest import Tier, web_input

TierFactory = Callable[..., Tier]

SIZE, IN_FLIGHT = 60, 50


def test_fifty_instances_in_flight_restart_within_the_elb_api_budget_others_share(tier: TierFactory) -> None:
    given = tier(size=SIZE)
    buckets = given.sb.elb_buckets
    assert buckets is not None
    buckets.reserve("describe", per_second=4, burst=20)  # a dashboard and a controller poll the same account

    result = given.run(web_input(batchSize=IN_FLIGHT), timeout=600)

    assert result.status == "SUCCEEDED", result.cause
    assert result.output["restarted"] == SIZE
    given.assert_invariants(result, floor=SIZE - IN_FLIGHT)
    start = result.events[0]["timestamp"].timestamp()
    throttled = [r.at - start for r in buckets.requests if r.throttled]
    # Only the first batch's capacity gates, all at once, overflow the burst (botocore retries them); no wait does.
    assert all(at < 10 for at in throttled), f"throttled at {throttled}"
    # Instances that come back while a registration is in flight join the next one (opsflow.shared_registration):
    # one request per instance before; the registration bucket refills only 4 a second.
    registrations = [r for r in buckets.requests if r.operation == "RegisterTargets"]
    assert len(registrations) < SIZE
    assert not any(r.throttled for r in registrations)
    waits = [r for r in buckets.requests if r.operation == "DescribeTargetHealth" and r.at - start > 10]
    span = max(r.at for r in waits) - min(r.at for r in waits)
    assert len(waits) / span <= polling.ELB_DESCRIBE_SHARE, f"{len(waits)} requests in {span:.0f} s"


def test_the_poll_period_keeps_every_target_group_s_shared_question_within_the_run_s_share() -> None:
    assert [polling.elb_poll_seconds(n) for n in (1, 5, 6, 12)] == [1.0, 1.0, 1.2, 2.4]
