"""DescribeTargetHealth for the instances of a run waiting on a target group: one question per group per poll.

The instances in flight share one answer through the run table (:func:`shared_listing`), so the run
stays within its share of the account's ELB request budget however many are waiting (opsflow.polling),
and a question ELB throttled even after botocore's retries is "not yet": asked again, nothing failed.
"""

from collections.abc import Callable

from botocore.exceptions import ClientError

from opsflow import targets, timeutil
from opsflow.arns import group_name
from opsflow.errors import TargetNotYetInStateException, error_code
from opsflow.runs import RunTable
from opsflow.targets import TargetHealth

# ELB's code for a throttled request ("Rate exceeded"); the user guide calls it ThrottlingException.
THROTTLED = {"Throttling", "ThrottlingException"}
# How long a waiter that lost the claim gives the one asking ELB before it reads the shared answer again.
LEADER_SECONDS = 0.25


def asked[T](instance_id: str, ask: Callable[[], T]) -> T:
    """``ask()`` the load balancer; throttled (after botocore's own retries) is "not yet": ask again later."""
    try:
        return ask()
    except ClientError as exc:
        code = error_code(exc)
        if code not in THROTTLED:
            raise
        raise TargetNotYetInStateException(
            f"the load balancer throttled the question about {instance_id} ({code}): asking again"
        ) from exc


def shared_listing(table: RunTable, every: float, instance_id: str) -> Callable[[str], list[TargetHealth]]:
    """The targets of ``instance_id`` in a group, as ELB answered within the last ``every`` seconds, shared
    through the run table: of all the instances waiting on a group, the first to find the answer stale claims
    the question and asks ELB (DescribeTargetHealth without Targets: every target in one request); the others
    read its answer, each only its own targets. So a run asks once per group per poll, however many
    instances are in flight, and a read costs the same however large the group."""

    def fresh(shared: tuple[float, list[TargetHealth]] | None, now: float) -> list[TargetHealth] | None:
        if shared is None or shared[0] <= now - every:
            return None
        return shared[1]

    def listed(arn: str) -> list[TargetHealth]:
        now = timeutil.epoch()
        shared = fresh(table.target_health(arn, instance_id), now)
        if shared is not None:
            return shared
        if table.claim_health_poll(arn, now, every):
            asked_at = timeutil.epoch()
            described = targets.describe(arn)
            table.put_target_health(arn, asked_at, described)
            return [t for t in described if t.instance_id == instance_id]
        timeutil.sleep(LEADER_SECONDS)
        shared = fresh(table.target_health(arn, instance_id), now)
        if shared is None:
            raise TargetNotYetInStateException(f"another instance is asking ELB about {group_name(arn)}: not in yet")
        return shared

    return listed
