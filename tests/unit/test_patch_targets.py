"""The patch preview's first step: the request it refuses (before any AWS call), and what it decides
over plain data (opsflow.patch_selection): the window's verdict, the instances to ask for, each
server's row, the listing's batches and the patch filters."""

import datetime as dt
from typing import Any

import pytest

from opsflow.errors import InvalidInputError
from opsflow.patch_selection import (
    Defaults,
    PreviewRequest,
    Selection,
    fleet_rows,
    instance_queries,
    listing_batches,
    patch_filters,
    plan,
    window_verdict,
)
from tests.conftest import load_function

RUN = "arn:aws:states:eu-west-1:123456789012:execution:opsflow-patch-preview:run-7"
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)

# Each with the field its error names (the end-to-end workflow test keeps three of them).
MALFORMED = [
    ({"maintenanceWindowId": "window-1"}, "maintenanceWindowId"),
    ({"horizonHours": 0}, "horizonHours"),
    ({"horizonHours": "24"}, "horizonHours"),
    ({"instances": {"instanceIds": ["web-1"]}}, "instances.instanceIds"),
    ({"instances": {"tag": {"a": "b"}}}, "instances.tag"),
    ({"instances": {"instanceIds": []}}, "instances.instanceIds"),
    ({"severities": ["Severe"]}, "severities"),
    ({"severities": []}, "severities"),
    ({"classifications": ["Security Updates"]}, "classifications"),
    ({"staleAfterHours": -1}, "staleAfterHours"),
    ({"staleAfterHours": 721}, "staleAfterHours"),
    ({"includeFailed": "no"}, "includeFailed"),
    ({"mailWhenNothingPending": 1}, "mailWhenNothingPending"),
    ({"windowId": "mw-0123456789abcdef0"}, "windowId"),
    ({"deliver": "later"}, "deliver"),
    ({"deliver": "approval", "maintenanceWindowId": "mw-0123456789abcdef0"}, "not a maintenance window"),
    ({"deliver": "approval", "horizonHours": 12}, "leave them out"),
]


@pytest.mark.parametrize(("payload", "named"), MALFORMED, ids=[m[1] + str(i) for i, m in enumerate(MALFORMED)])
def test_a_malformed_request_is_refused_naming_the_field_before_any_aws_call(
    payload: dict[str, Any], named: str, lambda_context: Any
) -> None:
    # No AWS is mocked: a call would fail differently (no network), so the refusal comes first.
    with pytest.raises(InvalidInputError) as refused:
        load_function("patch_targets").lambda_handler({"input": payload, "executionArn": RUN}, lambda_context)

    assert named in str(refused.value)


def test_the_execution_s_arn_is_required_alongside_its_input(lambda_context: Any) -> None:
    with pytest.raises(InvalidInputError, match="executionArn"):
        load_function("patch_targets").lambda_handler({"input": {}}, lambda_context)


def test_the_request_overrides_the_stack_s_defaults_field_by_field() -> None:
    defaults = Defaults(maintenance_window_id="mw-0123456789abcdef0", horizon_hours=24, stale_after_hours=72)

    as_configured = plan(PreviewRequest(), RUN, defaults)
    overridden = plan(
        PreviewRequest.model_validate({"horizonHours": 6, "staleAfterHours": 12, "mailWhenNothingPending": False}),
        RUN,
        defaults,
    )

    assert as_configured.window_id == "mw-0123456789abcdef0" and as_configured.horizon_hours == 24
    assert as_configured.base["runPrefix"] == "patch-preview/run-7"
    assert as_configured.base["staleAfterHours"] == 72 and as_configured.base["mailWhenNothingPending"] is True
    assert overridden.horizon_hours == 6 and overridden.base["staleAfterHours"] == 12
    assert overridden.base["mailWhenNothingPending"] is False


def test_a_preview_for_the_approval_reads_no_maintenance_window() -> None:
    defaults = Defaults(maintenance_window_id="mw-0123456789abcdef0")
    assert plan(PreviewRequest(deliver="approval"), RUN, defaults).window_id is None


WINDOW = {"Name": "web-patching", "Schedule": "cron(0 3 ? * SUN *)", "Enabled": True}


def test_a_window_within_the_horizon_is_previewed_and_shown_with_its_next_run() -> None:
    info, skip = window_verdict("mw-1", WINDOW | {"NextExecutionTime": "2026-11-23T16:00Z"}, NOW, 24)

    assert skip is None
    assert info == {
        "id": "mw-1",
        "name": "web-patching",
        "schedule": "cron(0 3 ? * SUN *)",
        "nextRun": "2026-11-23T16:00:00+00:00",
        "hoursAway": 6.0,
    }


