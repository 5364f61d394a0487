"""May one more instance of a run leave service now? The target gate's decisions, over plain data.

Each takes what the load balancer, the run table and CloudWatch answered (target healths, the run's
records, the alarms that fired) and either returns or raises TargetNotYetInStateException ("not yet":
the state machine asks again). The questions themselves are asked by the target gate's handler.
"""

import datetime as dt
import json
from typing import Any, NamedTuple

from opsflow.arns import group_name
from opsflow.errors import TargetNotYetInStateException
from opsflow.runs import OUT
from opsflow.targets import HEALTHY, Registration, TargetHealth


class Decision(NamedTuple):
    proceed: bool
    reason: str = ""


def may_take_out(
    *, failed: int, error_budget: int, stopped_on_alarm: dict[str, Any] | None, firing: list[str], seen_at: str
) -> Decision:
    """Whether the run may take one more instance out, capacity aside.

    A watched alarm that fired (now, or earlier in the run: ``stopped_on_alarm``) stops the run
    before the error budget does: it is the application, not one instance, that suffers.
    ``seen_at``: when ``firing`` was read.
    """
    if stopped_on_alarm:
        names = ", ".join(stopped_on_alarm.get("alarms", []))
        return Decision(False, f"stopped on alarm {names} (in ALARM at {stopped_on_alarm.get('at', '?')})")
    if firing:
        return Decision(False, f"stopped on alarm {', '.join(firing)} (in ALARM, seen at {seen_at})")
    if failed >= error_budget:
        return Decision(False, f"error budget used up ({failed} of {error_budget} failures)")
    return Decision(True)


def group_room(
    instance_id: str,
    *,
    where: list[Registration],
    floors: dict[str, int],
    default_floor: int,
    described: dict[str, list[TargetHealth]],
    gone: int = 0,
) -> None:
    """Wait unless every group keeps its floor without this instance.

    ``floors``: target group -> healthy targets it keeps (``default_floor`` for the others). ``gone``:
    instances of the run terminated since it was planned (an Auto Scaling group scaled in): the tier is
    that much smaller for good, so each floor is that much lower (still all but the batch size).
    """
    for arn, targets in described.items():
        healthy = sum(1 for t in targets if t.state == HEALTHY)
        mine = {r.port for r in where if r.target_group_arn == arn}
        leaving = sum(
            1
            for t in targets
            if t.instance_id == instance_id and t.state == HEALTHY and (None in mine or t.port in mine)
        )
        floor = max(1, floors.get(arn, default_floor) - gone)
        if healthy - leaving < floor:
            raise TargetNotYetInStateException(
                f"{healthy} healthy targets in {group_name(arn)}; taking {instance_id} out "
                f"would leave fewer than {floor}"
            )


def out_elsewhere(outcomes: list[dict[str, Any]], instance_id: str, zone: str) -> list[dict[str, Any]]:
    """The run's instances out of service in another zone (``outcomes``: the run table's instance records)."""
    return [
        o
        for o in outcomes
        if o.get("outcome") == OUT and o.get("zone", zone) != zone and o["instanceId"] != instance_id
    ]


def zone_room(
    instance_id: str,
    *,
    zone: str,
    zone_floor: int,
    others_out: list[dict[str, Any]],
    run: dict[str, Any],
    described: dict[str, list[TargetHealth]],
) -> None:
    """One zone at a time: wait while another zone has an instance out, or while the zone is at its floor."""
    others = sorted(o["instanceId"] for o in others_out)
    if others:
        raise TargetNotYetInStateException(
            f"{instance_id} is in {zone}; waiting until {', '.join(others)} of another zone are back"
        )
    members = set(json.loads(run.get("zones", "{}")).get(zone, []))
    serving = {
        i
        for i in members
        if all(t.state == HEALTHY for ts in described.values() for t in ts if t.instance_id == i)
        and any(t.instance_id == i for ts in described.values() for t in ts)
    }
    if len(serving - {instance_id}) < zone_floor:
        raise TargetNotYetInStateException(
            f"{len(serving)} instances serve in {zone}; taking {instance_id} out would leave fewer than {zone_floor}"
        )


def later_mark_steps_back(
    instance_id: str, zone: str, mine: dict[str, Any], others_out: list[dict[str, Any]]
) -> TargetNotYetInStateException | None:
    """Two gates of different zones may both find no other zone out, and both mark their instance. Each
    looks again after its mark (``mine``, ``others_out``: read after it): the later mark steps back (it is
    unmarked) and waits, with this error. At least one sees the other, and the one marked first never
    steps back: one zone goes on."""
    first = (mine.get("takenOutAt", ""), instance_id)
    earlier = [o["instanceId"] for o in others_out if (o.get("takenOutAt", ""), o["instanceId"]) < first]
    if not earlier:
        return None
    return TargetNotYetInStateException(
        f"{', '.join(earlier)} of another zone went out at the same time; {zone} waits for it"
    )


def run_started(run: dict[str, Any], now: float) -> dt.datetime:
    """When the run started (its record's startedAt, the execution's start time; else ``now``), as an aware datetime."""
    if not run.get("startedAt"):
        return dt.datetime.fromtimestamp(now, dt.UTC)
    started = dt.datetime.fromisoformat(str(run["startedAt"]))
    return started if started.tzinfo else started.replace(tzinfo=dt.UTC)


def healthy_by_group(described: dict[str, list[TargetHealth]]) -> dict[str, int]:
    """Group name -> its healthy targets (the capacity gate's answer)."""
    return {group_name(arn): sum(1 for t in ts if t.state == HEALTHY) for arn, ts in described.items()}


def reached(instance_id: str, found: dict[Registration, str], done: set[str] | tuple[str, ...]) -> dict[str, Any]:
    """The instance's state once it is in one of ``done`` in every registration; "not yet" naming where it is not."""
    pending = {r: s for r, s in found.items() if s not in done}
    if pending:
        listed = ", ".join(f"{s} in {group_name(r.target_group_arn)}" for r, s in pending.items())
        raise TargetNotYetInStateException(f"{instance_id} is {listed}")
    return {"state": next(iter(found.values()))}
