"""The run table: one record per rolling-restart execution, its instance outcomes, and the locks.

Keys (pk / sk):
- ``run#<executionArn>`` / ``run``          the run: target group, settings, watched alarms (and the
                                              ones that stopped it), failed instances, mute record
- ``run#<executionArn>`` / ``instance#<id>`` one instance: ``out`` once the run takes it out of
                                              service, then its outcome and step times
- ``run#<executionArn>`` / ``command#<id>``  the SSM command the run sent to the instance: its id,
                                              status and output location (the ``command`` action)
- ``lock#<targetGroupArn>`` / ``lock``       who holds the target group (the state machine writes it; a
                                              run holds one per target group it changes)
- ``health#<targetGroupArn>`` / ``health``   the group's targets as ELB last described them (``at``, and
                                              ``targets``: instance id -> "port:state[,port:state]"), shared
                                              by every instance waiting on it (one DescribeTargetHealth
                                              per group per poll, however many instances are in flight);
                                              each waiter reads the time and its own entry only
- ``health#<targetGroupArn>`` / ``claim``    who asks ELB next (``claimedAt``): a small item of its own,
                                              so claiming never rewrites the answer
- ``register#<targetGroupArn>`` / ``pending`` the targets of the run's instances waiting to be registered
  (and ``deregister#...``)                    again (deregistered): an attribute ``t#<id>:<port>`` each, set
                                              to when it was asked, and who sends the request now
                                              (``claimedBy``, ``claimedAt``): one RegisterTargets (one
                                              DeregisterTargets) for all of them (opsflow.shared_registration)

The state machine writes the run record and takes the lock with DynamoDB service integrations; the
functions here read and update them, and the restore safety net uses them to clean up after a run
that was stopped or timed out.

A run is *open* from "Record the run" (which sets ``openSince``) until it is closed (``closedAt``
set, ``openSince`` removed): by the state machine once it restored alarms and released the lock, or
by whoever cleaned up after it (opsflow.cleanup). Only open runs are in the sparse ``open-runs``
index (hash ``sk``, range ``openSince``), which the reconciler queries instead of scanning.
"""

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from opsflow import clients
from opsflow.targets import TargetHealth

_ser = TypeSerializer()
_de = TypeDeserializer()

RUN_SK = "run"
LOCK_SK = "lock"
HEALTH_SK = "health"
HEALTH_CLAIM_SK = "claim"
PENDING_SK = "pending"
PENDING_PREFIX = "t#"  # a pending target's attribute: t#<instance id>:<port> ("" for the group's port)
HEALTH_DAYS = 1  # a shared answer outlives its run by a day at most (the table's TTL)
OUT = "out"  # an instance's outcome while the run has it out of service
OPEN_RUNS_INDEX = "open-runs"  # template.yaml declares it on RunTable


def failures(run: dict[str, Any]) -> int:
    """How many instances failed in the run (its error budget use)."""
    return len(run.get("failedInstances", ()))


def run_pk(execution_arn: str) -> str:
    return f"run#{execution_arn}"


def lock_pk(target_group_arn: str) -> str:
    return f"lock#{target_group_arn}"


def health_pk(target_group_arn: str) -> str:
    return f"health#{target_group_arn}"


def pending_pk(change: str, target_group_arn: str) -> str:
    """The item of the targets waiting for ``change`` (register, deregister) in the group."""
    return f"{change}#{target_group_arn}"


INSTANCE_SK_PREFIX = "instance#"
COMMAND_SK_PREFIX = "command#"


def instance_sk(instance_id: str) -> str:
    return f"{INSTANCE_SK_PREFIX}{instance_id}"


def command_sk(instance_id: str) -> str:
    return f"{COMMAND_SK_PREFIX}{instance_id}"


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in data.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def _health_expires(at: float) -> int:
    """When a shared health item written at ``at`` expires (the table's TTL attribute, epoch seconds)."""
    return int(at) + HEALTH_DAYS * 86400


def _encode_targets(targets: Iterable[TargetHealth]) -> str:
    """An instance's targets in the shared answer as one string, "80:healthy,8080:initial": a DynamoDB
    string per instance is smaller than nested lists, and cheaper for the Lambda to serialize each poll."""
    return ",".join(f"{t.port}:{t.state}" for t in targets)


def _decode_targets(instance_id: str, encoded: str) -> list[TargetHealth]:
    pairs = (entry.split(":", 1) for entry in encoded.split(",") if entry)
    return [TargetHealth(instance_id, int(port), state) for port, state in pairs]


