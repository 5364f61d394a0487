"""Whatever fails, the tier ends no worse than it was: retried steps, lost responses, interrupted restarts."""

from collections import Counter
from collections.abc import Callable

from tests.workflows.conftest import Tier, web_input

TierFactory = Callable[..., Tier]


def alerts_for(given: Tier, instance_id: str) -> list[str]:
    return [
        n["Subject"]
        for n in given.notifications()
        if "failed to restart" in n["Subject"] and instance_id in n["Subject"]
    ]


def test_a_report_retried_after_its_alert_failed_counts_the_instance_once(tier: TierFactory) -> None:
    given = tier(size=5)
    broken = given.instances[1]
    given.sb.fleet.inject(broken, "never_ready")
    given.sb.inject_api_error(
        "sns", "Publish", "InternalError", count=1
    )  # the first alert fails; the report is retried

    result = given.run(web_input(batchSize=2, errorBudget=2), timeout=240)

    outcomes = Counter(o["outcome"] for o in given.outcomes(result).values())
    assert outcomes == {"failed": 1, "restarted": 4}, "one failure spent one unit of the budget of 2"
    assert len(alerts_for(given, broken)) == 1
    given.assert_invariants(result, floor=3)


def test_a_failure_count_whose_response_was_lost_is_counted_once(tier: TierFactory) -> None:
    given = tier(size=5)
    given.sb.fleet.inject(given.instances[1], "never_ready")
    given.sb.inject_api_error(
        "dynamodb",
        "UpdateItem",
        "InternalServerError",
        match={"UpdateExpression": "ADD failedInstances :one"},
        lost_response=True,
    )

    result = given.run(web_input(batchSize=2, errorBudget=2), timeout=240)

    assert Counter(o["outcome"] for o in given.outcomes(result).values()) == {"failed": 1, "restarted": 4}
    given.assert_invariants(result, floor=3)


def test_an_alert_whose_response_was_lost_still_counts_the_instance_once(tier: TierFactory) -> None:
    """SNS standard topics have no idempotent publish: the retried report may mail the alert again
    (botocore itself retries a call whose connection broke), but the budget and the record stay right."""
    given = tier(size=5)
    broken = given.instances[1]
    given.sb.fleet.inject(broken, "never_ready")
    given.sb.inject_api_error("sns", "Publish", "InternalError", count=1, lost_response=True)

    result = given.run(web_input(batchSize=2, errorBudget=2), timeout=240)

    assert Counter(o["outcome"] for o in given.outcomes(result).values()) == {"failed": 1, "restarted": 4}
    assert 1 <= len(alerts_for(given, broken)) <= 2
    assert given.outcomes(result)[broken]["alertedAt"]
