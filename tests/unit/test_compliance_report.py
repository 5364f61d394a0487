"""The compliance report's verdicts: only what this run installed counts, and the mail says what is where."""

import datetime as dt
from typing import Any

import pytest

from opsflow import compliance
from opsflow.errors import InvalidInputError
from opsflow.validation import parse_event
from tests.conftest import load_function

STARTED = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
ME = "i-0123456789abcdef0"
ARN = "arn:aws:states:eu-west-1:123456789012:execution:opsflow-patch-tier:run-7"


def state(operation: str = "Install", ended: dt.datetime | None = STARTED, **counts: int) -> dict[str, Any]:
    return {"InstanceId": ME, "Operation": operation, "OperationEndTime": ended, **counts}


@pytest.mark.parametrize(
    ("patch_state", "verdict"),
    [
        (state(InstalledCount=12), "compliant"),
        (state(InstalledCount=12, InstalledPendingRebootCount=2), "installed, reboot pending"),
        (state(InstalledCount=12, FailedCount=1), "not compliant"),
        (state(InstalledCount=12, MissingCount=3, InstalledPendingRebootCount=2), "not compliant"),
        (state("Scan", InstalledCount=12), "not patched by this run"),
        (state(ended=STARTED - dt.timedelta(seconds=1)), "not patched by this run"),
        (state(ended=None), "not patched by this run"),
    ],
)
def test_only_an_install_that_ended_during_the_run_is_judged_as_the_run_s_outcome(
    patch_state: dict[str, Any], verdict: str
) -> None:
    assert compliance.row(ME, patch_state, STARTED)["verdict"] == verdict


def test_an_instance_without_patch_data_is_said_so_without_counts() -> None:
    assert compliance.row(ME, None, STARTED) == {"instanceId": ME, "verdict": "no patch data (not a managed node?)"}


def test_the_mail_counts_the_compliant_names_the_report_and_lists_every_instance() -> None:
    rows = [
        compliance.row(ME, state(InstalledCount=12), STARTED),
        compliance.row("i-0fedcba9876543210", state(InstalledCount=3, FailedCount=1), STARTED),
        compliance.row("i-00000000000000001", None, STARTED),
    ]

    subject, text = compliance.mail(ARN, "12 instances patched", rows, "s3://opsflow-data/compliance/run-7.json")

    assert subject == "opsflow patching: 1 of 3 instances compliant"
    lines = text.splitlines()
    assert lines[:3] == [
        "Patch compliance after the patch run run-7: 1 of 3 instances compliant.",
        "Rolling install: 12 instances patched",
        "Full report: s3://opsflow-data/compliance/run-7.json",
    ]
    assert lines[-3].split() == [ME, "12", "0", "0", "0", "compliant"]
    assert lines[-1].split()[:5] == ["i-00000000000000001", "-", "-", "-", "-"]
    assert compliance.report_key(ARN) == "compliance/run-7.json"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"instanceIds": []}, "instanceIds: List should have at least 1 item"),
        ({"instanceIds": ["web-1"]}, "instanceIds.0: String should match pattern"),
        ({"startedAt": "yesterday"}, "startedAt"),
        ({"executionArn": ""}, "executionArn"),
        ({"extra": 1}, "extra: Extra inputs are not permitted"),
    ],
)
def test_a_malformed_event_is_refused_naming_the_field(change: dict[str, Any], named: str) -> None:
    valid = {"executionArn": ARN, "startedAt": STARTED.isoformat(), "instanceIds": [ME], "install": {"subject": "ok"}}

    with pytest.raises(InvalidInputError) as raised:
        parse_event(load_function("compliance_report").ComplianceEvent, valid | change)

    assert named in str(raised.value)