def _pending(item: dict[str, Any]) -> dict[str, float]:
    return {k.removeprefix(PENDING_PREFIX): float(v) for k, v in item.items() if k.startswith(PENDING_PREFIX)}


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; hand out ints/floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class RunTable:
    table_name: str
    ddb: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.ddb is None:
            self.ddb = clients.client("dynamodb")

    def _read(self, pk: str, sk: str) -> dict[str, Any] | None:
        """One item, read consistently (a run's records are read right after they are written); None if absent."""
        item = self.ddb.get_item(TableName=self.table_name, Key=to_item({"pk": pk, "sk": sk}), ConsistentRead=True)
        return from_item(item["Item"]) if "Item" in item else None

    def _update_if(self, pk: str, sk: str, **update: Any) -> bool:
        """A conditional UpdateItem of one item; False (nothing changed) when its condition does not hold."""
        try:
            self.ddb.update_item(TableName=self.table_name, Key=to_item({"pk": pk, "sk": sk}), **update)
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def get_run(self, execution_arn: str) -> dict[str, Any] | None:
        return self._read(run_pk(execution_arn), RUN_SK)

    def set_run_fields(self, execution_arn: str, **fields: Any) -> None:
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": _ser.serialize(v) for i, v in enumerate(fields.values())}
        self.ddb.update_item(
            TableName=self.table_name,
            Key=to_item({"pk": run_pk(execution_arn), "sk": RUN_SK}),
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def count_failure(self, execution_arn: str, instance_id: str) -> int:
        """Count the instance against the run's error budget; return the failures so far.

        The failed instances are a set: a retried report adds the same id again and counts nothing.
        """
        response = self.ddb.update_item(
            TableName=self.table_name,
            Key=to_item({"pk": run_pk(execution_arn), "sk": RUN_SK}),
            UpdateExpression="ADD failedInstances :one",
            ExpressionAttributeValues={":one": {"SS": [instance_id]}},
            ReturnValues="ALL_NEW",  # the whole set, also when this id was already in it
        )
        return len(response["Attributes"]["failedInstances"]["SS"])

    def mark_taken_out(  # noqa: PLR0917
        self,
        execution_arn: str,
        instance_id: str,
        at: str,
        registrations: str = "",
        zone: str = "",
        auto_scaling_group: str = "",
    ) -> None:
        """Record, before it leaves service, that this run takes the instance out (once; a retry keeps the first).

        Only instances marked so are ever put back by this run's reports and cleanups: a run never
        touches an instance it did not take out itself. ``registrations`` (JSON: every target group and
        port it is taken out of) is what they put back; ``zone`` keeps one-zone-at-a-time runs to one zone;
        ``auto_scaling_group``: the group it goes on Standby in, which they take it out of Standby in.
        """
        extra = {
            "registrations": registrations or None,
            "zone": zone or None,
            "autoScalingGroup": auto_scaling_group or None,
        }
        with contextlib.suppress(self.ddb.exceptions.ConditionalCheckFailedException):  # marked already
            self.ddb.put_item(
                TableName=self.table_name,
                Item=to_item(
                    {"pk": run_pk(execution_arn), "sk": instance_sk(instance_id), "instanceId": instance_id}
                    | {"outcome": OUT, "takenOutAt": at}
                    | extra
                ),
                ConditionExpression="attribute_not_exists(pk)",
            )

    def note_alarm_stop(self, execution_arn: str, alarms: list[str], at: str) -> dict[str, Any]:
        """Record, once, that watched alarms fired: from then on the run takes no instance out.

        Returns what is recorded (the first report wins; a later one changes nothing), so every
        capacity check of the run names the same alarms.
        """
        key = to_item({"pk": run_pk(execution_arn), "sk": RUN_SK})
        try:
            self.ddb.update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression="SET stoppedOnAlarm = :stop",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(stoppedOnAlarm)",
                ExpressionAttributeValues={":stop": _ser.serialize({"alarms": alarms, "at": at})},
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return dict((self.get_run(execution_arn) or {}).get("stoppedOnAlarm") or {"alarms": alarms, "at": at})
        return {"alarms": alarms, "at": at}

    def unmark_taken_out(self, execution_arn: str, instance_id: str) -> None:
        """Withdraw a mark the run made for an instance it then did not take out (nothing was done to it yet)."""
        with contextlib.suppress(self.ddb.exceptions.ConditionalCheckFailedException):  # it went further
            self.ddb.delete_item(
                TableName=self.table_name,
                Key=to_item({"pk": run_pk(execution_arn), "sk": instance_sk(instance_id)}),
                ConditionExpression="outcome = :out AND attribute_not_exists(rebootRequestedAt)",
                ExpressionAttributeValues={":out": {"S": OUT}},
            )

    def note_progress(self, execution_arn: str, instance_id: str, **fields: str) -> None:
        """Add what the run saw of an instance it took out (rebootRequestedAt, downSeenAt) to its item.

        Only to an existing item: an instance this run did not take out gets no record from here.
        """
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        with contextlib.suppress(self.ddb.exceptions.ConditionalCheckFailedException):
            self.ddb.update_item(
                TableName=self.table_name,
                Key=to_item({"pk": run_pk(execution_arn), "sk": instance_sk(instance_id)}),
                UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={f":v{i}": {"S": v} for i, v in enumerate(fields.values())},
            )

    def note_command(self, execution_arn: str, instance_id: str, **fields: Any) -> None:
        """Record (or update) what became of the command the run sent to the instance."""
        item = {"pk": run_pk(execution_arn), "sk": command_sk(instance_id)}
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        self.ddb.update_item(
            TableName=self.table_name,
            Key=to_item(item),
            UpdateExpression="SET instanceId = :id, " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":id": {"S": instance_id}}
            | {f":v{i}": _ser.serialize(v) for i, v in enumerate(fields.values())},
        )

    def commands(self, execution_arn: str) -> dict[str, dict[str, Any]]:
        """The commands the run sent, by instance id."""
        pages = self.ddb.get_paginator("query").paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": run_pk(execution_arn)}, ":prefix": {"S": COMMAND_SK_PREFIX}},
            ConsistentRead=True,
        )
        return {item["instanceId"]["S"]: from_item(item) for page in pages for item in page["Items"]}

    def get_outcome(self, execution_arn: str, instance_id: str) -> dict[str, Any] | None:
        return self._read(run_pk(execution_arn), instance_sk(instance_id))

    def put_outcome(self, execution_arn: str, instance_id: str, outcome: dict[str, Any]) -> None:
        item = {
            "pk": run_pk(execution_arn),
            "sk": instance_sk(instance_id),
            "instanceId": instance_id,
            **outcome,
        }
        self.ddb.put_item(TableName=self.table_name, Item=to_item(item))

    def outcomes(self, execution_arn: str) -> list[dict[str, Any]]:
        pages = self.ddb.get_paginator("query").paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": run_pk(execution_arn)}, ":prefix": {"S": INSTANCE_SK_PREFIX}},
            ConsistentRead=True,
        )
        return [from_item(item) for page in pages for item in page["Items"]]

    def note_alerted(self, execution_arn: str, instance_id: str, at: str) -> None:
        """Record that an alert named the instance, so no later report or follow-up names it again."""
        self.ddb.update_item(
            TableName=self.table_name,
            Key=to_item({"pk": run_pk(execution_arn), "sk": instance_sk(instance_id)}),
            UpdateExpression="SET alertedAt = :at",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":at": {"S": at}},
        )

    def lock_owner(self, target_group_arn: str) -> str | None:
        """The execution that holds the target group's lock now; None when no run does."""
        owner = (self._read(lock_pk(target_group_arn), LOCK_SK) or {}).get("ownerExecutionArn")
        return str(owner) if owner else None

    def renew_lock(self, target_group_arn: str, execution_arn: str, expires_at: int) -> bool:
        """Push the lock's expiry to ``expires_at`` if this execution holds it; False if it does not."""
        return self._update_if(
            lock_pk(target_group_arn),
            LOCK_SK,
            UpdateExpression="SET expiresAt = :t",
            ConditionExpression="ownerExecutionArn = :me",
            ExpressionAttributeValues={":t": {"N": str(expires_at)}, ":me": {"S": execution_arn}},
        )

    def target_health(self, target_group_arn: str, instance_id: str) -> tuple[float, list[TargetHealth]] | None:
        """The group's last shared answer as one waiter needs it: when it was asked (epoch seconds) and the
        instance's own targets ([] if ELB did not list it); None before any answer.

        The projection keeps each read as small as one target whatever the group's size (DynamoDB still
        bills the read by the whole item's size: "DynamoDB read and write operations", developer guide)."""
        item = self.ddb.get_item(
            TableName=self.table_name,
            Key=to_item({"pk": health_pk(target_group_arn), "sk": HEALTH_SK}),
            ConsistentRead=True,
            ProjectionExpression="#at, #targets.#instance",
            ExpressionAttributeNames={"#at": "at", "#targets": "targets", "#instance": instance_id},
        )
        if "at" not in item.get("Item", {}):
            return None
        shared = from_item(item["Item"])
        return float(shared["at"]), _decode_targets(instance_id, shared.get("targets", {}).get(instance_id, ""))

    def claim_health_poll(self, target_group_arn: str, now: float, every: float) -> bool:
        """Be the one who asks ELB about the group now; False if another waiter claimed it within ``every`` s.

        The claim is an item of its own: an UpdateItem consumes write units for the larger of the item
        before and after it ("DynamoDB read and write operations"), so a claim on the answer would pay for
        every target of the group each poll."""
        return self._update_if(
            health_pk(target_group_arn),
            HEALTH_CLAIM_SK,
            UpdateExpression="SET claimedAt = :now, expiresAt = :expires",
            ConditionExpression="attribute_not_exists(claimedAt) OR claimedAt <= :stale",
            ExpressionAttributeValues={
                ":now": {"N": repr(now)},
                ":stale": {"N": repr(now - every)},
                ":expires": {"N": str(_health_expires(now))},
            },
        )

    def put_target_health(self, target_group_arn: str, at: float, described: Iterable[TargetHealth]) -> None:
        """Share what ELB answered at ``at`` about the group's targets, an entry per instance."""
        by_instance: dict[str, list[TargetHealth]] = {}
        for target in described:
            by_instance.setdefault(target.instance_id, []).append(target)
        self.ddb.put_item(
            TableName=self.table_name,
            Item=to_item(
                {
                    "pk": health_pk(target_group_arn),
                    "sk": HEALTH_SK,
                    "at": Decimal(repr(at)),
                    "targets": {i: _encode_targets(ts) for i, ts in by_instance.items()},
                    "expiresAt": _health_expires(at),
                }
            ),
        )

    def ask_to_change(self, change: str, target_group_arn: str, targets: Iterable[str], at: float) -> None:
        """Add ``targets`` ("<instance id>:<port>") to the group's pending ``change`` (register, deregister)."""
        self._set_pending(change, target_group_arn, dict.fromkeys(targets, at))

    def withdraw_change(self, change: str, target_group_arn: str, targets: Iterable[str]) -> None:
        """Take ``targets`` out of the group's pending ``change`` (done, or no longer waited for)."""
        self._set_pending(change, target_group_arn, dict.fromkeys(targets, 0.0), remove=True)

    def _set_pending(
        self, change: str, target_group_arn: str, targets: dict[str, float], *, remove: bool = False
    ) -> None:
        if not targets:
            return
        names = {f"#t{i}": PENDING_PREFIX + t for i, t in enumerate(targets)}
        values: dict[str, Any] = {}
        if remove:
            update = "REMOVE " + ", ".join(names)
        else:
            update = "SET " + ", ".join(f"#t{i} = :a{i}" for i in range(len(targets))) + ", expiresAt = :expires"
            values = {f":a{i}": {"N": repr(at)} for i, at in enumerate(targets.values())}
            values[":expires"] = {"N": str(_health_expires(max(targets.values())))}
        self.ddb.update_item(
            TableName=self.table_name,
            Key=to_item({"pk": pending_pk(change, target_group_arn), "sk": PENDING_SK}),
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            **({"ExpressionAttributeValues": values} if values else {}),
        )

    def pending_changes(self, change: str, target_group_arn: str) -> dict[str, float]:
        """The group's targets pending ``change``, each with when it was asked."""
        return _pending(self._read(pending_pk(change, target_group_arn), PENDING_SK) or {})

    def claim_change(
        self, change: str, target_group_arn: str, me: str, now: float, stale_after: float
    ) -> dict[str, float] | None:
        """Be the one who makes the group's pending ``change`` now: its targets (with when each was asked),
        or None while another waiter's claim is younger than ``stale_after`` seconds."""
        try:
            item = self.ddb.update_item(
                TableName=self.table_name,
                Key=to_item({"pk": pending_pk(change, target_group_arn), "sk": PENDING_SK}),
                UpdateExpression="SET claimedBy = :me, claimedAt = :now, expiresAt = :expires",
                ConditionExpression="attribute_not_exists(claimedAt) OR claimedAt <= :stale",
                ExpressionAttributeValues={
                    ":me": {"S": me},
                    ":now": {"N": repr(now)},
                    ":stale": {"N": repr(now - stale_after)},
                    ":expires": {"N": str(_health_expires(now))},
                },
                ReturnValues="ALL_NEW",
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return None
        return _pending(from_item(item["Attributes"]))

    def release_change(self, change: str, target_group_arn: str, me: str, done: Iterable[str] = ()) -> None:
        """Take ``done`` out of the pending ``change`` and give up the claim, if it is still ``me``'s."""
        names = {f"#t{i}": PENDING_PREFIX + t for i, t in enumerate(done)}
        released = self._update_if(
            pending_pk(change, target_group_arn),
            PENDING_SK,
            UpdateExpression="REMOVE " + ", ".join([*names, "claimedBy", "claimedAt"]),
            ConditionExpression="claimedBy = :me",
            ExpressionAttributeValues={":me": {"S": me}},
            **({"ExpressionAttributeNames": names} if names else {}),
        )
        if not released:  # the claim went stale and another took it: take out what this one did
            self.withdraw_change(change, target_group_arn, done)

    def open_runs(self) -> list[str]:
        """Execution ARNs of the open runs (the sparse index; eventually consistent, so re-read each run)."""
        pages = self.ddb.get_paginator("query").paginate(
            TableName=self.table_name,
            IndexName=OPEN_RUNS_INDEX,
            KeyConditionExpression="sk = :run",
            ExpressionAttributeValues={":run": {"S": RUN_SK}},
        )
        return [item["pk"]["S"].removeprefix(run_pk("")) for page in pages for item in page["Items"]]

    def claim_cleanup(self, execution_arn: str, now: float, seconds: int) -> bool:
        """Claim the cleanup of an open run for ``seconds``; False if it is closed or claimed already.

        Two cleaners (a duplicated event, the safety net and the reconciler) must not both act and alert.
        """
        return self._update_if(
            run_pk(execution_arn),
            RUN_SK,
            UpdateExpression="SET cleanupClaimedUntil = :until",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(closedAt)"
            " AND (attribute_not_exists(cleanupClaimedUntil) OR cleanupClaimedUntil < :now)",
            ExpressionAttributeValues={":until": {"N": str(int(now) + seconds)}, ":now": {"N": str(int(now))}},
        )

    def release_cleanup_claim(self, execution_arn: str) -> None:
        self.ddb.update_item(
            TableName=self.table_name,
            Key=to_item({"pk": run_pk(execution_arn), "sk": RUN_SK}),
            UpdateExpression="REMOVE cleanupClaimedUntil",
            ConditionExpression="attribute_exists(pk)",
        )

    def close_run(self, execution_arn: str, closed_at: str, **fields: Any) -> None:
        """Mark the run closed (out of the open-runs index), with ``fields`` set."""
        values = {"closedAt": closed_at, **fields}
        names = {f"#f{i}": k for i, k in enumerate(values)}
        self.ddb.update_item(
            TableName=self.table_name,
            Key=to_item({"pk": run_pk(execution_arn), "sk": RUN_SK}),
            UpdateExpression="SET "
            + ", ".join(f"#f{i} = :v{i}" for i in range(len(values)))
            + " REMOVE openSince, cleanupClaimedUntil",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{i}": _ser.serialize(v) for i, v in enumerate(values.values())},
        )

    def reopen_for_follow_up(self, execution_arn: str, since: str) -> None:
        """Open a closed run again (into the open-runs index) for the reconciler to follow its instances up."""
        self.ddb.update_item(
            TableName=self.table_name,
            Key=to_item({"pk": run_pk(execution_arn), "sk": RUN_SK}),
            UpdateExpression="SET openSince = :s, followUpSince = :s REMOVE closedAt",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":s": {"S": since}},
        )

    def release_lock(self, target_group_arn: str, execution_arn: str) -> bool:
        """Delete the lock if this execution holds it; False if it does not (nothing changed)."""
        try:
            self.ddb.delete_item(
                TableName=self.table_name,
                Key=to_item({"pk": lock_pk(target_group_arn), "sk": LOCK_SK}),
                ConditionExpression="ownerExecutionArn = :me",
                ExpressionAttributeValues={":me": {"S": execution_arn}},
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True
