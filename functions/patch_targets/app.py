"""Patch preview, first step: validate the request, read the maintenance window, select the fleet.

- skips (a short note, not an error) when the window is not within the horizon, or nothing matches;
- keeps running instances that SSM manages, selected by explicit ids, tags and/or patch group;
- reads each instance's last patch operation (DescribeInstancePatchStates, 50 at a time): patch data
  is only as fresh as the last Scan/Install, so older than the threshold is flagged;
- writes that fleet snapshot, and the servers to list in batches of 50, to the bucket, and returns
  where they are and the patch filters: the state stays the same small size for 1 or 5,000 servers
  (a state's input and output are limited to 256 KiB; docs/workflows.md, "Patch preview at scale").
The decisions are opsflow.patch_selection's; the reads opsflow.ec2_instances and opsflow.patch_manager.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import Field

from opsflow import bucket, ec2_instances, patch_manager, timeutil
from opsflow.errors import service_error
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, tracer
from opsflow.patch_selection import (
    NOTHING_MANAGED,
    Defaults,
    PreviewRequest,
    Selection,
    batches_key,
    fleet_key,
    fleet_rows,
    instance_queries,
    listing_batches,
    patch_filters,
    plan,
    skipped,
    window_verdict,
)
from opsflow.patch_states import patch_states
from opsflow.settings import BucketSettings, cached_settings
from opsflow.validation import ExecutionEvent, parse_event


class Settings(BucketSettings):
    maintenance_window_id: str = Field(default="", alias="MAINTENANCE_WINDOW_ID")
    patch_group: str = Field(default="", alias="PATCH_GROUP")
    horizon_hours: int = Field(default=24, alias="HORIZON_HOURS", ge=1)
    stale_after_hours: int = Field(default=72, alias="STALE_AFTER_HOURS", ge=1)
    mail_when_nothing_pending: bool = Field(default=True, alias="MAIL_WHEN_NOTHING_PENDING")

    def defaults(self) -> Defaults:
        return Defaults(
            maintenance_window_id=self.maintenance_window_id,
            patch_group=self.patch_group,
            horizon_hours=self.horizon_hours,
            stale_after_hours=self.stale_after_hours,
            mail_when_nothing_pending=self.mail_when_nothing_pending,
        )


settings = cached_settings(Settings)


def select(request: PreviewRequest, execution_arn: str, cfg: Settings) -> dict[str, Any]:
    run = plan(request, execution_arn, cfg.defaults())
    base = run.base
    if run.window_id:
        window = patch_manager.maintenance_window(run.window_id)
        base["window"], skip = window_verdict(run.window_id, window, timeutil.now(), run.horizon_hours)
        if skip:
            return skipped(base, skip)

    tags = ec2_instances.tags_of_instances(instance_queries(request.instances or Selection(), cfg.patch_group))
    with_ssm = patch_manager.managed_nodes(sorted(tags))
    states = patch_states(sorted(with_ssm))
    fleet = fleet_rows(tags, with_ssm, states, timeutil.now(), base["staleAfterHours"])
    batches = listing_batches(fleet)
    if not batches:
        return skipped(base, NOTHING_MANAGED)

    prefix = base["runPrefix"]
    bucket.put_json(cfg.bucket_name, fleet_key(prefix), fleet)
    # The Distributed Map's ItemReader reads this JSON array: one item (child execution) per batch.
    bucket.put_json(cfg.bucket_name, batches_key(prefix), batches)
    return {
        **base,
        "servers": sum(len(b["instanceIds"]) for b in batches),
        "patchFilters": patch_filters(request),
        "fleet": {"bucket": cfg.bucket_name, "key": fleet_key(prefix)},
        "batches": {"bucket": cfg.bucket_name, "key": batches_key(prefix), "count": len(batches)},
    }


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    targets_event = parse_event(ExecutionEvent, event)
    request = parse_event(PreviewRequest, targets_event.input)
    try:
        result = select(request, targets_event.execution_arn, settings())
    except ClientError as exc:  # under the service's error code, so the state machine's Retry can match it
        raise service_error(exc) from exc
    logger.info(
        "selected",
        extra={"instances": result["servers"], "skip": result["skip"], "note": result["note"]},
    )
    return result