@pytest.mark.parametrize(
    ("window", "note"),
    [
        (WINDOW | {"NextExecutionTime": "2026-11-25T10:00Z"}, "runs at 2026-11-25 10:00 UTC, 48 h from now: beyond"),
        (WINDOW | {"Enabled": False}, "Maintenance window web-patching is disabled: no preview."),
        (WINDOW, "Maintenance window web-patching has no next run: no preview."),
    ],
)
def test_a_window_not_due_within_the_horizon_skips_the_preview_with_a_note(window: dict[str, Any], note: str) -> None:
    _, skip = window_verdict("mw-1", window, NOW, 24)
    assert skip is not None and note in skip


def test_the_stack_s_patch_group_selects_only_when_nothing_else_does() -> None:
    running = {"Name": "instance-state-name", "Values": ["running"]}
    group = {"Name": "tag:Patch Group", "Values": ["web"]}

    assert instance_queries(Selection(), "web") == [[running, group]]
    assert instance_queries(Selection(tags={"tier": "web"}), "web") == [
        [running, {"Name": "tag:tier", "Values": ["web"]}]
    ]
    assert instance_queries(Selection(patch_group="db"), "web") == [
        [running, {"Name": "tag:Patch Group", "Values": ["db"]}]
    ]
    assert instance_queries(Selection(), "") == [[running]]


def test_explicit_ids_are_asked_for_in_chunks_of_two_hundred() -> None:
    ids = [f"i-{n:017x}" for n in range(450)]

    queries = instance_queries(Selection(instance_ids=ids), "web")

    assert [len(q[-1]["Values"]) for q in queries] == [200, 200, 50]
    assert [i for q in queries for i in q[-1]["Values"]] == ids
    assert all(q[-1]["Name"] == "instance-id" and len(q) == 2 for q in queries)  # no default patch group


def test_each_server_s_row_flags_patch_data_older_than_the_threshold_or_never_scanned() -> None:
    tags = {"i-b": {"Name": "web-2", "Patch Group": "web"}, "i-a": {}, "i-c": {"Name": "web-3"}}
    states = {
        "i-b": {"Operation": "Scan", "OperationEndTime": NOW - dt.timedelta(hours=80), "MissingCount": 3},
        "i-c": {"Operation": "Install", "OperationEndTime": NOW - dt.timedelta(hours=1), "FailedCount": 1},
    }

    rows = fleet_rows(tags, {"i-b", "i-c"}, states, NOW, stale_after_hours=72)

    assert [r["instanceId"] for r in rows] == ["i-a", "i-b", "i-c"]
    assert rows[0] == {
        "instanceId": "i-a",
        "name": "i-a",
        "patchGroup": "",
        "managed": False,
        "lastOperation": None,
        "lastOperationAt": None,
        "stale": True,
        "missing": 0,
        "failed": 0,
        "pendingReboot": 0,
        "rebootOption": None,
    }
    assert rows[1]["stale"] is True and rows[1]["missing"] == 3 and rows[1]["patchGroup"] == "web"
    assert rows[2]["stale"] is False and rows[2]["lastOperationAt"] == "2026-11-23T09:00:00+00:00"


def test_only_managed_servers_are_listed_fifty_a_batch() -> None:
    fleet = [{"instanceId": f"i-{n:03}", "managed": n % 10 != 0} for n in range(130)]

    batches = listing_batches(fleet)

    assert [b["batch"] for b in batches] == [0, 1, 2]
    assert [len(b["instanceIds"]) for b in batches] == [50, 50, 17]
    assert "i-000" not in batches[0]["instanceIds"]
    assert listing_batches([{"instanceId": "i-1", "managed": False}]) == []


def test_the_patch_filters_follow_the_request() -> None:
    assert patch_filters(PreviewRequest()) == [{"Key": "State", "Values": ["Missing", "Failed"]}]
    narrowed = PreviewRequest.model_validate(
        {"includeFailed": False, "severities": ["Critical"], "classifications": ["SecurityUpdates"]}
    )
    assert patch_filters(narrowed) == [
        {"Key": "State", "Values": ["Missing"]},
        {"Key": "Severity", "Values": ["Critical"]},
        {"Key": "Classification", "Values": ["SecurityUpdates"]},
    ]
