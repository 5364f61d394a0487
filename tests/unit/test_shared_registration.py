"""Registering the instances of a run that come back together: one RegisterTargets per group for all of
them (ELB's registration bucket holds 20 requests and refills 4 a second), and nothing left behind: no
target registered for a waiter that gave up, no claim held after a request, an error raised by the
waiter whose target it is."""

import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from opsflow import shared_registration, timeutil
from opsflow.errors import TargetNotYetInStateException
from opsflow.runs import PENDING_SK, RunTable, pending_pk
from opsflow.shared_registration import PENDING_SECONDS, change_together
from opsflow.targets import Registration
from tests.conftest import REGION

TG = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef"
OTHER_TG = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api/0123456789abcdef"
ME = "i-0000000000000000a"
NOW = 1_800_000_000.0


@pytest.fixture
def table(run_table: str) -> RunTable:
    return RunTable(run_table, ddb=boto3.client("dynamodb", region_name=REGION))


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Each RegisterTargets request as (group, targets); a target of an instance named i-bad... is refused."""
    made: list[tuple[str, list[str]]] = []

    def send(change: str, arn: str, batch: list[str]) -> None:
        made.append((arn, list(batch)) if change == "register" else (f"{change} {arn}", list(batch)))
        if any(t.startswith("i-bad") for t in batch):
            error = {"Error": {"Code": "InvalidTarget", "Message": "The following targets are not in a running state"}}
            raise ClientError(error, "RegisterTargets")

    monkeypatch.setattr(shared_registration, "_send", send)
    return made


class OneCallAtATime:
    """A client whose calls take turns, as DynamoDB serializes the writes to one item."""

    def __init__(self, client: Any) -> None:
        self._client, self._lock = client, threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


def item(run_table: str) -> dict[str, Any]:
    key = {"pk": {"S": pending_pk("register", TG)}, "sk": {"S": PENDING_SK}}
    return dict(boto3.client("dynamodb", region_name=REGION).get_item(TableName=run_table, Key=key).get("Item", {}))


def left_behind(run_table: str) -> set[str]:
    """Pending targets and claims still on the group's item."""
    return {k for k in item(run_table) if k.startswith("t#") or k.startswith("claimed")}


def on(port: int | None = 80, group: str = TG) -> list[Registration]:
    return [Registration(target_group_arn=group, port=port)]


def test_fifty_instances_coming_back_together_are_registered_in_one_request(
    table: RunTable, run_table: str, requests: list[tuple[str, list[str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"i-{n:017x}" for n in range(50)]
    everyone_asked = threading.Barrier(len(ids))
    ask = table.ask_to_change

    def ask_then_wait_for_the_others(change: str, arn: str, targets: Any, at: float) -> None:
        ask(change, arn, targets, at)
        everyone_asked.wait(timeout=30)

    monkeypatch.setattr(table, "ask_to_change", ask_then_wait_for_the_others)
    monkeypatch.setattr(table, "ddb", OneCallAtATime(table.ddb))  # moto's tables are not thread-safe
    errors: list[Exception] = []

    def come_back(instance_id: str) -> None:
        try:
            change_together("register", table, instance_id, on(), give_up_at=timeutil.epoch() + 30)
        except Exception as exc:  # noqa: BLE001 - shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=come_back, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    assert requests == [(TG, sorted(f"{i}:80" for i in ids))]  # 50 requests before: 30 waited for tokens
    assert left_behind(run_table) == set()


def test_each_group_gets_its_own_request_on_the_port_the_instance_was_registered_on(
    table: RunTable, requests: list[tuple[str, list[str]]]
) -> None:
    where = [*on(80), *on(8080), *on(None, OTHER_TG)]
    change_together("register", table, ME, where, give_up_at=timeutil.epoch() + 5)

    assert requests == [(TG, [f"{ME}:80", f"{ME}:8080"]), (OTHER_TG, [f"{ME}:"])]
    change_together("deregister", table, ME, where, give_up_at=timeutil.epoch() + 5)  # the way out: its own set
    assert requests[2:] == [(f"deregister {TG}", [f"{ME}:80", f"{ME}:8080"]), (f"deregister {OTHER_TG}", [f"{ME}:"])]
    assert shared_registration.target(f"{ME}:8080") == {"Id": ME, "Port": 8080}
    assert shared_registration.target(f"{ME}:") == {"Id": ME}  # the group's own port


def test_a_request_refused_for_another_s_target_registers_the_claimer_alone_and_the_other_gets_the_error(
    table: RunTable, run_table: str, requests: list[tuple[str, list[str]]]
) -> None:
    table.ask_to_change("register", TG, ["i-bad000000000000b:80"], timeutil.epoch())  # its waiter is between two looks

    change_together("register", table, ME, on(), give_up_at=timeutil.epoch() + 5)

    assert requests == [(TG, [f"{ME}:80", "i-bad000000000000b:80"]), (TG, [f"{ME}:80"])]
    with pytest.raises(ClientError, match="InvalidTarget"):
        change_together("register", table, "i-bad000000000000b", on(), give_up_at=timeutil.epoch() + 5)
    assert left_behind(run_table) == set()  # its entry withdrawn with the error: nobody registers it later


def test_a_waiter_that_gives_up_withdraws_its_targets_and_a_dead_waiter_s_are_never_registered(
    table: RunTable, run_table: str, requests: list[tuple[str, list[str]]]
) -> None:
    now = [NOW]
    timeutil.set_source(lambda: now[0], lambda s: now.__setitem__(0, now[0] + s))
    assert table.claim_change("register", TG, "another", NOW, stale_after=15) is not None  # mid-request

    with pytest.raises(
        TargetNotYetInStateException, match=f"sending register requests for web: {ME} is not registered yet"
    ):
        change_together("register", table, ME, on(), give_up_at=NOW + 1)
    assert table.pending_changes("register", TG) == {}
    assert requests == []

    table.release_change("register", TG, "another")
    table.ask_to_change("register", TG, ["i-dead00000000000d:80"], now[0])  # then its Lambda timed out
    now[0] += PENDING_SECONDS + 1
    change_together("register", table, ME, on(), give_up_at=now[0] + 5)

    assert requests == [(TG, [f"{ME}:80"])]
    assert left_behind(run_table) == set()


def test_a_stale_claim_is_taken_over_and_a_throttled_request_is_not_yet_with_nothing_held(
    table: RunTable, run_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [NOW]
    timeutil.set_source(lambda: now[0], lambda s: now.__setitem__(0, now[0] + s))
    table.claim_change("register", TG, "died mid-request", NOW - shared_registration.CLAIM_SECONDS, stale_after=15)

    def throttled(change: str, arn: str, batch: list[str]) -> None:
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "RegisterTargets")

    monkeypatch.setattr(shared_registration, "_send", throttled)

    with pytest.raises(TargetNotYetInStateException, match="throttled"):
        change_together("register", table, ME, on(), give_up_at=NOW + 5)
    assert left_behind(run_table) == set()  # asked again by the state machine's retry, from scratch
